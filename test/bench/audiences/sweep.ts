import { type Rule, ruleDependencies, ruleEdges } from '@cairn/core';
import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';
import { runFragment } from '../../../server/src/pipeline/compute/evaluate.ts';
import { sweepOnce } from '../../../server/src/pipeline/compute/sweep.ts';
import { type Percentiles, percentiles } from '../deliver/analysis.ts';
import type { Node } from '../identify/servers.ts';
import { openLoop, type Target } from '../ingest/load.ts';
import { PULSE_EVENT } from './rules.ts';
import { type PgActivity, sampleActivity } from './sampler.ts';

// The sweep for time-window changes: its cost called directly (sweepOnce, the server's own function,
// with a `now` the benchmark moves), the sweeps a running server makes on its own (watched through
// their lease row), and how long after a window's boundary profiles leave with the real interval.

/** One sweep called by the benchmark. */
export interface SweepRun {
  label: string;
  /** Seconds of rule time the sweep covers (since → now). */
  spanS: number;
  /** Profiles whose window edge passed, summed over the audiences, and distinct. */
  candidates: number;
  distinct: number;
  /** Time-bound audiences with at least one candidate. */
  audiencesWithCandidates: number;
  /** The edge statements alone, run by the benchmark before the sweep (same since and now). */
  edgesMs: number;
  /** Definition evaluations (one per chunk of up to 250 profiles and definition with candidates in it). */
  evaluated: number;
  entered: number;
  exited: number;
  ms: number;
  activity?: PgActivity;
}

/** A sweep a server made on its own: its rule instant and how long it took. */
export interface ObservedSweep {
  at: number;
  ms: number;
}

const SWEEP_KEY = 'compute.sweep';

async function sweptAt(sql: postgres.Sql): Promise<Date | null> {
  const [row] = await sql<
    { at: string | null }[]
  >`SELECT value ->> 'sweptAt' AS at FROM settings WHERE key = ${SWEEP_KEY}`;
  return row?.at ? new Date(row.at) : null;
}

/**
 * Watches the sweeps a server makes: each one ends by writing its rule instant (`sweptAt`, taken
 * when it started) and `updated_at = now()` to its lease row, so duration = updated_at − sweptAt.
 *
 * @example
 * const stop = watchSweeps(sql);
 * const sweeps = await stop();
 */
export function watchSweeps(sql: postgres.Sql, everyMs = 250): () => Promise<ObservedSweep[]> {
  const out: ObservedSweep[] = [];
  let last = '';
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const [row] = await sql<{ at: string | null; done: Date; owner: string | null }[]>`
        SELECT value ->> 'sweptAt' AS at, value ->> 'owner' AS owner, updated_at AS done FROM settings WHERE key = ${SWEEP_KEY}`;
      if (row?.at && !row.owner && row.at !== last) {
        if (last) out.push({ at: Date.parse(row.at), ms: row.done.getTime() - Date.parse(row.at) });
        last = row.at;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })().catch(() => {});
  return async () => {
    stopped = true;
    await loop;
    return out;
  };
}

/** What the edges of every time-bound audience find for one interval. */
export interface EdgeCount {
  candidates: number;
  distinct: number;
  audiences: number;
  ms: number;
}

/**
 * Runs each time-bound audience's edge statement (ruleEdges) for since → now, as a sweep does first.
 *
 * @example
 * const c = await edgeCandidates(sql, since, now);
 */
export async function edgeCandidates(sql: postgres.Sql, since: Date, now: Date): Promise<EdgeCount> {
  const rules = await timeBoundRules(sql);
  let candidates = 0;
  let audiences = 0;
  const distinct = new Set<string>();
  const t0 = performance.now();
  for (const { rule } of rules) {
    const edges = ruleEdges(rule, since, now);
    if (!edges) continue;
    const ids = await runFragment<{ id: string }>(sql as unknown as Sql, edges);
    candidates += ids.length;
    if (ids.length) audiences++;
    for (const r of ids) distinct.add(r.id);
  }
  return { candidates, distinct: distinct.size, audiences, ms: performance.now() - t0 };
}

/** Time-bound audiences (the ones a sweep looks at). */
async function timeBoundRules(sql: postgres.Sql): Promise<{ key: string; rule: Rule }[]> {
  const rows = await sql<{ key: string; rule: Rule }[]>`SELECT key, rule FROM audiences WHERE enabled ORDER BY key`;
  return rows.filter((r) => ruleDependencies(r.rule).timeBound);
}

/**
 * Runs sweepOnce at each instant (the server must be stopped: its own sweep would take the lease
 * and move `sweptAt`), counting first the candidates the rules' edges find for the same interval.
 *
 * @example
 * const runs = await sweepCost(sql, db, [{ label: '+15 s', now }]);
 */
export async function sweepCost(
  sql: postgres.Sql,
  db: { url: string; database: string },
  instants: { label: string; now: Date; sample?: boolean }[],
): Promise<SweepRun[]> {
  const runs: SweepRun[] = [];
  for (const { label, now, sample } of instants) {
    const since = (await sweptAt(sql)) ?? now;
    const edges = await edgeCandidates(sql, since, now);
    const stopSampling = sample ? sampleActivity(db.url, db.database) : undefined;
    const t1 = performance.now();
    const r = await sweepOnce({ sql: sql as unknown as Sql }, now);
    const ms = performance.now() - t1;
    const activity = await stopSampling?.();
    let entered = 0;
    let exited = 0;
    for (const c of r.changes.values()) {
      entered += c.entered.length;
      exited += c.exited.length;
    }
    const run: SweepRun = {
      label,
      spanS: (now.getTime() - since.getTime()) / 1000,
      candidates: edges.candidates,
      distinct: edges.distinct,
      audiencesWithCandidates: edges.audiences,
      edgesMs: edges.ms,
      evaluated: r.evaluated,
      entered,
      exited,
      ms,
      activity,
    };
    console.log(
      `  sweep ${label}: ${run.spanS.toFixed(0)} s of rule time, ${run.candidates} candidates (${run.distinct} distinct, ${run.audiencesWithCandidates} audiences), ${run.evaluated} evaluations, ${entered} entered, ${exited} exited, ${ms.toFixed(0)} ms (edges alone ${run.edgesMs.toFixed(0)} ms)`,
    );
    runs.push(run);
  }
  return runs;
}

/** How long after their window's boundary profiles left, with the server's own sweep. */
export interface ExitResult {
  windowMinutes: number;
  sweepSeconds: number;
  profiles: number;
  /** Profiles seen entering the audience (each sent one event). */
  entered: number;
  /** Boundary (event timestamp + window) → membership row seen ended; and → its exited_at. */
  exitSeen: Percentiles;
  exitAt: Percentiles;
  sweeps: ObservedSweep[];
}

const wallNow = () => performance.timeOrigin + performance.now();

/**
 * Sends one PULSE_EVENT for each of `profiles` (spread over `spreadMs`), waits until each profile
 * entered `audience`, then until each left it after its window passed.
 *
 * @example
 * const r = await exitLatency(node, sql, { audience: 'pulse', windowMinutes: 2, sweepSeconds: 15, profiles, spreadMs: 10_000 });
 */
export async function exitLatency(
  node: Node,
  sql: postgres.Sql,
  o: {
    audience: string;
    windowMinutes: number;
    sweepSeconds: number;
    profiles: { id: string; userId: string }[];
    spreadMs: number;
  },
): Promise<ExitResult> {
  const url = new URL(node.server.url);
  const target: Target = {
    host: url.hostname,
    port: Number(url.port),
    headers: {
      Authorization: `Basic ${Buffer.from(`${node.writeKey}:`).toString('base64')}`,
      'Content-Type': 'application/json',
    },
  };
  const stopWatching = watchSweeps(sql);
  const sentAt = new Map<string, number>();
  let i = 0;
  const run = await openLoop(target, {
    rate: (o.profiles.length * 1000) / o.spreadMs,
    durationMs: o.spreadMs,
    maxConnections: 16,
    next: () => {
      const p = o.profiles[i++]!;
      const at = wallNow();
      sentAt.set(p.id, at);
      const event = {
        type: 'track',
        event: PULSE_EVENT,
        userId: p.userId,
        messageId: `pulse-${i}`,
        timestamp: new Date(at).toISOString(),
      };
      return { path: '/v1/track', body: JSON.stringify(event), events: 1 };
    },
  });
  if (run.ok !== run.requests) throw new Error(`pulse events: ${run.requests - run.ok} requests failed`);
  const windowMs = o.windowMinutes * 60_000;
  const enteredSeen = new Set<string>();
  const exitSeen = new Map<string, { seen: number; at: number }>();
  const deadline = Math.max(...sentAt.values()) + windowMs + (3 * o.sweepSeconds + 60) * 1000;
  while (exitSeen.size < sentAt.size && wallNow() < deadline) {
    const at = wallNow();
    const rows = await sql<{ id: string; exited: Date | null }[]>`
      SELECT profile_id::text AS id, exited_at AS exited FROM audience_memberships
      WHERE audience = ${o.audience} AND profile_id = ANY(${[...sentAt.keys()]}::uuid[])`;
    for (const r of rows) {
      enteredSeen.add(r.id);
      if (r.exited && !exitSeen.has(r.id)) exitSeen.set(r.id, { seen: at, at: r.exited.getTime() });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const sweeps = await stopWatching();
  // The boundary is the event's stored timestamp + the window.
  const stamps = await sql<{ m: string; ts: Date; profile: string }[]>`
    SELECT message_id AS m, timestamp AS ts, profile_id::text AS profile FROM events
    WHERE event = ${PULSE_EVENT} AND profile_id IS NOT NULL AND source_id = 'src_demo' AND message_id LIKE 'pulse-%'`;
  const boundary = new Map(stamps.map((s) => [s.profile, s.ts.getTime() + windowMs]));
  const ids = [...sentAt.keys()];
  const gap = (id: string, t: number | undefined) =>
    t === undefined || !boundary.has(id) ? Number.POSITIVE_INFINITY : t - boundary.get(id)!;
  return {
    windowMinutes: o.windowMinutes,
    sweepSeconds: o.sweepSeconds,
    profiles: ids.length,
    entered: enteredSeen.size,
    exitSeen: percentiles(
      'boundary → exit seen committed',
      ids.map((id) => gap(id, exitSeen.get(id)?.seen)),
    ),
    exitAt: percentiles(
      "boundary → `exited_at` (the sweep's rule instant)",
      ids.map((id) => gap(id, exitSeen.get(id)?.at)),
    ),
    sweeps,
  };
}
