import { TEST_ADMIN_KEY } from '@cairn/server/testing';
import type postgres from 'postgres';
import type { Node } from '../identify/servers.ts';
import type { Receivers } from './receiver.ts';
import type { PgCounters, SendCalls } from './types.ts';

export type { PgCounters } from './types.ts';

// What bench:deliver asks of Cairn: destinations through the admin API, replays, the ledger, the
// sender's own metrics, and waiting until every event reached every receiver.

async function api<T>(node: Node, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${node.server.url}/api${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
  });
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} /api${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Creates a webhook destination through `POST /api/destinations`; returns its id.
 *
 * @example
 * const id = await createWebhook(node, 'batch', { url, mode: 'batch' });
 */
export async function createWebhook(
  node: Node,
  name: string,
  settings: Record<string, unknown>,
  concurrency?: number,
): Promise<string> {
  const body = { name, plugin: 'webhook', settings, ...(concurrency ? { concurrency } : {}) };
  const d = await api<{ id: string; requiredPurposes: string[] }>(node, '/destinations', {
    method: 'POST',
    body: JSON.stringify(body),
  });
  return d.id;
}

/**
 * Puts every delivery of events with timestamps in [from, to) back to pending and queues it again
 * (`POST /api/destinations/:id/replay`); returns how many.
 *
 * @example
 * const n = await replay(node, id, from, to);
 */
export async function replay(node: Node, id: string, from: Date, to: Date): Promise<number> {
  const r = await api<{ replayed: number }>(node, `/destinations/${id}/replay`, {
    method: 'POST',
    body: JSON.stringify({ from: from.toISOString(), to: to.toISOString() }),
  });
  return r.replayed;
}

/**
 * Ledger rows per destination and status for the events with ids in [lo, hi], and how many rows took
 * more attempts than `attempts` (1 after a first delivery, 2 after a replay of it: retries).
 *
 * @example
 * const { byDestination } = await ledger(sql, range);
 */
export async function ledger(
  sql: postgres.Sql,
  range: { lo: string; hi: string },
  attempts = 1,
): Promise<{ byDestination: Map<string, Record<string, number>>; retried: number; reasons: string[] }> {
  const rows = await sql<{ d: string; status: string; n: number; retried: number }[]>`
    SELECT destination_id AS d, status, count(*)::int AS n,
      count(*) FILTER (WHERE attempts > ${attempts}::int)::int AS retried
    FROM deliveries WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint
    GROUP BY 1, 2`;
  const byDestination = new Map<string, Record<string, number>>();
  for (const r of rows) byDestination.set(r.d, { ...byDestination.get(r.d), [r.status]: r.n });
  const reasons = await sql<{ reason: string; n: number }[]>`
    SELECT reason, count(*)::int AS n FROM deliveries
    WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint AND status <> 'delivered' AND reason IS NOT NULL
    GROUP BY 1 ORDER BY 2 DESC LIMIT 5`;
  return {
    byDestination,
    retried: rows.reduce((n, r) => n + r.retried, 0),
    reasons: reasons.map((r) => `${r.n} x ${r.reason}`),
  };
}

function metric(text: string, name: string, labels: string): number {
  const escaped = labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${name}\\{${escaped}\\} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * The plugin send() calls of each destination and their mean duration, from a server's /metrics
 * (counted since it started).
 *
 * @example
 * const calls = await sendCalls(worker, [{ name: 'batch', id }]);
 */
export async function sendCalls(
  node: Node,
  destinations: readonly { name: string; id: string }[],
): Promise<Record<string, SendCalls>> {
  const text = await (await fetch(`${node.server.url}/metrics`)).text();
  const out: Record<string, SendCalls> = {};
  for (const d of destinations) {
    const labels = `destination="${d.id}"`;
    const calls = metric(text, 'cairn_delivery_send_duration_seconds_count', labels);
    const sum = metric(text, 'cairn_delivery_send_duration_seconds_sum', labels);
    out[d.name] = { calls, meanMs: (sum * 1000) / calls };
  }
  return out;
}

/**
 * Waits until each receiver recorded at least `expected[i]` events and the ledger shows every
 * delivery of events in [lo, hi] delivered (or until the timeout: the caller reports what is missing).
 * Returns whether it completed.
 *
 * @example
 * const complete = await waitDelivered(receivers, [n, n, n], sql, range, ids, 300_000);
 */
export async function waitDelivered(
  receivers: Receivers,
  expected: readonly number[],
  sql: postgres.Sql,
  range: { lo: string; hi: string },
  destinationIds: readonly string[],
  timeoutMs: number,
  label: string,
): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  let lastReport = performance.now();
  for (;;) {
    const counts = await receivers.count();
    if (counts.every((c, i) => c >= expected[i]!)) {
      const { byDestination } = await ledger(sql, range);
      const done = destinationIds.every((id) => {
        const s = byDestination.get(id) ?? {};
        return !s.pending && !s.retrying && !s.waiting;
      });
      if (done) return true;
    }
    if (performance.now() > until) {
      console.log(`  ${label}: gave up after ${timeoutMs / 1000} s with ${counts.join(' / ')} arrivals`);
      return false;
    }
    if (performance.now() - lastReport > 10_000) {
      console.log(`  ${label}: ${counts.join(' / ')} of ${expected.join(' / ')} arrived`);
      lastReport = performance.now();
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Reads the database's commit count and the ledger's sequential scans (cumulative statistics are
 * sent at transaction end with a short delay: wait a second before reading after a phase).
 *
 * @example
 * const before = await pgCounters(sql);
 */
export async function pgCounters(sql: postgres.Sql): Promise<PgCounters> {
  await sql`SELECT pg_stat_clear_snapshot()`;
  const [r] = await sql<{ commits: number; scans: number; rows: number }[]>`
    SELECT (SELECT xact_commit::float8 FROM pg_stat_database WHERE datname = current_database()) AS commits,
      coalesce((SELECT seq_scan::float8 FROM pg_stat_user_tables WHERE relname = 'deliveries'), 0) AS scans,
      coalesce((SELECT seq_tup_read::float8 FROM pg_stat_user_tables WHERE relname = 'deliveries'), 0) AS rows`;
  return { commits: r!.commits, ledgerScans: r!.scans, ledgerScanRows: r!.rows };
}

/**
 * The counters' change over a phase; waits for the statistics of its last transactions to arrive.
 *
 * @example
 * const d = await pgDelta(sql, before);
 */
export async function pgDelta(sql: postgres.Sql, before: PgCounters): Promise<PgCounters> {
  await new Promise((r) => setTimeout(r, 1100));
  const after = await pgCounters(sql);
  return {
    commits: after.commits - before.commits,
    ledgerScans: after.ledgerScans - before.ledgerScans,
    ledgerScanRows: after.ledgerScanRows - before.ledgerScanRows,
  };
}

/**
 * Jobs put on each destination's queue since `since` (database time), by destination name.
 *
 * @example
 * const jobs = await jobsSince(sql, dests, since);
 */
export async function jobsSince(
  sql: postgres.Sql,
  destinations: readonly { name: string; id: string }[],
  since: Date,
): Promise<Record<string, number>> {
  const rows = await sql<{ name: string; n: number }[]>`
    SELECT name, count(*)::int AS n FROM pgboss.job
    WHERE name = ANY(${destinations.map((d) => `deliver.${d.id}`)}) AND created_on >= ${since}
    GROUP BY name`;
  const by = new Map(rows.map((r) => [r.name, r.n]));
  return Object.fromEntries(destinations.map((d) => [d.name, by.get(`deliver.${d.id}`) ?? 0]));
}

/** The database's clock. */
export async function dbNow(sql: postgres.Sql): Promise<Date> {
  const [r] = await sql<{ now: Date }[]>`SELECT clock_timestamp() AS now`;
  return r!.now;
}

/**
 * Deletes the delivery jobs still queued or active on the destinations' queues (after a phase that
 * did not catch up, with its servers stopped), and marks the ledger rows left unfinished `dead` (else
 * the next phase's sweep would send the waiting ones); returns how many jobs.
 *
 * @example
 * const n = await purgeDeliveryJobs(sql, dests);
 */
export async function purgeDeliveryJobs(sql: postgres.Sql, destinations: readonly { id: string }[]): Promise<number> {
  const r = await sql`
    DELETE FROM pgboss.job
    WHERE name = ANY(${destinations.map((d) => `deliver.${d.id}`)}) AND state IN ('created', 'retry', 'active')`;
  await sql`
    UPDATE deliveries SET status = 'dead', reason = 'bench: left unfinished by a phase'
    WHERE destination_id = ANY(${destinations.map((d) => d.id)}) AND status IN ('pending', 'waiting', 'retrying')`;
  return r.count;
}
