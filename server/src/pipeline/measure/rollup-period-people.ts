import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { firstKeptDay, foldUnlessBusy, keepEntry, lockPeople, sometimesFold } from './rollup-days.ts';

// Migration 0042: per kept (zone, event) key, one presence row per person and local day, and per day a
// histogram of the present people's previous present day (analytics_period_counts, deltas summed at
// read). Every writer rewrites a person's histogram contribution in the transaction that changes the
// person's presence rows, so a tile's days, weeks, months and total are exact.

// Advisory lock classes (identify 1-2, delivery 3, compute 4-6, automate 7-9, rollup 10, points 11,
// conversions 14): a person's presence rows (after the profiles' identify locks; two measure jobs hold the
// same profile's lock shared, and each rewrites the person's previous-day links), and a day's delta rows
// while they are compacted.
const PERIOD_PERSON = 42;
const PERIOD_DAY = 43;
/** A day's delta rows beyond one per previous day past which the measure job folds them into one per previous day. */
const COMPACT_AFTER = 64;
/**
 * One write in this many looks for days to fold: the look reads the days' rows (measured ~12 ms a job of
 * 1,000 events on bench:analytics), and a day gains a few rows a write, so folding stays well ahead.
 */
const COMPACT_EVERY = 8;

/** A kept key: a zone and an event name ('' = any event). */
export interface PeriodKey {
  zone: string;
  event: string;
}

/** What analytics_rollup_people keeps: zones (days cut there) and named events ('' = any event, always kept). */
export interface PeriodPeopleRegistry {
  zones: string[];
  events: string[];
}

/** One entry of the registry: a zone or a named event. */
export type PeriodPeopleEntry = { zone: string } | { event: string };

/**
 * The registry: kept zones and named events.
 *
 * @example
 * await periodPeopleRegistry(sql); // { zones: ['UTC'], events: ['Order Completed'] }
 */
export async function periodPeopleRegistry(tx: Tx): Promise<PeriodPeopleRegistry> {
  const rows = await tx<{ kind: string; value: string }[]>`
    SELECT kind, value FROM analytics_rollup_people ORDER BY kind, value`;
  return {
    zones: rows.filter((r) => r.kind === 'zone').map((r) => r.value),
    events: rows.filter((r) => r.kind === 'event').map((r) => r.value),
  };
}

/** Every kept zone with the any-event key and every kept event. */
export const periodKeysOf = (r: PeriodPeopleRegistry): PeriodKey[] =>
  r.zones.flatMap((zone) => ['', ...r.events].map((event) => ({ zone, event })));

// The registry, read under a SHARE lock: a fill (EXCLUSIVE) waits for writers in flight and they for it,
// so no writer changes presence rows of a key the fill has not counted, nor misses a key it has.
async function lockedKeys(tx: Tx): Promise<PeriodKey[]> {
  await tx`LOCK TABLE analytics_rollup_people IN SHARE MODE`;
  return periodKeysOf(await periodPeopleRegistry(tx));
}

const zonesOf = (keys: readonly PeriodKey[]) => keys.map((k) => k.zone);
const eventsOf = (keys: readonly PeriodKey[]) => keys.map((k) => k.event);

/**
 * The measure job's part: presence rows of newly attached events (idempotent: a retried job adds
 * nothing twice), and the histogram of the people who got a new day. Runs after addPeopleOf, which holds
 * the events' profiles locked shared (merges lock them exclusively), so the events' profiles are settled.
 *
 * @example
 * await sql.begin((tx) => addPeriodPeopleOf(tx, ['41', '42']));
 */
export async function addPeriodPeopleOf(tx: Transaction, ids: readonly string[]): Promise<void> {
  if (!ids.length) return;
  const keys = await lockedKeys(tx);
  if (!keys.length) return;
  // The (person, key, day) rows these events would add that do not exist yet: most events fall on a day
  // their person already has, and cost this one probe per key. Read before the people's locks: a row seen
  // cannot go meanwhile (merges and erasures hold the profiles' identify locks, shared here); a row another
  // job adds meanwhile is found by the links read under the locks, and the insert skips it.
  const missing = await tx<{ p: string; zone: string; event: string; day: string }[]>`
    SELECT DISTINCT e.profile_id::text AS p, k.zone, k.event, ((e.timestamp AT TIME ZONE k.zone)::date)::text AS day
    FROM events e
    JOIN unnest(${zonesOf(keys)}::text[], ${eventsOf(keys)}::text[]) AS k(zone, event)
      ON k.event = '' OR e.event = k.event
    WHERE e.id = ANY(${ids as string[]}::bigint[])
      AND e.profile_id IS NOT NULL
      AND NOT EXISTS (
        SELECT 1 FROM analytics_period_people p
        WHERE p.profile_id = e.profile_id AND p.zone = k.zone AND p.event = k.event
          AND p.day = (e.timestamp AT TIME ZONE k.zone)::date
      )`;
  if (!missing.length) return;
  await lockPeople(
    tx,
    PERIOD_PERSON,
    missing.map((m) => m.p),
  );
  // Only the (person, key) pairs that get a day: their links are all that can change.
  const pairs = [...new Map(missing.map((m) => [`${m.p}\n${m.zone}\n${m.event}`, m])).values()];
  await rewriteLinks(tx, pairs, async () => {
    await tx`
      INSERT INTO analytics_period_people (profile_id, zone, event, day)
      SELECT * FROM unnest(${missing.map((m) => m.p)}::uuid[], ${missing.map((m) => m.zone)}::text[],
        ${missing.map((m) => m.event)}::text[], ${missing.map((m) => m.day)}::date[])
      ON CONFLICT DO NOTHING`;
  });
}

/**
 * After a merge, its undo or an erasure changed which events these profiles hold: their presence rows
 * are recomputed from their attached events (rows without an event left go, missing ones are added) and
 * their histogram contributions rewritten, in the caller's transaction (which holds the profiles' locks).
 *
 * @example
 * await resyncPeriodPeople(tx, [survivor, mergedAway]);
 */
export async function resyncPeriodPeople(tx: Tx, profiles: readonly string[]): Promise<void> {
  if (!profiles.length) return;
  const keys = await lockedKeys(tx);
  if (!keys.length) return;
  const people = [...new Set(profiles)];
  await lockPeople(tx, PERIOD_PERSON, people);
  await rewriteLinks(
    tx,
    people.map((p) => ({ p })),
    async () => {
      await tx`
      DELETE FROM analytics_period_people p
      WHERE p.profile_id = ANY(${people}::uuid[])
        AND NOT EXISTS (
          SELECT 1 FROM events e
          WHERE e.profile_id = p.profile_id
            AND (p.event = '' OR e.event = p.event)
            AND e.timestamp >= (p.day::timestamp AT TIME ZONE p.zone)
            AND e.timestamp < ((p.day + 1)::timestamp AT TIME ZONE p.zone)
        )`;
      await tx`
      INSERT INTO analytics_period_people (profile_id, zone, event, day)
      SELECT DISTINCT e.profile_id, k.zone, k.event, (e.timestamp AT TIME ZONE k.zone)::date
      FROM events e
      JOIN unnest(${zonesOf(keys)}::text[], ${eventsOf(keys)}::text[]) AS k(zone, event)
        ON k.event = '' OR e.event = k.event
      WHERE e.profile_id = ANY(${people}::uuid[])
      ON CONFLICT DO NOTHING`;
    },
  );
}

type Link = { zone: string; event: string; day: string; prev: string | null; n: number };

/** Whose links to rewrite: people in every key, or (person, zone, event) pairs. */
type Scope = readonly ({ p: string } | { p: string; zone: string; event: string })[];

// The (day, previous day) links of a scope, per key, counted.
async function linksOf(tx: Tx, scope: Scope): Promise<Link[]> {
  const pairs = scope.filter((x): x is { p: string; zone: string; event: string } => 'zone' in x);
  const where = pairs.length
    ? tx`(profile_id, zone, event) IN (
        SELECT * FROM unnest(${pairs.map((x) => x.p)}::uuid[], ${pairs.map((x) => x.zone)}::text[], ${pairs.map((x) => x.event)}::text[])
      )`
    : tx`profile_id = ANY(${scope.map((x) => x.p)}::uuid[])`;
  return tx<Link[]>`
    SELECT zone, event, day::text AS day, prev::text AS prev, count(*)::int AS n
    FROM (
      SELECT zone, event, day, lag(day) OVER (PARTITION BY profile_id, zone, event ORDER BY day) AS prev
      FROM analytics_period_people
      WHERE ${where}
    ) l
    GROUP BY 1, 2, 3, 4`;
}

// Runs `change` (which rewrites only these people's presence rows) and appends the difference of their
// links, before and after, to the day histograms; then folds the deltas of busy days.
async function rewriteLinks(tx: Tx, scope: Scope, change: () => Promise<void>): Promise<void> {
  const delta = new Map<string, Link>();
  const add = (links: Link[], sign: number) => {
    for (const l of links) {
      const id = `${l.zone}\n${l.event}\n${l.day}\n${l.prev ?? ''}`;
      const d = delta.get(id) ?? { ...l, n: 0 };
      d.n += sign * l.n;
      delta.set(id, d);
    }
  };
  add(await linksOf(tx, scope), -1);
  await change();
  add(await linksOf(tx, scope), 1);
  const rows = [...delta.values()].filter((d) => d.n !== 0);
  if (!rows.length) return;
  await tx`
    INSERT INTO analytics_period_counts (zone, event, day, prev, n)
    SELECT * FROM unnest(${rows.map((r) => r.zone)}::text[], ${rows.map((r) => r.event)}::text[],
      ${rows.map((r) => r.day)}::date[], ${rows.map((r) => r.prev)}::date[], ${rows.map((r) => r.n)}::bigint[])`;
  await compactDays(tx, rows);
}

// Days (of those just written) with many deltas are folded, one write in COMPACT_EVERY.
const compactDays = (tx: Tx, written: readonly Link[]) =>
  sometimesFold(
    written,
    COMPACT_EVERY,
    (r) => `${r.zone}\n${r.event}\n${r.day}`,
    (days) => foldDays(tx, days, COMPACT_AFTER),
  );

/**
 * Folds the delta rows of days (all days when none are given) into one row per previous day, when a day
 * has more than `beyond` rows besides one per previous day. A day another transaction is folding is
 * skipped; a fold reads only committed deltas, so deltas appended meanwhile stay beside its rows and every
 * sum is unchanged. Returns the days folded.
 *
 * @example
 * await foldDays(sql); // 1234
 */
export async function foldDays(tx: Tx, days?: readonly (PeriodKey & { day: string })[], beyond = 0): Promise<number> {
  const only = days
    ? tx`JOIN unnest(${days.map((d) => d.zone)}::text[], ${days.map((d) => d.event)}::text[], ${days.map((d) => d.day)}::date[])
      AS k(zone, event, day) ON c.zone = k.zone AND c.event = k.event AND c.day = k.day`
    : tx``;
  const busy = await tx<{ zone: string; event: string; day: string }[]>`
    SELECT c.zone, c.event, c.day::text AS day
    FROM analytics_period_counts c
    ${only}
    GROUP BY 1, 2, 3
    HAVING count(*) - count(DISTINCT c.prev) > ${beyond}::int`;
  return foldUnlessBusy(
    tx,
    busy,
    PERIOD_DAY,
    (d) => `${d.zone}|${d.event}|${d.day}`,
    (d) => tx`
      WITH gone AS (
        DELETE FROM analytics_period_counts
        WHERE zone = ${d.zone} AND event = ${d.event} AND day = ${d.day}::date
        RETURNING prev, n
      )
      INSERT INTO analytics_period_counts (zone, event, day, prev, n)
      SELECT ${d.zone}, ${d.event}, ${d.day}::date, prev, sum(n)
      FROM gone
      GROUP BY prev
      HAVING sum(n) <> 0`,
  );
}

/**
 * Keeps people per day for a zone or a named event from now on: records it and fills its keys from
 * the attached events, in one transaction that holds the registry EXCLUSIVE (the pipeline's writers of
 * these rows wait for it; nothing else does). Returns the presence rows added and the time taken.
 *
 * @example
 * await keepPeriodPeople(sql, { zone: 'Europe/Berlin' }); // { added: true, rows: 812345, ms: 9100 }
 */
export async function keepPeriodPeople(
  sql: Sql,
  entry: PeriodPeopleEntry,
): Promise<{ added: boolean; rows: number; ms: number }> {
  const [kind, value] = 'zone' in entry ? ['zone', entry.zone] : ['event', entry.event];
  return keepEntry(sql, {
    lock: (tx) => tx`LOCK TABLE analytics_rollup_people IN EXCLUSIVE MODE`,
    add: async (tx) => {
      const inserted = await tx`
        INSERT INTO analytics_rollup_people (kind, value) VALUES (${kind}, ${value}) ON CONFLICT DO NOTHING RETURNING 1`;
      return inserted.length ? true : null;
    },
    fill: async (tx) => {
      const r = await periodPeopleRegistry(tx);
      return fillKeys(
        tx,
        periodKeysOf(r).filter((k) => (kind === 'zone' ? k.zone === value : k.event === value)),
      );
    },
  });
}

// Presence rows of whole keys from the attached events, then their histograms.
async function fillKeys(tx: Tx, keys: readonly PeriodKey[]): Promise<number> {
  if (!keys.length) return 0;
  const zones = zonesOf(keys);
  const events = eventsOf(keys);
  const filled = await tx`
    INSERT INTO analytics_period_people (profile_id, zone, event, day)
    SELECT DISTINCT e.profile_id, k.zone, k.event, (e.timestamp AT TIME ZONE k.zone)::date
    FROM unnest(${zones}::text[], ${events}::text[]) AS k(zone, event)
    JOIN events e ON e.profile_id IS NOT NULL AND (k.event = '' OR e.event = k.event)
    ON CONFLICT DO NOTHING`;
  await tx`
    INSERT INTO analytics_period_counts (zone, event, day, prev, n)
    SELECT zone, event, day, prev, count(*)
    FROM (
      SELECT p.zone, p.event, p.day, lag(p.day) OVER (PARTITION BY p.profile_id, p.zone, p.event ORDER BY p.day) AS prev
      FROM analytics_period_people p
      JOIN unnest(${zones}::text[], ${events}::text[]) AS k(zone, event) ON p.zone = k.zone AND p.event = k.event
    ) l
    GROUP BY 1, 2, 3, 4`;
  return filled.count;
}

/**
 * Stops keeping a zone or a named event: its rows go, and tiles in it scan again. The any-event key ('')
 * is not an entry: it goes with its zone.
 *
 * @example
 * await dropPeriodPeople(sql, { zone: 'Europe/Berlin' }); // true
 */
export async function dropPeriodPeople(sql: Sql, entry: PeriodPeopleEntry): Promise<boolean> {
  const [kind, value] = 'zone' in entry ? ['zone', entry.zone] : ['event', entry.event];
  return sql.begin(async (tx) => {
    await tx`LOCK TABLE analytics_rollup_people IN EXCLUSIVE MODE`;
    const gone = await tx`DELETE FROM analytics_rollup_people WHERE kind = ${kind} AND value = ${value} RETURNING 1`;
    if (!gone.length) return false;
    const where = kind === 'zone' ? tx`zone = ${value}` : tx`event = ${value}`;
    await tx`DELETE FROM analytics_period_people WHERE ${where}`;
    await tx`DELETE FROM analytics_period_counts WHERE ${where}`;
    return true;
  });
}

/**
 * After retention dropped partitions of events: the rows of days wholly before the horizon go (every
 * zone is within a day of UTC, so two days' margin). Tiles never read them (the analytics routes refuse
 * ranges starting before the horizon), and a previous day before the horizon counts as none at read, so
 * the histograms of later days stay exact without rewriting their links.
 *
 * @example
 * await forgetPeriodPeopleBeforeHorizon(sql);
 */
export async function forgetPeriodPeopleBeforeHorizon(sql: Sql): Promise<void> {
  const before = await firstKeptDay(sql);
  if (!before) return;
  await sql`DELETE FROM analytics_period_people WHERE day < ${before}::date`;
  await sql`DELETE FROM analytics_period_counts WHERE day < ${before}::date`;
}
