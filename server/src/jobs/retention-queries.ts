import type { Sql, Tx } from '../db/index.ts';

// Retention's SQL (docs/retention.md). Events go by whole monthly partitions (migration 0034): never a
// row DELETE on the hot table. The delivery ledger and flow runs are colder tables whose unique keys
// ((destination, event), (destination, idempotency key), (flow, person) while active) do not contain a
// time, so they cannot be partitioned by time without losing those keys: their finished rows go in
// batches instead, each batch a short transaction found through the primary key or the BRIN index.

/** Rows one retention statement deletes at most (a short transaction, a bounded WAL burst). */
export const RETENTION_BATCH = 5000;

// Partition names come from cairn_ensure_event_partition; nothing else is ever dropped.
const PARTITION_NAME = /^events_(legacy|p\d{6})$/;

const DAY_MS = 24 * 60 * 60 * 1000;
// The advisory lock cairn_ensure_event_partition takes before it creates a partition (migration 0035).
const ENSURE_LOCK = 727746034;

/** The moment before which something `days` old has expired. */
export const cutoffOf = (now: Date, days: number): Date => new Date(now.getTime() - days * DAY_MS);

/**
 * Makes sure the partitions of this month and the `monthsAhead` next ones exist (UTC months), so an
 * insert never waits for DDL; returns the ones created.
 *
 * @example
 * await ensureEventPartitions(sql, new Date(), 2); // ['events_p202702']
 */
export async function ensureEventPartitions(sql: Sql, now: Date, monthsAhead: number): Promise<string[]> {
  const created: string[] = [];
  for (let i = 0; i <= monthsAhead; i++) {
    const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
    const [row] = await sql<{ created: boolean }[]>`SELECT cairn_ensure_event_partition(${month}) AS created`;
    if (row?.created) created.push(`events_p${month.toISOString().slice(0, 7).replace('-', '')}`);
  }
  return created;
}

/** One partition of events and its bounds ([lower, upper), lower null = unbounded). */
export interface EventPartition {
  name: string;
  lowerBound: Date | null;
  upperBound: Date;
}

/**
 * The partitions of events, oldest first.
 *
 * @example
 * const parts = await eventPartitions(sql);
 */
export async function eventPartitions(sql: Sql): Promise<EventPartition[]> {
  return sql<EventPartition[]>`
    SELECT name, lower_bound AS "lowerBound", upper_bound AS "upperBound"
    FROM event_partitions
    ORDER BY upper_bound`;
}

/**
 * The retention horizon: the start of the oldest kept partition of events plus one day (the largest
 * clock skew accepted), or null while nothing was ever dropped (events_legacy, unbounded below, is still
 * there). Every event whose timestamp is at or after it is still stored; before it some events are gone,
 * so the hourly rollup freezes those hours and analytics queries reading them are refused
 * (docs/retention.md).
 *
 * @example
 * const horizon = await retentionHorizon(sql); // 2027-02-02T00:00:00.000Z, or null
 */
export async function retentionHorizon(sql: Tx): Promise<Date | null> {
  const [row] = await sql<{ horizon: Date | null }[]>`
    SELECT CASE WHEN count(*) = 0 OR bool_or(lower_bound IS NULL) THEN NULL
      ELSE min(lower_bound) + interval '1 day' END AS horizon
    FROM event_partitions`;
  return row?.horizon ?? null;
}

/**
 * Drops one expired partition of events: first the dedup keys its events hold (in batches, walking the
 * partition by id; a key whose event_id is another event's is not this event's and stays), then the
 * partition itself, in a transaction that gives up after `lockTimeoutMs` rather than queue inserts behind
 * its lock (the next run tries again). Returns the keys released.
 *
 * @example
 * await dropEventPartition(sql, 'events_p202401');
 */
export async function dropEventPartition(sql: Sql, name: string, lockTimeoutMs = 2000): Promise<number> {
  if (!PARTITION_NAME.test(name)) throw new Error(`not an events partition: ${name}`);
  let last = '0';
  let released = 0;
  for (;;) {
    const [row] = await sql<{ last: string | null; n: number; released: number }[]>`
      WITH batch AS (
        SELECT id, source_id, message_id
        FROM ${sql(name)}
        WHERE id > ${last}
        ORDER BY id
        LIMIT ${RETENTION_BATCH}
      ), gone AS (
        DELETE FROM event_keys k
        USING batch b
        WHERE k.source_id = b.source_id
          AND k.message_id = b.message_id
          AND k.event_id = b.id
        RETURNING 1
      )
      SELECT
        (SELECT max(id)::text FROM batch) AS last,
        (SELECT count(*)::int FROM batch) AS n,
        (SELECT count(*)::int FROM gone) AS released`;
    released += row!.released;
    if (!row!.last || row!.n < RETENTION_BATCH) break;
    last = row!.last;
  }
  await sql.begin(async (tx) => {
    await tx`SELECT set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
    // cairn_ensure_event_partition's lock first (migration 0035), taken by it before any table lock: a drop
    // and a partition being created never hold each other's tables (one deadlock seen in a test run).
    await tx`SELECT pg_advisory_xact_lock(${ENSURE_LOCK})`;
    await tx`DROP TABLE ${tx(name)}`;
    await tx`DELETE FROM event_partitions WHERE name = ${name}`;
  });
  return released;
}

/**
 * Deletes finished delivery ledger rows (delivered, skipped, dead) last changed before `cutoff`, walking
 * the ledger by id (ids grow with created_at) and stopping at the first batch created after the cutoff.
 * Pending, waiting and retrying rows stay whatever their age. Returns the rows deleted.
 *
 * @example
 * await deleteFinishedDeliveries(sql, cutoffOf(new Date(), 90));
 */
export async function deleteFinishedDeliveries(sql: Sql, cutoff: Date): Promise<number> {
  let last = '0';
  let deleted = 0;
  for (;;) {
    const [row] = await sql<{ last: string | null; n: number; deleted: number; done: boolean }[]>`
      WITH batch AS (
        SELECT id, created_at
        FROM deliveries
        WHERE id > ${last}
        ORDER BY id
        LIMIT ${RETENTION_BATCH}
      ), gone AS (
        DELETE FROM deliveries d
        USING batch b
        WHERE d.id = b.id
          AND d.status IN ('delivered', 'skipped', 'dead')
          AND d.updated_at < ${cutoff}
        RETURNING 1
      )
      SELECT
        (SELECT max(id)::text FROM batch) AS last,
        (SELECT count(*)::int FROM batch) AS n,
        (SELECT count(*)::int FROM gone) AS deleted,
        coalesce((SELECT min(created_at) >= ${cutoff} FROM batch), true) AS done`;
    deleted += row!.deleted;
    if (row!.done || !row!.last || row!.n < RETENTION_BATCH) return deleted;
    last = row!.last;
  }
}

/**
 * Deletes finished flow runs (completed, exited, failed) that entered and ended before `cutoff`, with
 * their journal, except each person's latest run of each flow: the re-entry policy (`once`, or a wait
 * since the last entry) reads only whether a run exists and when the latest entered, so it decides as
 * before. Returns the runs deleted.
 *
 * @example
 * await deleteFinishedRuns(sql, cutoffOf(new Date(), 180));
 */
export async function deleteFinishedRuns(sql: Sql, cutoff: Date): Promise<number> {
  let deleted = 0;
  for (;;) {
    // Old runs are found through flow_runs_entered_brin; "a later run exists" through flow_runs_person_idx.
    const [row] = await sql<{ n: number }[]>`
      WITH old AS (
        SELECT r.id
        FROM flow_runs r
        WHERE r.entered_at < ${cutoff}
          AND r.status IN ('completed', 'exited', 'failed')
          AND coalesce((r.state ->> 'endedAt')::float8, 0) < ${cutoff.getTime()}
          AND EXISTS (
            SELECT 1
            FROM flow_runs later
            WHERE later.profile_id = r.profile_id
              AND later.flow_id = r.flow_id
              AND later.entered_at > r.entered_at
          )
        LIMIT ${RETENTION_BATCH}
      ), journal AS (
        DELETE FROM flow_steps s
        USING old
        WHERE s.run_id = old.id
      ), runs AS (
        DELETE FROM flow_runs r
        USING old
        WHERE r.id = old.id
        RETURNING 1
      )
      SELECT count(*)::int AS n FROM runs`;
    deleted += row!.n;
    if (row!.n < RETENTION_BATCH) return deleted;
  }
}
