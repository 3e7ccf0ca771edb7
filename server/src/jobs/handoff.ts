import { createHash } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import type { PendingQuery, Row } from 'postgres';
import { bossExecutor, type Transaction, type Tx } from '../db/index.ts';
import { type Facts, SUBSCRIPTIONS, type Topic } from '../pipeline/topics.ts';
import { BOSS_SCHEMA } from './queues.ts';

/**
 * Hands a fact over to every queue subscribed to its topic, inside the producer's transaction: the
 * jobs commit with what made the fact true, or neither does. A process that dies after the commit has
 * already handed it over; one that dies before leaves nothing to hand over. The type takes only a
 * transaction (`sql.begin`'s), never the pool: a hand-off after the commit does not compile.
 */
export type HandOff = <T extends Topic>(tx: Transaction, topic: T, payload: Facts[T]) => Promise<void>;

/**
 * The one way stages hand work to each other (pipeline/topics.ts says who hears of what).
 *
 * @example
 * const handOff = createHandOff(boss);
 * await sql.begin(async (tx) => {
 *   const ids = await insertEvents(tx, rows);
 *   await handOff(tx, 'events.stored', { ids });
 * });
 */
export function createHandOff(boss: PgBoss): HandOff {
  return async function handOff(tx, topic, payload) {
    const db = bossExecutor(tx);
    // One job per subscriber; the payload keeps its fields at the top (`data->'ids'` in SQL) beside the topic.
    for (const queue of SUBSCRIPTIONS[topic]) await boss.send(queue, { ...payload, topic }, { db });
  };
}

/**
 * Hands over a list of event ids in facts of at most `size` ids each (a job stays small enough for one
 * consumer call, and a retry redoes little).
 *
 * @example
 * await handOffIds(handOff, tx, 'memberships.changed', eventIds);
 */
export async function handOffIds(
  handOff: HandOff,
  tx: Transaction,
  topic: 'memberships.changed' | 'events.stored',
  ids: readonly string[],
  size = 1000,
): Promise<void> {
  for (let i = 0; i < ids.length; i += size) await handOff(tx, topic, { ids: ids.slice(i, i + size) });
}

// pg-boss's channel for its schema (its plans' notifyChannelSql: sha224 of the schema name).
const NOTIFY_CHANNEL = `pgboss_${createHash('sha224').update(BOSS_SCHEMA).digest('hex').slice(0, 24)}`;

/** CTEs that hand a statement's own rows over, and the condition that makes Postgres run all of them. */
export interface StatementHandOff {
  /** `handoff_jobs AS (...), handoff_notified AS (...)`, to follow the CTE that names the ids. */
  ctes: PendingQuery<Row[]>;
  /** For the statement's WHERE: reads `handoff_notified` (an unread CTE that modifies nothing never runs). */
  settled: PendingQuery<Row[]>;
}

/**
 * The hand-off of `{ ids }` as part of the single statement that stores them, for a writer that wants one
 * round trip (a statement is atomic without BEGIN and COMMIT): the ids of the rows the CTE `from` returns
 * (column `id`, in id order) go to every queue subscribed to `topic` as one job each, or no job when it
 * returns none. The job is the one `handOff(tx, topic, { ids })` writes through pg-boss's `send` (its
 * `insertJobs` of pg-boss 12, with no send options: the queue's settings, pg-boss's defaults for a
 * queue deleted meanwhile, which then fails on the job's key to its queue), and the queue's workers are
 * woken as pg-boss wakes them (`notify`). ingest/writer.test.ts compares the two jobs column by
 * column. Every queue here keeps its jobs in pg-boss's common table (none is declared `partition: true`).
 *
 * @example
 * const h = handOffInStatement(sql, 'events.stored', 'stored');
 * await sql`WITH stored AS (INSERT ... RETURNING id), ${h.ctes} SELECT id FROM stored WHERE ${h.settled}`;
 */
export function handOffInStatement(
  sql: Tx,
  topic: 'events.stored' | 'memberships.changed',
  from: string,
): StatementHandOff {
  const boss = sql(BOSS_SCHEMA);
  const now = sql`${boss}.job_now()`;
  // pg-boss's QUEUE_DEFAULTS, used only when the queue row is gone (the insert then fails on q_fkey).
  const ctes = sql`
    handoff_jobs AS (
      INSERT INTO ${boss}.job_common (
        id, name, data, priority, start_after, created_on, singleton_key, singleton_on, group_id, group_tier,
        expire_seconds, deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max,
        policy, dead_letter, heartbeat_seconds, blocked, blocking, pending_dependencies, trace_context
      )
      SELECT
        gen_random_uuid(),
        s.queue,
        jsonb_build_object('ids', f.ids, 'topic', ${topic}::text),
        0,
        ${now},
        ${now},
        NULL::text,
        NULL::timestamp,
        NULL::text,
        NULL::text,
        COALESCE(q.expire_seconds, 900),
        COALESCE(q.deletion_seconds, 604800),
        ${now} + COALESCE(q.retention_seconds, 1209600) * interval '1s',
        COALESCE(q.retry_limit, 2),
        COALESCE(q.retry_delay, 0),
        COALESCE(q.retry_backoff, false),
        q.retry_delay_max,
        q.policy,
        q.dead_letter,
        q.heartbeat_seconds,
        false,
        false,
        0,
        NULL::jsonb
      -- HAVING: no row stored, no job.
      FROM (SELECT jsonb_agg(id::text ORDER BY id) AS ids FROM ${sql(from)} HAVING count(*) > 0) f
      CROSS JOIN unnest(${SUBSCRIPTIONS[topic] as readonly string[] as string[]}::text[]) AS s (queue)
      LEFT JOIN ${boss}.queue q ON q.name = s.queue
      ON CONFLICT DO NOTHING
      RETURNING name, start_after
    ),
    -- One notification per queue that asks for it, on the channel pg-boss listens to.
    handoff_notified AS (
      SELECT pg_notify(${NOTIFY_CHANNEL}, j.name)
      FROM handoff_jobs j
      JOIN ${boss}.queue q ON q.name = j.name
      WHERE q.notify
        AND j.start_after <= ${now}
    )`;
  return { ctes, settled: sql`(SELECT count(*) FROM handoff_notified) >= 0` };
}
