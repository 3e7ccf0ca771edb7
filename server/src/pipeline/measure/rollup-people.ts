import type { Transaction, Tx } from '../../db/index.ts';
import { lockKey } from '../identify/locks.ts';

// Identify's advisory lock class of a profile (identify/locks.ts): merges and their undo hold it,
// exclusively, on every profile whose events they re-point. The measure queue takes it shared on the
// profiles of the events it adds rows for, so a row never names a profile a merge has just emptied.
const PROFILE = 2;
/** How often a job re-reads its events when a merge moved them to profiles it had not locked. */
const MAX_ROUNDS = 5;

/** One row of analytics_hourly_counts: a UTC hour, an event type and name ('' when it has none). */
export interface RollupKey {
  hour: string;
  type: string;
  event: string;
}

/** Person-hours (analytics_hourly_people rows), as parallel arrays: hour (ISO, UTC) and profile id. */
export interface PersonHours {
  hours: string[];
  people: string[];
}

const asPersonHours = (rows: readonly { hour: string; p: string }[]): PersonHours => ({
  hours: rows.map((r) => r.hour),
  people: rows.map((r) => r.p),
});

async function insertPersonHours(tx: Tx, m: PersonHours): Promise<void> {
  if (!m.hours.length) return;
  await tx`
    INSERT INTO analytics_hourly_people (hour, profile_id)
    SELECT DISTINCT k.hour, k.p
    FROM unnest(${m.hours}::timestamptz[], ${m.people}::uuid[]) AS k(hour, p)
    ON CONFLICT DO NOTHING`;
}

/**
 * Adds the people-per-hour rows of newly attached events, and returns the hourly count keys of the attached
 * ones (what rollupKeysOf would read again: the measure job recounts them). A row exists while an attached event of
 * that person is in that hour, so adding is idempotent (a retried job inserts nothing twice). Merges
 * move rows in their own transaction ({@link followRepoint}); so as not to re-add a row a merge
 * committed away after this job read its events, the profiles are locked shared (merges lock them
 * exclusively) and the events read again under the locks.
 *
 * @example
 * await sql.begin((tx) => addPeopleOf(tx, ['41', '42']));
 */
export async function addPeopleOf(tx: Transaction, ids: readonly string[]): Promise<RollupKey[]> {
  if (!ids.length) return [];
  const locked = new Set<number>();
  // The events' hourly count keys, from the first read (an event's hour, type and name never change).
  let counted: RollupKey[] | undefined;
  for (let round = 0; ; round++) {
    // Each read is a new statement snapshot: it sees every merge that committed before the locks.
    const rows = await tx<{ hour: string; p: string; type: string; event: string }[]>`
      SELECT DISTINCT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"') AS hour,
        profile_id::text AS p, ${counted ? tx`''` : tx`type`} AS type, ${counted ? tx`''` : tx`coalesce(event, '')`} AS event
      FROM events
      WHERE id = ANY(${ids as string[]}::bigint[]) AND profile_id IS NOT NULL`;
    counted ??= [...new Map(rows.map((r) => [`${r.hour}\n${r.type}\n${r.event}`, r])).values()].map(
      ({ hour, type, event }) => ({ hour, type, event }),
    );
    const keys = [...new Set(rows.map((r) => lockKey(r.p)))].filter((k) => !locked.has(k));
    if (!keys.length) {
      await insertPersonHours(tx, asPersonHours(rows));
      return counted;
    }
    if (round === 0) {
      // Sorted and blocking, like every taker of this class: no cycle with a merge.
      const sorted = keys.sort((a, b) => a - b);
      await tx`SELECT pg_advisory_xact_lock_shared(${PROFILE}::int, k) FROM unnest(${sorted}::int[]) AS k`;
    } else {
      // Out of order now (a merge moved events to other profiles between the reads): never wait.
      const [row] = await tx<{ ok: boolean }[]>`
        SELECT bool_and(pg_try_advisory_xact_lock_shared(${PROFILE}::int, k)) AS ok FROM unnest(${keys}::int[]) AS k`;
      if (!row?.ok || round >= MAX_ROUNDS) throw new Error('rollup: profiles are being merged; the job is retried');
    }
    for (const k of keys) locked.add(k);
  }
}

/** What a re-point moves: per person-hour, the profile it leaves (`from`) and the one it joins (`to`). */
export interface Moves {
  hours: string[];
  from: string[];
  to: string[];
}

/**
 * The person-hours that re-pointing these profiles' events will move (identify's repointEvents
 * predicate), read in the merge's transaction before its UPDATE; {@link followRepoint} applies them after.
 *
 * @example
 * const moves = await movesOf(tx, profiles);
 * await tx`UPDATE events ...`;
 * await followRepoint(tx, moves);
 */
export async function movesOf(tx: Tx, profiles: readonly string[]): Promise<Moves> {
  const rows = await tx<{ hour: string; from: string; to: string }[]>`
    SELECT DISTINCT to_char(date_trunc('hour', e.timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"') AS hour, e.profile_id::text AS from, i.profile_id::text AS to
    FROM events e
    JOIN identities i ON i.key = e.identity_key
    WHERE e.profile_id = ANY(${profiles as string[]}::uuid[]) AND e.profile_id <> i.profile_id`;
  return { hours: rows.map((r) => r.hour), from: rows.map((r) => r.from), to: rows.map((r) => r.to) };
}

/**
 * After a merge (or its undo) re-pointed events: the new owners get their rows, and the old owners
 * lose the rows no attached event of theirs is left in — in the merge's transaction, which holds both
 * profiles' locks, so the people rollup is never a merge behind.
 *
 * @example
 * await followRepoint(tx, moves);
 */
export async function followRepoint(tx: Tx, m: Moves): Promise<void> {
  if (!m.hours.length) return;
  await insertPersonHours(tx, { hours: m.hours, people: m.to });
  await forgetPeople(tx, { hours: m.hours, people: m.from });
}

/**
 * An erasure: the person-hours of these profiles, read before their events are deleted (then
 * {@link forgetPeople}).
 *
 * @example
 * const rows = await peopleRowsOf(tx, ids);
 */
export async function peopleRowsOf(tx: Tx, profiles: readonly string[]): Promise<PersonHours> {
  return asPersonHours(
    await tx<{ hour: string; p: string }[]>`
      SELECT DISTINCT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"') AS hour, profile_id::text AS p
      FROM events
      WHERE profile_id = ANY(${profiles as string[]}::uuid[])`,
  );
}

/**
 * Deletes the given person-hour rows whose person has no attached event left in that hour.
 *
 * @example
 * await forgetPeople(tx, rows);
 */
export async function forgetPeople(tx: Tx, m: PersonHours): Promise<void> {
  if (!m.hours.length) return;
  await tx`
    DELETE FROM analytics_hourly_people r
    USING (SELECT DISTINCT hour, p FROM unnest(${m.hours}::timestamptz[], ${m.people}::uuid[]) AS u(hour, p)) AS k
    WHERE r.hour = k.hour AND r.profile_id = k.p
      AND NOT EXISTS (
        SELECT 1 FROM events e
        WHERE e.profile_id = k.p AND e.timestamp >= k.hour AND e.timestamp < k.hour + interval '1 hour'
      )`;
}
