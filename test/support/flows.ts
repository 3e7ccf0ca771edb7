// What the end-to-end tests of flows read back from a server's database and from its processes: each
// person's journey (the journal, in order), the ledger's flow messages, Postgres's deadlock counter, and
// one Prometheus counter of a process.

import { approveAndPublish } from '@cairn/server/testing';
import type postgres from 'postgres';
import { admin, pool, sendUntilAnswered, sleep } from './http.ts';

/** One run as the journal tells it. */
export interface Journey {
  runId: string;
  userId: string;
  status: string;
  /** `node:outcome` of every journal entry, in order (`-` for entries without a node: `entered`). */
  path: string[];
}

/**
 * Every run of a flow with its person's userId and its journal in order.
 *
 * @example
 * const journeys = await journeysOf(sql, flowId);
 */
export async function journeysOf(sql: postgres.Sql, flowId: string): Promise<Journey[]> {
  return sql<Journey[]>`
    WITH person AS (
      SELECT DISTINCT ON (profile_id) profile_id, value
      FROM identities
      WHERE type = 'userId'
      ORDER BY profile_id, created_at)
    SELECT r.id::text AS "runId", p.value AS "userId", r.status,
      array_agg(coalesce(s.node, '-') || ':' || s.outcome ORDER BY s.id) AS path
    FROM flow_runs r
    JOIN person p ON p.profile_id = r.profile_id
    JOIN flow_steps s ON s.run_id = r.id
    WHERE r.flow_id = ${flowId}
    GROUP BY r.id, p.value, r.status`;
}

/**
 * Journal entries of a flow's runs written more than once for one (run, node, iteration, outcome): a node
 * visit advanced twice. Empty when every visit was decided once.
 *
 * @example
 * expect(await repeatedSteps(sql, flowId)).toEqual([]);
 */
export async function repeatedSteps(
  sql: postgres.Sql,
  flowId: string,
): Promise<{ runId: string; node: string; iteration: number; outcome: string; n: number }[]> {
  return sql`
    SELECT s.run_id::text AS "runId", s.node, s.iteration, s.outcome, count(*)::int AS n
    FROM flow_steps s
    JOIN flow_runs r ON r.id = s.run_id
    WHERE r.flow_id = ${flowId} AND s.node IS NOT NULL
    GROUP BY 1, 2, 3, 4
    HAVING count(*) > 1`;
}

/**
 * The ledger's rows of a flow's messages (rows without an event): idempotency key → how many rows and
 * their statuses.
 *
 * @example
 * const ledger = await ledgerOf(sql, flowId);
 */
export async function ledgerOf(
  sql: postgres.Sql,
  flowId: string,
): Promise<Map<string, { rows: number; statuses: string[] }>> {
  const rows = await sql<{ key: string; rows: number; statuses: string[] }[]>`
    SELECT idempotency_key AS key, count(*)::int AS rows, array_agg(status ORDER BY id) AS statuses
    FROM deliveries
    WHERE event_id IS NULL AND message->'flow'->>'id' = ${flowId}
    GROUP BY idempotency_key`;
  return new Map(rows.map((r) => [r.key, { rows: r.rows, statuses: r.statuses }]));
}

/**
 * Postgres's count of deadlocks detected in the database `sql` is connected to (statistics are flushed
 * asynchronously: read it after a pause for a final value).
 *
 * @example
 * const before = await deadlocks(sql);
 */
export async function deadlocks(sql: postgres.Sql): Promise<number> {
  await sql`SELECT pg_stat_clear_snapshot()`;
  const [row] = await sql<{ n: number }[]>`
    SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`;
  return row?.n ?? 0;
}

/**
 * The value of one Prometheus sample in a process's `/metrics` (0 when absent), e.g.
 * `cairn_flow_steps_total{input="due"}`.
 *
 * @example
 * const due = await metricOf(worker.url, 'cairn_flow_steps_total{input="due"}');
 */
export async function metricOf(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/**
 * Creates a flow through the admin API and publishes it (submitted by the test admin key, approved by a
 * second admin); returns its id.
 *
 * @example
 * const flowId = await publishFlow(url, { version: 1, name: 'x', trigger, entry, nodes, edges });
 */
export async function publishFlow(url: string, definition: object): Promise<string> {
  const flow = await admin(url, '/flows', { method: 'POST', body: JSON.stringify({ definition }) });
  const live = await approveAndPublish(url, flow.id);
  if (live.status !== 200) throw new Error(`publishing flow ${flow.id}: HTTP ${live.status} ${live.text}`);
  return flow.id as string;
}

/**
 * Posts, per person, an identify (with their traits) and then the trigger event, `perBatch` people per
 * /v1/batch request: two requests at a time, or with `paceMs` one after another with that pause between.
 * Retries like an SDK until each batch is answered; throws unless it is a 200.
 *
 * @example
 * await sendPeople(() => ingest.url, writeKey, [{ userId: 'u1', traits: { plan: 'pro' } }], 'Joined');
 */
export async function sendPeople(
  url: () => string,
  writeKey: string,
  people: readonly { userId: string; traits: object }[],
  event: string,
  { perBatch = 100, paceMs = 0 } = {},
): Promise<void> {
  await pool(Math.ceil(people.length / perBatch), paceMs ? 1 : 2, async (b) => {
    if (paceMs && b) await sleep(paceMs);
    const at = Date.now();
    const batch = people.slice(b * perBatch, (b + 1) * perBatch).flatMap(({ userId, traits }) => [
      { type: 'identify', userId, traits, messageId: `${userId}-id`, timestamp: new Date(at - 1) },
      { type: 'track', userId, event, messageId: `${userId}-${event}`, timestamp: new Date(at) },
    ]);
    const answer = await sendUntilAnswered(url, writeKey, { batch });
    if (answer.status !== 200) throw new Error(`batch ${b}: HTTP ${answer.status} ${answer.body}`);
  });
}
