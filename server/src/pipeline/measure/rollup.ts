import type { PgBoss } from 'pg-boss';
import type { Sql, Transaction } from '../../db/index.ts';
import { QUEUES } from '../../jobs/queues.ts';
import { retentionHorizon } from '../../jobs/retention-queries.ts';
import type { Inbox } from '../topics.ts';
import { addPeopleOf, type RollupKey } from './rollup-people.ts';
import { addPeriodPeopleOf } from './rollup-period-people.ts';
import { addTraitCellsOf } from './rollup-traits.ts';
import { recountValues } from './rollup-values.ts';

// Advisory lock class of a rollup key (identify 1-2, delivery order 3, compute 4-6, automate 7-9): two
// recounts of one (hour, type, event) never interleave, so the last one to commit read every event before it.
const ROLLUP = 10;
// Advisory lock class of the count deltas' fold (one key): folds never run at once.
const FOLD = 46;

export type { RollupKey } from './rollup-people.ts';

type Tx = Transaction | Sql;

/**
 * The rollup keys the given events fall in (events.id), or those of a profile's events (an erasure).
 *
 * @example
 * const keys = await rollupKeysOf(tx, { ids: ['41', '42'] });
 */
export async function rollupKeysOf(tx: Tx, of: { ids: readonly string[] } | { profileIds: readonly string[] }) {
  const where =
    'ids' in of
      ? tx`id = ANY(${of.ids as string[]}::bigint[])`
      : tx`profile_id = ANY(${of.profileIds as string[]}::uuid[])`;
  return tx<RollupKey[]>`
    SELECT DISTINCT
      to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"') AS hour,
      type,
      coalesce(event, '') AS event
    FROM events
    WHERE ${where}`;
}

/**
 * Recounts the rolled-up properties' sums and values (analytics_hourly_values, migration 0037) of rollup keys
 * from the events table (attached events only, as every analytics query counts), under one advisory lock
 * per key taken in a fixed order. Idempotent: a retried job, or two jobs on one key, leave the exact values
 * of what had committed when the last recount ran. The counts themselves are not recounted: the events
 * table's triggers write their deltas (migration 0045, {@link foldCountDeltas}).
 *
 * @example
 * await sql.begin((tx) => recountRollup(tx, keys));
 */
export async function recountRollup(tx: Transaction, all: readonly RollupKey[]): Promise<void> {
  if (!all.length) return;
  // Keys of events without a rolled-up property (nearly all) cost this one probe of the registry.
  const [some] = await tx<{ any: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM analytics_rollup_properties WHERE event = ANY(${all.map((k) => k.event)}::text[])) AS any`;
  if (!some?.any) return;
  // Hours before the retention horizon are frozen (docs/retention.md): some of their events are in dropped
  // partitions, so a recount would lose them. Read in this transaction, as every recount reads it.
  const horizon = await retentionHorizon(tx);
  const keys = horizon ? all.filter((k) => Date.parse(k.hour) >= horizon.getTime()) : all;
  if (!keys.length) return;
  const sorted = [...keys].sort((a, b) =>
    a.hour === b.hour ? (a.type === b.type ? cmp(a.event, b.event) : cmp(a.type, b.type)) : cmp(a.hour, b.hour),
  );
  const hours = sorted.map((k) => k.hour);
  const types = sorted.map((k) => k.type);
  const events = sorted.map((k) => k.event);
  await tx`
    SELECT pg_advisory_xact_lock(${ROLLUP}::int, hashtext(k.hour || '|' || k.type || '|' || k.event))
    FROM unnest(${hours}::text[], ${types}::text[], ${events}::text[]) WITH ORDINALITY AS k(hour, type, event, i)
    ORDER BY k.i`;
  await recountValues(tx, hours, types, events);
}

/**
 * Folds the pending count deltas (analytics_count_deltas, written by the events table's triggers in the
 * transaction of each change, migration 0045) into analytics_hourly_counts: each delta row is deleted and
 * added in one statement, so it is added exactly once; a key whose count reaches 0 goes. One fold at a time
 * (folds are short: the table holds the deltas of the last few jobs), so that the upserts never deadlock and
 * a job's own deltas, committed with its events before the job was queued, are folded by the time it ends.
 * Readers add the pending deltas anyway (an erasure's wait for the next job), so nothing is late.
 *
 * @example
 * await sql.begin((tx) => foldCountDeltas(tx));
 */
export async function foldCountDeltas(tx: Transaction): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(${FOLD}::int, 0)`;
  const folded = await tx<{ hour: string; type: string; event: string; gone: boolean }[]>`
    WITH d AS (
      DELETE FROM analytics_count_deltas RETURNING hour, type, event, n
    ), s AS (
      SELECT hour, type, event, sum(n)::bigint AS n FROM d GROUP BY 1, 2, 3 HAVING sum(n) <> 0
    )
    INSERT INTO analytics_hourly_counts AS c (hour, type, event, n)
    SELECT hour, type, event, n FROM s ORDER BY 1, 2, 3
    ON CONFLICT (hour, type, event) DO UPDATE SET n = c.n + excluded.n
    RETURNING c.hour::text AS hour, c.type, c.event, c.n <= 0 AS gone`;
  const emptied = folded.filter((r) => r.gone);
  if (!emptied.length) return;
  await tx`
    DELETE FROM analytics_hourly_counts r
    USING unnest(${emptied.map((r) => r.hour)}::timestamptz[], ${emptied.map((r) => r.type)}::text[], ${emptied.map((r) => r.event)}::text[]) AS k(hour, type, event)
    WHERE r.hour = k.hour AND r.type = k.type AND r.event = k.event AND r.n <= 0`;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The `measure` queue's consumer: events attached (stage 2) and change events recorded (stage 3) add the
 * people-per-hour rows of the events, recount the sums and values of rolled-up properties of the hourly keys
 * they fall in, and fold the pending count deltas the events' triggers wrote. Counts never change on a merge
 * (the events only change person); people rows follow merges in the merge's transaction (identify's
 * repointEvents, rollup-people.ts); an erasure's DELETE writes its count deltas, and it recounts its keys'
 * values and forgets its people rows in its own transaction.
 *
 * @example
 * await startRollupWorker({ sql, boss });
 */
export async function startRollupWorker(deps: { sql: Sql; boss: PgBoss }): Promise<void> {
  await deps.boss.work<Inbox<'measure'>>(
    QUEUES.measure.name,
    {
      batchSize: 20,
      pollingIntervalSeconds: 1,
      notifyPollingIntervalSeconds: 2,
      burstWhenBatchFull: true,
    },
    async function rollUp(jobs) {
      const ids = jobs.flatMap((j) => j.data.ids);
      let keys: RollupKey[] = [];
      await deps.sql.begin(async (tx) => {
        // People per hour first: rows added (never recounted; merges move them in their own transaction)
        // under the profiles' locks; it returns the events' count keys.
        keys = await addPeopleOf(tx, ids);
        // People per local day of kept zones and events (migration 0042) under the same locks.
        await addPeriodPeopleOf(tx, ids);
        // Trait breakdowns (migration 0044): cells of these events, and people whose kept trait changed.
        const restructured = jobs.flatMap((j) => ('restructured' in j.data ? (j.data.restructured ?? []) : []));
        await addTraitCellsOf(tx, ids, restructured);
      });
      // Values and counts in a transaction of their own: the profiles' locks above (which identify's chunks
      // wait for) are not held while whole hours of values are recounted. Both parts are idempotent (a fold
      // deletes what it adds), so a job retried after the first committed changes nothing twice.
      await deps.sql.begin(async (tx) => {
        await recountRollup(tx, keys);
        await foldCountDeltas(tx);
      });
    },
  );
}
