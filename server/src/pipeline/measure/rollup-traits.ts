import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { firstKeptDay, foldUnlessBusy, keepEntry, lockPeople, sometimesFold } from './rollup-days.ts';

// Migration 0044: trend tiles broken down by a person's current trait, from per-(person, local day) cells
// (events, numeric sum and count of a property, and the trait value they are counted under) and per-day
// deltas of their sums by value. A trait change moves the person's cells to the new value; new events,
// merges, undos and erasures recount the person's cells from the events. Every writer holds the person's
// lock (class 44) and appends the difference it made, so the per-day sums stay the cells' sums.

// Advisory lock classes (identify 1-2, delivery 3, compute 4-6, automate 7-9, rollup 10, points 11,
// experiments 12, period people 42-43): a person's cells (taken after the profiles' identify locks and the
// period people's), and a day's delta rows while they are folded.
const TRAIT_PERSON = 44;
const TRAIT_DAY = 45;
/** A day's delta rows beyond one per value past which they are folded into one per value. */
const COMPACT_AFTER = 64;
/** One write in this many looks for days to fold (a day gains a few rows a write). */
const COMPACT_EVERY = 8;

/** A kept breakdown: a trait, a named event, a property of it ('' = counts only) and the zone days are cut in. */
export interface TraitRollupEntry {
  trait: string;
  event: string;
  property: string;
  zone: string;
}

/** A kept breakdown as registered. */
export interface TraitRollup extends TraitRollupEntry {
  id: number;
  createdAt: Date;
}

/**
 * The kept breakdowns (a handful of rows).
 *
 * @example
 * await traitRollups(sql); // [{ id: 1, trait: 'plan', event: 'Order Completed', property: 'total', zone: 'UTC', createdAt }]
 */
export async function traitRollups(tx: Tx): Promise<TraitRollup[]> {
  return tx<TraitRollup[]>`
    SELECT id, trait, event, property, zone, created_at AS "createdAt"
    FROM analytics_rollup_traits
    ORDER BY trait, event, property, zone`;
}

// The registry under a SHARE lock: a fill (EXCLUSIVE) waits for writers in flight and they for it, so no
// writer changes cells of an entry the fill has not counted, nor misses one it has.
async function lockedRollups(tx: Tx): Promise<TraitRollup[]> {
  await tx`LOCK TABLE analytics_rollup_traits IN SHARE MODE`;
  return traitRollups(tx);
}

/** Cells to recount: parallel arrays of entry id, profile id and local day (ISO date). */
interface Scope {
  r: number[];
  p: string[];
  d: string[];
}

type Cell = { r: number; p: string; d: string; value: string | null; n: number; sum: string | null; nums: number };

// The cells of a scope as the events and current traits say now: the scan's expressions (JSON numbers only),
// one range of events_profile_idx per (person, day).
function freshCells(tx: Tx, s: Scope) {
  return tx<Cell[]>`
    SELECT k.r, k.p::text AS p, k.d::text AS d, t.value #>> '{}' AS value, c.n, c.sum::text AS sum, c.nums
    FROM unnest(${s.r}::int[], ${s.p}::uuid[], ${s.d}::date[]) AS k(r, p, d)
    JOIN analytics_rollup_traits g ON g.id = k.r
    CROSS JOIN LATERAL (
      SELECT count(*)::int AS n, sum(x.num) AS sum, count(x.num)::int AS nums
      FROM events e
      CROSS JOIN LATERAL (
        SELECT CASE WHEN g.property <> '' AND jsonb_typeof(e.payload #> ('{properties}'::text[] || string_to_array(g.property, '.'))) = 'number'
          THEN (e.payload #> ('{properties}'::text[] || string_to_array(g.property, '.')))::numeric END AS num
      ) x
      WHERE e.profile_id = k.p
        AND e.event = g.event
        AND e.timestamp >= (k.d::timestamp AT TIME ZONE g.zone)
        AND e.timestamp < ((k.d + 1)::timestamp AT TIME ZONE g.zone)
    ) c
    LEFT JOIN profile_traits t ON t.profile_id = k.p AND t.key = g.trait
    WHERE c.n > 0`;
}

function storedCells(tx: Tx, s: Scope) {
  return tx<Cell[]>`
    SELECT c.rollup_id AS r, c.profile_id::text AS p, c.day::text AS d, c.value, c.n, c.sum::text AS sum, c.nums
    FROM analytics_trait_cells c
    JOIN unnest(${s.r}::int[], ${s.p}::uuid[], ${s.d}::date[]) AS k(r, p, d)
      ON c.rollup_id = k.r AND c.profile_id = k.p AND c.day = k.d`;
}

// Rewrites the scope's cells to what the events say (callers hold the people's locks) and appends the
// difference to the day sums.
async function recountCells(tx: Tx, scope: Scope): Promise<void> {
  if (!scope.r.length) return;
  const [old, fresh] = await Promise.all([storedCells(tx, scope), freshCells(tx, scope)]);
  const id = (c: Cell) => `${c.r}\n${c.p}\n${c.d}`;
  const before = new Map(old.map((c) => [id(c), c]));
  const same = (a: Cell, b: Cell) => a.value === b.value && a.n === b.n && a.sum === b.sum && a.nums === b.nums;
  const changed = fresh.filter((c) => !before.has(id(c)) || !same(before.get(id(c))!, c));
  const rewritten = new Set(changed.map(id));
  const kept = new Set(fresh.map(id));
  const gone = old.filter((c) => !kept.has(id(c)) || rewritten.has(id(c)));
  if (!changed.length && !gone.length) return;
  const delta = [...gone.map((c) => ({ ...c, s: -1 })), ...changed.map((c) => ({ ...c, s: 1 }))];
  const writes = [];
  if (gone.length)
    writes.push(tx`
      DELETE FROM analytics_trait_cells c
      USING unnest(${gone.map((c) => c.r)}::int[], ${gone.map((c) => c.p)}::uuid[], ${gone.map((c) => c.d)}::date[]) AS k(r, p, d)
      WHERE c.rollup_id = k.r AND c.profile_id = k.p AND c.day = k.d`);
  if (changed.length)
    writes.push(tx`
      INSERT INTO analytics_trait_cells (rollup_id, profile_id, day, value, n, sum, nums)
      SELECT * FROM unnest(${changed.map((c) => c.r)}::int[], ${changed.map((c) => c.p)}::uuid[],
        ${changed.map((c) => c.d)}::date[], ${changed.map((c) => c.value)}::text[], ${changed.map((c) => c.n)}::int[],
        ${changed.map((c) => c.sum)}::numeric[], ${changed.map((c) => c.nums)}::int[])`);
  writes.push(tx`
    INSERT INTO analytics_trait_counts (rollup_id, day, value, n, sum, nums)
    SELECT r, d, v, sum(s * n), sum(s * x), sum(s * nums)
    FROM unnest(${delta.map((c) => c.r)}::int[], ${delta.map((c) => c.d)}::date[], ${delta.map((c) => c.value)}::text[],
      ${delta.map((c) => c.s)}::int[], ${delta.map((c) => c.n)}::bigint[], ${delta.map((c) => c.sum)}::numeric[],
      ${delta.map((c) => c.nums)}::bigint[]) AS k(r, d, v, s, n, x, nums)
    GROUP BY r, d, v
    HAVING sum(s * n) <> 0 OR sum(s * x) <> 0 OR sum(s * nums) <> 0`);
  await Promise.all(writes.map((q) => q.execute()));
  await compactDays(
    tx,
    delta.map((c) => ({ r: c.r, d: c.d })),
  );
}

// Cells of these people counted under a value that is no longer their trait's: moved to the current value
// (callers hold the people's locks), the difference appended to the day sums. One statement.
async function moveCells(tx: Tx, people: readonly string[]): Promise<void> {
  if (!people.length) return;
  const rows = await tx<{ r: number; d: string }[]>`
    WITH moved AS (
      SELECT c.rollup_id, c.profile_id, c.day, c.value AS old, t.value #>> '{}' AS new, c.n, c.sum, c.nums
      FROM analytics_trait_cells c
      JOIN analytics_rollup_traits g ON g.id = c.rollup_id
      LEFT JOIN profile_traits t ON t.profile_id = c.profile_id AND t.key = g.trait
      WHERE c.profile_id = ANY(${people as string[]}::uuid[]) AND c.value IS DISTINCT FROM t.value #>> '{}'
    ),
    updated AS (
      UPDATE analytics_trait_cells c SET value = m.new
      FROM moved m
      WHERE c.rollup_id = m.rollup_id AND c.profile_id = m.profile_id AND c.day = m.day
    ),
    deltas AS (
      INSERT INTO analytics_trait_counts (rollup_id, day, value, n, sum, nums)
      SELECT rollup_id, day, value, sum(n), sum(sum), sum(nums)
      FROM (
        SELECT rollup_id, day, new AS value, n, sum, nums FROM moved
        UNION ALL
        SELECT rollup_id, day, old, -n, -sum, -nums FROM moved
      ) d
      GROUP BY rollup_id, day, value
      RETURNING rollup_id, day
    )
    SELECT DISTINCT rollup_id AS r, day::text AS d FROM deltas`;
  await compactDays(tx, rows);
}

// The people among these whose cells are counted under another value than their trait's now (no locks: a
// read to know whom to lock; the move re-reads under the locks).
async function peopleToMove(tx: Tx, people: readonly string[]): Promise<string[]> {
  if (!people.length) return [];
  // One trait read per (person, entry, value counted under), not per cell.
  const rows = await tx<{ p: string }[]>`
    WITH counted AS (
      SELECT DISTINCT profile_id, rollup_id, value
      FROM analytics_trait_cells
      WHERE profile_id = ANY(${people as string[]}::uuid[])
    )
    SELECT DISTINCT c.profile_id::text AS p
    FROM counted c
    JOIN analytics_rollup_traits g ON g.id = c.rollup_id
    LEFT JOIN profile_traits t ON t.profile_id = c.profile_id AND t.key = g.trait
    WHERE c.value IS DISTINCT FROM t.value #>> '{}'`;
  return rows.map((r) => r.p);
}

/**
 * The measure job's part: recounts the (person, day) cells of newly attached events of kept events
 * (idempotent: a retried job rewrites the same cells), and moves the cells of the events' people and of
 * the profiles identify restructured whose trait value changed. Runs after addPeopleOf, which holds the
 * events' profiles locked shared (merges lock them exclusively). Costs one registry read when nothing is kept.
 *
 * @example
 * await sql.begin((tx) => addTraitCellsOf(tx, ['41', '42'], []));
 */
export async function addTraitCellsOf(
  tx: Transaction,
  ids: readonly string[],
  restructured: readonly string[] = [],
): Promise<void> {
  if (!ids.length && !restructured.length) return;
  const rollups = await lockedRollups(tx);
  if (!rollups.length) return;
  const [scope, jobPeople] = await Promise.all([
    tx<{ r: number; p: string; d: string }[]>`
      SELECT DISTINCT g.id AS r, e.profile_id::text AS p, ((e.timestamp AT TIME ZONE g.zone)::date)::text AS d
      FROM events e
      JOIN analytics_rollup_traits g ON g.event = e.event
      WHERE e.id = ANY(${ids as string[]}::bigint[]) AND e.profile_id IS NOT NULL`,
    tx<{ p: string }[]>`
      SELECT DISTINCT profile_id::text AS p FROM events
      WHERE id = ANY(${ids as string[]}::bigint[]) AND profile_id IS NOT NULL`,
  ]);
  const moving = await peopleToMove(tx, [...new Set([...jobPeople.map((r) => r.p), ...restructured])]);
  await lockPeople(tx, TRAIT_PERSON, [...scope.map((s) => s.p), ...moving]);
  await recountCells(tx, { r: scope.map((s) => s.r), p: scope.map((s) => s.p), d: scope.map((s) => s.d) });
  await moveCells(tx, moving);
}

/**
 * After a merge, its undo or an erasure changed which events these profiles hold: all their cells are
 * recounted from their attached events (cells without an event left go), in the caller's transaction
 * (which holds the profiles' identify locks).
 *
 * @example
 * await resyncTraitCells(tx, [survivor, mergedAway]);
 */
export async function resyncTraitCells(tx: Tx, profiles: readonly string[]): Promise<void> {
  if (!profiles.length) return;
  const rollups = await lockedRollups(tx);
  if (!rollups.length) return;
  const people = [...new Set(profiles)];
  await lockPeople(tx, TRAIT_PERSON, people);
  // Every day they have a cell or an event of a kept event on.
  const scope = await tx<{ r: number; p: string; d: string }[]>`
    SELECT rollup_id AS r, profile_id::text AS p, day::text AS d
    FROM analytics_trait_cells
    WHERE profile_id = ANY(${people}::uuid[])
    UNION
    SELECT g.id, e.profile_id::text, ((e.timestamp AT TIME ZONE g.zone)::date)::text
    FROM events e
    JOIN analytics_rollup_traits g ON g.event = e.event
    WHERE e.profile_id = ANY(${people}::uuid[])`;
  await recountCells(tx, { r: scope.map((s) => s.r), p: scope.map((s) => s.p), d: scope.map((s) => s.d) });
  await moveCells(tx, people);
}

/**
 * After traits were written without a measure job to follow them (an unmerge's or a duplicate merge's
 * refold, an import): the cells of these profiles counted under an old value move to the current one.
 *
 * @example
 * await reattributeTraitCells(tx, [profileId]);
 */
export async function reattributeTraitCells(tx: Tx, profiles: readonly string[]): Promise<void> {
  if (!profiles.length) return;
  const rollups = await lockedRollups(tx);
  if (!rollups.length) return;
  const moving = await peopleToMove(tx, [...new Set(profiles)]);
  await lockPeople(tx, TRAIT_PERSON, moving);
  await moveCells(tx, moving);
}

// Days (of those just written) with many deltas are folded, one write in COMPACT_EVERY.
const compactDays = (tx: Tx, written: readonly { r: number; d: string }[]) =>
  sometimesFold(
    written,
    COMPACT_EVERY,
    (w) => `${w.r}\n${w.d}`,
    (days) => foldTraitDays(tx, days, COMPACT_AFTER),
  );

/**
 * Folds the delta rows of days (all days when none are given) into one row per value, dropping values
 * that sum to nothing, when a day has more than `beyond` rows besides one per value. A day another
 * transaction is folding is skipped. Returns the days folded.
 *
 * @example
 * await foldTraitDays(sql); // 412
 */
export async function foldTraitDays(tx: Tx, days?: readonly { r: number; d: string }[], beyond = 0): Promise<number> {
  const only = days
    ? tx`JOIN unnest(${days.map((d) => d.r)}::int[], ${days.map((d) => d.d)}::date[]) AS k(r, d)
      ON c.rollup_id = k.r AND c.day = k.d`
    : tx``;
  const busy = await tx<{ r: number; d: string }[]>`
    SELECT c.rollup_id AS r, c.day::text AS d
    FROM analytics_trait_counts c
    ${only}
    GROUP BY 1, 2
    HAVING count(*) - count(DISTINCT coalesce(c.value, '') || (c.value IS NULL)::text) > ${beyond}::int`;
  return foldUnlessBusy(
    tx,
    busy,
    TRAIT_DAY,
    (d) => `${d.r}|${d.d}`,
    (d) => tx`
      WITH gone AS (
        DELETE FROM analytics_trait_counts
        WHERE rollup_id = ${d.r} AND day = ${d.d}::date
        RETURNING value, n, sum, nums
      )
      INSERT INTO analytics_trait_counts (rollup_id, day, value, n, sum, nums)
      SELECT ${d.r}, ${d.d}::date, value, sum(n), sum(sum), sum(nums)
      FROM gone
      GROUP BY value
      HAVING sum(n) <> 0 OR sum(sum) <> 0 OR sum(nums) <> 0`,
  );
}

/**
 * Keeps a trait breakdown from now on: records it and fills its cells and day sums from the attached
 * events and current traits, in one transaction that holds the registry EXCLUSIVE (the pipeline's writers
 * of these rows wait for it). Returns the entry, whether it was new, the cells filled and the time taken.
 *
 * @example
 * await keepTraitRollup(sql, { trait: 'plan', event: 'Order Completed', property: 'total', zone: 'UTC' });
 */
export async function keepTraitRollup(
  sql: Sql,
  entry: TraitRollupEntry,
): Promise<{ added: boolean; rows: number; ms: number }> {
  return keepEntry(sql, {
    lock: (tx) => tx`LOCK TABLE analytics_rollup_traits IN EXCLUSIVE MODE`,
    add: async (tx) => {
      const [row] = await tx<{ id: number }[]>`
        INSERT INTO analytics_rollup_traits (trait, event, property, zone)
        VALUES (${entry.trait}, ${entry.event}, ${entry.property}, ${entry.zone})
        ON CONFLICT DO NOTHING RETURNING id`;
      return row?.id ?? null;
    },
    fill: async (tx, id) => {
      const filled = await tx`
        INSERT INTO analytics_trait_cells (rollup_id, profile_id, day, value, n, sum, nums)
        SELECT ${id}::int, e.profile_id, (e.timestamp AT TIME ZONE ${entry.zone})::date, min(t.value #>> '{}'),
          count(*), sum(x.num), count(x.num)
        FROM events e
        CROSS JOIN LATERAL (
          SELECT CASE WHEN ${entry.property} <> '' AND jsonb_typeof(e.payload #> ${path(entry.property)}::text[]) = 'number'
            THEN (e.payload #> ${path(entry.property)}::text[])::numeric END AS num
        ) x
        LEFT JOIN profile_traits t ON t.profile_id = e.profile_id AND t.key = ${entry.trait}
        WHERE e.profile_id IS NOT NULL AND e.event = ${entry.event}
        GROUP BY 2, 3`;
      await tx`
        INSERT INTO analytics_trait_counts (rollup_id, day, value, n, sum, nums)
        SELECT rollup_id, day, value, sum(n), sum(sum), sum(nums)
        FROM analytics_trait_cells
        WHERE rollup_id = ${id}
        GROUP BY rollup_id, day, value`;
      return filled.count;
    },
  });
}

const path = (property: string) => ['properties', ...(property ? property.split('.') : [])];

/**
 * Stops keeping a trait breakdown: its rows go, and its tiles scan again.
 *
 * @example
 * await dropTraitRollup(sql, { trait: 'plan', event: 'Order Completed', property: 'total', zone: 'UTC' }); // true
 */
export async function dropTraitRollup(sql: Sql, entry: TraitRollupEntry): Promise<boolean> {
  return sql.begin(async (tx) => {
    await tx`LOCK TABLE analytics_rollup_traits IN EXCLUSIVE MODE`;
    const [gone] = await tx<{ id: number }[]>`
      DELETE FROM analytics_rollup_traits
      WHERE trait = ${entry.trait} AND event = ${entry.event} AND property = ${entry.property} AND zone = ${entry.zone}
      RETURNING id`;
    if (!gone) return false;
    await tx`DELETE FROM analytics_trait_cells WHERE rollup_id = ${gone.id}`;
    await tx`DELETE FROM analytics_trait_counts WHERE rollup_id = ${gone.id}`;
    return true;
  });
}

/**
 * After retention dropped partitions of events: the rows of days wholly before the horizon go (two days'
 * margin for zones). Tiles never read them: the trends route refuses ranges reading events before it.
 *
 * @example
 * await forgetTraitCellsBeforeHorizon(sql);
 */
export async function forgetTraitCellsBeforeHorizon(sql: Sql): Promise<void> {
  const before = await firstKeptDay(sql);
  if (!before) return;
  await sql`DELETE FROM analytics_trait_cells WHERE day < ${before}::date`;
  await sql`DELETE FROM analytics_trait_counts WHERE day < ${before}::date`;
}
