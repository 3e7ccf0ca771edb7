import { type ServerProcess, spawnServer, TEST_ADMIN_KEY } from '@cairn/server/testing';
import type postgres from 'postgres';
import type { ClientEvent } from './people.ts';

// Cairn server processes for the benchmark (an ingest node, identify workers, or both), sending
// events to them, and waiting for stage 2 to catch up.

/** A spawned server and what it needs to be sent events. */
export interface Node {
  server: ServerProcess;
  writeKey: string;
}

/**
 * Spawns a Cairn server with the role and settings given, and reads the demo source's write key
 * (except for a worker node).
 *
 * @example
 * const node = await startNode(db.env, { CAIRN_ROLE: 'ingest' });
 */
export async function startNode(env: Record<string, string>, extra: Record<string, string>): Promise<Node> {
  const more: Record<string, string> = { ...extra };
  if (process.env.BENCH_SERVER_NODE_OPTIONS) more.NODE_OPTIONS = process.env.BENCH_SERVER_NODE_OPTIONS;
  const server = await spawnServer({ ...env, ...more });
  // A worker node serves no admin API (and takes no events).
  if (extra.CAIRN_ROLE === 'worker') return { server, writeKey: '' };
  const res = await fetch(`${server.url}/api/sources`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
  if (!res.ok) throw new Error(`GET /api/sources answered ${res.status}: ${await res.text()}`);
  const { data } = (await res.json()) as { data: { id: string; writeKey: string }[] };
  const demo = data.find((s) => s.id === 'src_demo');
  if (!demo) throw new Error('the demo source src_demo is missing (is CAIRN_DEMO off?)');
  return { server, writeKey: demo.writeKey };
}

/**
 * Stops a server (SIGTERM, SIGKILL after 30 s) and returns the lines of its output that mention an error.
 *
 * @example
 * const errors = await stopNode(node);
 */
export async function stopNode(node: Node | undefined): Promise<string[]> {
  if (!node) return [];
  const { proc } = node.server;
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await node.server.exited;
    clearTimeout(timer);
  }
  return node.server
    .output()
    .split('\n')
    .filter((l) => /error|fail/i.test(l));
}

/**
 * POSTs each group of events as one `/v1/batch` request, `concurrency` at a time, in order of the
 * groups; every request must be answered 200.
 *
 * @example
 * await sendBatches(node, groups, 4);
 */
export async function sendBatches(node: Node, groups: readonly ClientEvent[][], concurrency: number): Promise<void> {
  const auth = `Basic ${Buffer.from(`${node.writeKey}:`).toString('base64')}`;
  let next = 0;
  const client = async () => {
    while (next < groups.length) {
      const group = groups[next++]!;
      const res = await fetch(`${node.server.url}/v1/batch`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: JSON.stringify({ batch: group }),
      });
      if (res.status !== 200) throw new Error(`/v1/batch answered ${res.status}: ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
}

/** The id range of the events whose message ids start with `prefix` (one scan, once they are stored). */
export async function idRange(sql: postgres.Sql, prefix: string): Promise<{ lo: string; hi: string; count: number }> {
  const [row] = await sql<{ lo: string; hi: string; count: number }[]>`
    SELECT min(id)::text AS lo, max(id)::text AS hi, count(*)::int AS count
    FROM events WHERE message_id LIKE ${`${prefix}%`}`;
  if (!row?.count) throw new Error(`no events with message ids ${prefix}* were stored`);
  return row;
}

/**
 * Waits until every event with an id in [lo, hi] is processed, polling every `everyMs` from the
 * lowest id not yet seen processed (cheap: stage 2 works roughly in id order); returns when that was
 * first seen (performance.now()).
 *
 * @example
 * const doneAt = await waitProcessed(sql, range, 600_000);
 */
export async function waitProcessed(
  sql: postgres.Sql,
  range: { lo: string; hi: string },
  timeoutMs: number,
  onProgress?: (lowestUnprocessed: string) => void,
  everyMs = 250,
): Promise<number> {
  const until = performance.now() + timeoutMs;
  let lastReport = performance.now();
  let low = range.lo;
  for (;;) {
    const [row] = await sql<{ low: string | null }[]>`
      SELECT min(id)::text AS low FROM events
      WHERE id >= ${low}::bigint AND id <= ${range.hi}::bigint AND processed_at IS NULL`;
    const seen = performance.now();
    if (!row?.low) return seen;
    low = row.low;
    if (seen > until)
      throw new Error(`stage 2 did not catch up in ${timeoutMs / 1000} s (at id ${low} of ${range.hi})`);
    if (onProgress && seen - lastReport > 10_000) {
      onProgress(low);
      lastReport = seen;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Stage 2's own counters of a worker process (GET /metrics); NaN where the server has none. */
export interface IdentifyMetrics {
  retries: number;
  calls: number;
  msPerCall: number;
  eventsPerCall: number;
}

function metric(text: string, name: string, labels = ''): number {
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : '(?:\\{[^}]*\\})?'} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * Reads stage 2's counters from a server's /metrics: transactions restarted, worker calls (one per
 * batch of up to 50 jobs), their mean duration and events.
 *
 * @example
 * const m = await identifyMetrics(node);
 */
export async function identifyMetrics(node: Node): Promise<IdentifyMetrics> {
  const text = await (await fetch(`${node.server.url}/metrics`)).text();
  const calls = metric(text, 'cairn_identify_batch_duration_seconds_count');
  const processed = metric(text, 'cairn_identify_events_total', 'outcome="processed"');
  return {
    retries: metric(text, 'cairn_identify_retries_total'),
    calls,
    msPerCall: (metric(text, 'cairn_identify_batch_duration_seconds_sum') * 1000) / calls,
    eventsPerCall: processed / calls,
  };
}

/**
 * Wakes the identify workers every `everyMs` with the NOTIFY pg-boss sends when a job is inserted,
 * as a steady stream of new ingest jobs would; returns a function that stops. A backlog drained
 * without new arrivals otherwise waits for the worker's NOTIFY backstop poll between batches
 * (`notifyPollingIntervalSeconds`), which measures that wait rather than stage 2 (see docs/benchmarks.md).
 *
 * @example
 * const stop = nudgeWorkers(sql, 100);
 * stop();
 */
export function nudgeWorkers(sql: postgres.Sql, everyMs: number): () => Promise<void> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      // pg-boss's own channel expression (plans.notifyChannelSql) for its schema, and the queue's name.
      await sql`SELECT pg_notify('pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24), 'identify')`;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })().catch((err: unknown) => {
    console.log(`  waking the workers failed: ${(err as Error).message}`);
  });
  return async () => {
    stopped = true;
    await loop;
  };
}
