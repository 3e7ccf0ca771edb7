// Per-profile delivery order, kept by the ledger (docs/design/delivery.md, "Order per profile").
//
// For a destination whose plugin has `ordering: 'profile'`, a profile's unfinished rows (pending,
// retrying, waiting) form a line. Only the rows at its head are `pending`/`retrying` and have a job, all
// of them in one job (the sender sends them in event order, a failed one holding back the rest); the
// rows behind are `waiting` and have none. A transaction that can change who is at the head takes the
// advisory lock of (destination, profile) first:
//   fan-out     inserts a row `waiting` if the profile already has unfinished rows, else `pending`,
//               and after its commit promotes waiting rows whose line emptied meanwhile;
//   the sender  records final outcomes (delivered, dead, skipped), then promotes the profile's
//               waiting rows once nothing pending or retrying is left (see recordInOrder for the race
//               this leaves and how both sides close it);
//   replay      resets rows to `waiting`, then promotes the heads;
//   the sweep   promotes waiting rows nobody promoted (a crash between a replay's two steps, an
//               upgrade from the FIFO queues, a hand-edited ledger).
import { createHash } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import type { PendingQuery, Row } from 'postgres';
import { bossExecutor, oneRoundTrip, type Sql, type Tx } from '../../db/index.ts';
import { destinationQueueName } from '../../jobs/queues.ts';
import { byLedgerId, jobsFor, type QueuedRow } from './enqueue.ts';
import { type Outcome, recordOutcomes } from './queries/sending.ts';
import type { ActiveDestination } from './types.ts';

// Advisory lock class (first key of pg_advisory_xact_lock(int, int)); identify takes classes 1 and 2.
const DELIVERY_ORDER = 3;

/**
 * Most (destination, profile) locks one transaction takes: Postgres keeps every lock of every
 * transaction in one shared table (max_locks_per_transaction × connections, 6,400 by default).
 */
export const MAX_ORDER_LOCKS = 500;

/** A destination's plugin keeps each profile's events in order. */
export function isOrdered(a: Pick<ActiveDestination, 'plugin'>): boolean {
  return a.plugin.ordering === 'profile';
}

/** The 32-bit lock key of a profile's line at a destination; a collision only serialises more. */
function orderLockKey(destinationId: string, profileId: string): number {
  return createHash('sha1').update(`${destinationId}:${profileId}`).digest().readInt32BE(0);
}

/**
 * The statement that locks the lines of (destination, profile) pairs until the transaction ends,
 * blocking, in sorted key order (every taker sorts, so two never wait on each other in a cycle); not
 * sent yet (see inOrder); null when there is nothing to lock.
 *
 * @example
 * await inOrder(lockQuery(tx, [{ destinationId: 'dst_1', profileId }]), deliveriesInsert(tx, rows));
 */
export function lockQuery(
  tx: Tx,
  pairs: Iterable<{ destinationId: string; profileId: string | null }>,
): PendingQuery<Row[]> | null {
  const keys = new Set<number>();
  for (const p of pairs) if (p.profileId) keys.add(orderLockKey(p.destinationId, p.profileId));
  const sorted = [...keys].sort((a, b) => a - b);
  // unnest returns the array's order and the projection runs row by row: locks are taken sorted.
  return sorted.length
    ? tx`SELECT pg_advisory_xact_lock(${DELIVERY_ORDER}::int, line) FROM unnest(${sorted}::int[]) AS line`
    : null;
}

/**
 * Sends statements of one transaction at once, in this order (postgres.js pipelines what is executed
 * in one go; Postgres runs it in order), and waits for all: a transaction holding line locks then
 * waits on one round trip to its busy worker process instead of one per statement.
 *
 * @example
 * const [, inserted] = await inOrder(lockQuery(tx, pairs), deliveriesInsert(tx, rows));
 */
export function inOrder<T extends readonly ({ execute(): unknown } | null)[]>(
  ...queries: T
): Promise<{ [K in keyof T]: Awaited<T[K]> }> {
  for (const q of queries) q?.execute();
  return Promise.all(queries) as Promise<{ [K in keyof T]: Awaited<T[K]> }>;
}

/**
 * The waiting rows of those profiles that have nothing pending or retrying left at the destination
 * (the rows a promotion makes pending), in no particular order.
 */
function headsOf(tx: Tx, destinationId: string, profileIds: readonly string[]): PendingQuery<QueuedRow[]> {
  // One index probe per profile into deliveries_unfinished_idx: OFFSET 0 keeps each subquery from
  // being flattened into a join. Flattened, a plan made on statistics taken while nothing waited
  // (a replay, a backlog) scanned every unfinished row of the destination once per profile: 68 s for
  // 500 profiles of a 20,000-row replay, against 9 ms this way.
  return tx<QueuedRow[]>`
    SELECT w.id::text, w.profile_id AS "profileId"
    FROM unnest(${[...new Set(profileIds)]}::uuid[]) AS c (p)
    CROSS JOIN LATERAL (
      SELECT id, profile_id FROM deliveries w
      WHERE w.destination_id = ${destinationId} AND w.profile_id = c.p AND w.status = 'waiting'
      OFFSET 0
    ) w
    WHERE NOT EXISTS (
      SELECT 1 FROM deliveries b
      WHERE b.destination_id = ${destinationId} AND b.profile_id = c.p AND b.status IN ('pending', 'retrying')
      OFFSET 0
    )`;
}

/**
 * Makes `pending` the rows headsOf found, with their jobs. The caller holds the lines' locks, so
 * nobody else changes those waiting rows meanwhile (an erasure may delete some: their job then finds
 * nothing to send).
 */
async function promote(
  boss: PgBoss,
  tx: Tx,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
  heads: QueuedRow[],
): Promise<void> {
  if (!heads.length) return;
  // By primary key, whatever the statistics say (IS TRUE hides the status test from partial-index
  // matching: a plan through deliveries_unfinished_idx read every unfinished row of the ledger, 8 ms a
  // call with a few thousand rows waiting); sent along with the job insert.
  const update = tx`UPDATE deliveries SET status = 'pending', updated_at = now()
    WHERE id = ANY(${heads.map((r) => r.id)}::bigint[]) AND (status = 'waiting') IS TRUE`.execute();
  await Promise.all([update, insertJobs(boss, tx, a, [...heads])]);
}

/**
 * Promotes the waiting rows of these profiles that may go now, with their jobs, a few hundred
 * profiles per transaction. Returns how many rows it promoted.
 *
 * @example
 * await promoteProfiles(boss, sql, active, profileIds);
 */
export async function promoteProfiles(
  boss: PgBoss,
  sql: Sql,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
  profileIds: readonly string[],
): Promise<number> {
  const unique = [...new Set(profileIds)];
  let promoted = 0;
  for (let i = 0; i < unique.length; i += MAX_ORDER_LOCKS) {
    const chunk = unique.slice(i, i + MAX_ORDER_LOCKS);
    promoted += (await sql.begin(async (tx) => {
      const [, heads] = await inOrder(
        lockQuery(
          tx,
          chunk.map((profileId) => ({ destinationId: a.destination.id, profileId })),
        ),
        headsOf(tx, a.destination.id, chunk),
      );
      await promote(boss, tx, a, heads);
      return heads.length;
    })) as number;
  }
  return promoted;
}

async function insertJobs(
  boss: PgBoss,
  tx: Tx,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
  rows: QueuedRow[],
): Promise<void> {
  if (rows.length)
    await boss.insert(destinationQueueName(a.destination.id), jobsFor(a, rows.sort(byLedgerId)), {
      db: bossExecutor(tx),
    });
}

/**
 * Of these profiles, those whose line at the destination can move: rows waiting and nothing pending or
 * retrying ahead of them. One probe of deliveries_unfinished_idx per profile (see headsOf).
 */
async function readyLines(sql: Tx, destinationId: string, profileIds: readonly string[]): Promise<string[]> {
  if (!profileIds.length) return [];
  const rows = await sql<{ p: string }[]>`
    SELECT c.p::text FROM unnest(${[...new Set(profileIds)]}::uuid[]) AS c (p)
    WHERE EXISTS (
      SELECT 1 FROM deliveries w
      WHERE w.destination_id = ${destinationId} AND w.profile_id = c.p AND w.status = 'waiting'
      OFFSET 0
    )
    AND NOT EXISTS (
      SELECT 1 FROM deliveries b
      WHERE b.destination_id = ${destinationId} AND b.profile_id = c.p AND b.status IN ('pending', 'retrying')
      OFFSET 0
    )`;
  return rows.map((r) => r.p);
}

/**
 * Promotes, after fan-out committed rows `waiting`, those whose line has meanwhile nothing pending or
 * retrying left: a sender that finished the line's last row while fan-out held the line's lock did not
 * see them (see recordInOrder).
 *
 * @example
 * await promoteIfReady(boss, sql, active, profileIds);
 */
export async function promoteIfReady(
  boss: PgBoss,
  sql: Sql,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
  profileIds: readonly string[],
): Promise<number> {
  const ready = await readyLines(sql, a.destination.id, profileIds);
  return ready.length ? promoteProfiles(boss, sql, a, ready) : 0;
}

/**
 * Records a sender's outcomes. For an ordered destination, final outcomes (delivered, dead, skipped)
 * may free lines that have rows waiting: in the same round trip as the outcomes (recorded first, in
 * their own transaction, without a lock) it looks at the lines it finished, and promotes, locked, those
 * with rows waiting and nothing pending or retrying left. A fan-out may queue rows behind such a line
 * while this records: it held the line's lock and saw the row being finished still pending. So both
 * look after their commit — this for the lines it freed, fan-out for the lines it queued rows in
 * (promoteIfReady) — and whichever looks last sees both commits and promotes; the sweep backs up a
 * crash in between. (Recording under the locks of lines with rows waiting cost a probe, a transaction
 * and lock waits per batch, and made every sender and fan-out queue behind each other.)
 *
 * @example
 * await recordInOrder(boss, sql, { destination, plugin }, outcomes, profileOfRow);
 */
export async function recordInOrder(
  boss: PgBoss,
  sql: Sql,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
  outcomes: readonly Outcome[],
  profileOf: ReadonlyMap<string, string | null>,
): Promise<void> {
  if (!outcomes.length) return;
  const freed = isOrdered(a)
    ? [
        ...new Set(
          outcomes
            .filter((o) => o.status !== 'retrying')
            .map((o) => profileOf.get(o.id))
            .filter((p): p is string => !!p),
        ),
      ]
    : [];
  // A retry changes no line: the profile's later rows keep waiting behind it.
  if (!freed.length) return recordOutcomes(sql, outcomes);
  const [, ready] = await oneRoundTrip(sql, (c) => [
    recordOutcomes(c, outcomes),
    readyLines(c, a.destination.id, freed),
  ]);
  if (ready.length) await promoteProfiles(boss, sql, a, ready);
}

/**
 * Profiles with waiting rows at a destination and nothing pending or retrying ahead of them (null:
 * waiting rows without a profile, which wait for nothing). Reads only the unfinished part of the
 * ledger, through deliveries_unfinished_idx.
 */
async function stuckLines(sql: Tx, destinationId: string, limit: number): Promise<(string | null)[]> {
  const rows = await sql<{ p: string | null }[]>`
    WITH waiting AS (
      SELECT DISTINCT profile_id AS p FROM deliveries
      WHERE destination_id = ${destinationId} AND status = 'waiting'
    )
    SELECT w.p FROM waiting w
    WHERE NOT EXISTS (
      SELECT 1 FROM deliveries b
      WHERE b.destination_id = ${destinationId} AND b.profile_id = w.p AND b.status IN ('pending', 'retrying')
      OFFSET 0 -- a probe per profile (see headsOf)
    )
    LIMIT ${limit}`;
  return rows.map((r) => r.p);
}

/**
 * The sweep: promotes waiting rows whose profile has nothing pending or retrying left at the
 * destination (normally the sender does it as it records outcomes; this catches the rest). Cheap
 * when there is nothing to do: one index scan of the destination's unfinished rows.
 *
 * @example
 * const promoted = await sweepWaiting(boss, sql, active);
 */
export async function sweepWaiting(
  boss: PgBoss,
  sql: Sql,
  a: Pick<ActiveDestination, 'plugin' | 'destination'>,
): Promise<number> {
  let promoted = 0;
  for (;;) {
    const before = promoted;
    const lines = await stuckLines(sql, a.destination.id, MAX_ORDER_LOCKS);
    const profiles = lines.filter((p): p is string => p !== null);
    if (profiles.length) promoted += await promoteProfiles(boss, sql, a, profiles);
    if (lines.includes(null)) {
      promoted += (await sql.begin(async (tx) => {
        const rows = await tx<QueuedRow[]>`
          UPDATE deliveries SET status = 'pending', updated_at = now()
          WHERE destination_id = ${a.destination.id} AND profile_id IS NULL AND status = 'waiting'
          RETURNING id::text, profile_id AS "profileId"`;
        await insertJobs(boss, tx, a, rows);
        return rows.length;
      })) as number;
    }
    if (lines.length < MAX_ORDER_LOCKS || promoted === before) return promoted;
  }
}
