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
 * Recounts rollup keys from the events table (attached events only, as every analytics query counts),
 * under one advisory lock per key taken in a fixed order. Idempotent: a retried job, or two jobs on one
 * key, leave the exact count of what had committed when the last recount ran.
 *
 * @example
 * await sql.begin((tx) => recountRollup(tx, keys));
 */
export async function recountRollup(tx: Transaction, all: readonly RollupKey[]): Promise<void> {
  if (!all.length) return;
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
  await tx`
    DELETE FROM analytics_hourly_counts r
    USING unnest(${hours}::timestamptz[], ${types}::text[], ${events}::text[]) AS k(hour, type, event)
    WHERE r.hour = k.hour AND r.type = k.type AND r.event = k.event`;
  // The events of each key, by events_event_time_idx ((event, timestamp) of attached events; NULL names too).
  await tx`
    INSERT INTO analytics_hourly_counts (hour, type, event, n)
    SELECT k.hour, k.type, k.event, c.n
    FROM unnest(${hours}::timestamptz[], ${types}::text[], ${events}::text[]) AS k(hour, type, event)
    CROSS JOIN LATERAL (
      SELECT count(*) AS n
      FROM events e
      WHERE e.profile_id IS NOT NULL
        AND e.type = k.type
        AND e.timestamp >= k.hour
        AND e.timestamp < k.hour + interval '1 hour'
        AND ((k.event <> '' AND e.event = k.event) OR (k.event = '' AND e.event IS NULL))
    ) c
    WHERE c.n > 0`;
  // The rolled-up properties' sums and values of the same keys (migration 0037), under the same locks.
  await recountValues(tx, hours, types, events);
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The `measure` queue's consumer: events attached (stage 2) and change events recorded (stage 3) recount
 * the hourly rollup keys they fall in (counts, and sums and values of rolled-up properties), and add the
 * people-per-hour rows of the events. Counts never change on a merge (the events only change person);
 * people rows follow merges in the merge's transaction (identify's repointEvents, rollup-people.ts); an
 * erasure recounts its keys and forgets its people rows in its own transaction.
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
      // The counts in a transaction of their own: the profiles' locks above (which identify's chunks wait
      // for) are not held while whole hours are recounted. Both parts are idempotent, so a job retried
      // after the first committed changes nothing twice.
      await deps.sql.begin((tx) => recountRollup(tx, keys));
    },
  );
}
