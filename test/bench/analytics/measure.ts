import { TEST_ADMIN_KEY } from '@cairn/server/testing';
import type postgres from 'postgres';
import { type CpuUse, cpuMeter } from '../ingest/machine.ts';
import type { BenchQuery } from './queries.ts';

// Timing the queries through the HTTP API (warm-up, then N runs, one at a time) and the references
// measured beside them in the same run: a bare SQL count on the same table and a bare HTTP round trip.

/** A warm-up longer than this (ms) cuts the timed runs to SLOW_RUNS. */
export const SLOW_WARMUP_MS = 3_000;
const SLOW_RUNS = 3;

/** Percentiles of a list of durations (ms), nearest rank. */
export interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
  min: number;
}

/**
 * Nearest-rank percentiles.
 *
 * @example
 * stats([12, 15, 11]); // { n: 3, p50: 12, p95: 15, max: 15, min: 11 }
 */
export function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? Number.NaN;
  return { n: s.length, p50: at(0.5), p95: at(0.95), max: s.at(-1) ?? Number.NaN, min: s[0] ?? Number.NaN };
}

/** What one query measured. */
export interface QueryResult {
  query: BenchQuery;
  /** ok: timed; missing: the route answered 404; refused: 4xx/5xx (status and reason). */
  outcome: 'ok' | 'missing' | 'refused';
  status?: number;
  reason?: string;
  /** Round trips seen by the client (ms). */
  client?: Stats;
  /** `meta.tookMs` the server reported. */
  server?: Stats;
  /** The warm-up call (ms), the first time the statement ran. */
  warmupMs?: number;
  /** True when the warm-up took longer than SLOW_WARMUP_MS and fewer runs were timed. */
  cut?: boolean;
  /** A short summary of the answer (its shape), to show the query did work. */
  summary?: string;
  cpu?: CpuUse;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: unknown; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const ms = performance.now() - t0;
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, json, ms };
}

function reasonOf(json: unknown): string {
  if (typeof json === 'string') return json.slice(0, 300);
  const e = (json as { error?: { code?: string; message?: string } })?.error;
  return e ? `${e.code ?? ''}: ${e.message ?? ''}`.slice(0, 300) : JSON.stringify(json).slice(0, 300);
}

// A few words on what came back: numbers of buckets, series, steps, cohorts or rows.
function summarize(json: unknown): string {
  if (!json || typeof json !== 'object') return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    if (k === 'meta') continue;
    if (Array.isArray(v)) parts.push(`${v.length} ${k}`);
  }
  return parts.join(', ');
}

/**
 * Runs one query: a warm-up call (404 → missing, another non-200 → refused with the reason), then
 * `query.runs` timed calls one after the other, measuring the CPU of the server, Postgres and the rest.
 *
 * @example
 * const r = await timeQuery(server.url, serverPid, 'cairn_bench_analytics', query);
 */
export async function timeQuery(
  baseUrl: string,
  serverPid: number | undefined,
  database: string,
  query: BenchQuery,
): Promise<QueryResult> {
  const url = `${baseUrl}/api/analytics/${query.route}`;
  const warm = await post(url, query.body);
  if (warm.status === 404) return { query, outcome: 'missing', status: 404 };
  if (warm.status !== 200) return { query, outcome: 'refused', status: warm.status, reason: reasonOf(warm.json) };
  const client: number[] = [];
  const server: number[] = [];
  // A query far past its budget is timed a few times only, so that the run ends in reasonable time.
  const runs = warm.ms > SLOW_WARMUP_MS ? Math.min(query.runs, SLOW_RUNS) : query.runs;
  const stop = cpuMeter(serverPid, database);
  for (let i = 0; i < runs; i++) {
    const r = await post(url, query.body);
    if (r.status !== 200)
      return { query, outcome: 'refused', status: r.status, reason: `run ${i + 1}: ${reasonOf(r.json)}` };
    client.push(r.ms);
    const took = (r.json as { meta?: { tookMs?: number } }).meta?.tookMs;
    if (typeof took === 'number') server.push(took);
  }
  return {
    query,
    outcome: 'ok',
    status: 200,
    client: stats(client),
    server: server.length ? stats(server) : undefined,
    warmupMs: warm.ms,
    cut: runs < query.runs,
    summary: summarize(warm.json),
    cpu: stop(),
  };
}

/** A reference measured beside the queries. */
export interface Reference {
  name: string;
  stats: Stats;
  detail?: string;
}

/**
 * The bare HTTP round trip of the server (`GET /healthz`), `runs` times after a warm-up.
 *
 * @example
 * const echo = await httpEcho(server.url, 20);
 */
export async function httpEcho(baseUrl: string, runs: number): Promise<Reference> {
  await fetch(`${baseUrl}/healthz`).then((r) => r.text());
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fetch(`${baseUrl}/healthz`).then((r) => r.text());
    xs.push(performance.now() - t0);
  }
  return { name: 'GET /healthz (bare HTTP round trip)', stats: stats(xs) };
}

/**
 * Bare SQL statements on the same events, from this process over one connection, `runs` times after
 * a warm-up: what Postgres alone takes to count the rows a 30-day query reads.
 *
 * @example
 * const refs = await sqlReferences(sql, new Date(ds.end), 5);
 */
export async function sqlReferences(sql: postgres.Sql, end: Date, runs: number): Promise<Reference[]> {
  const since30 = new Date(end.getTime() - 30 * 86_400_000);
  const since90 = new Date(end.getTime() - 90 * 86_400_000);
  const cases: { name: string; run: () => Promise<number> }[] = [
    {
      name: 'SELECT count(*) FROM events WHERE timestamp >= end - 30 days',
      run: async () =>
        (await sql<{ n: number }[]>`SELECT count(*)::float8 AS n FROM events WHERE timestamp >= ${since30}`)[0]!.n,
    },
    {
      name: "SELECT count(*) … WHERE event = 'Order Completed' AND timestamp >= end - 90 days",
      run: async () =>
        (
          await sql<{ n: number }[]>`
            SELECT count(*)::float8 AS n FROM events
            WHERE event = 'Order Completed' AND timestamp >= ${since90} AND profile_id IS NOT NULL`
        )[0]!.n,
    },
  ];
  const out: Reference[] = [];
  for (const c of cases) {
    const rows = await c.run();
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await c.run();
      xs.push(performance.now() - t0);
    }
    out.push({ name: c.name, stats: stats(xs), detail: `${rows.toLocaleString('en-US')} rows` });
  }
  return out;
}
