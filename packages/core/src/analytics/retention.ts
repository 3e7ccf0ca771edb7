import { DateTime } from 'luxon';
import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, sql } from '../rules/sql.ts';
import { bucketStarts, type TimeRange } from './range.ts';

/** The buckets people are grouped in by when they entered, in the range's time zone (weeks from Monday). */
export type CohortUnit = 'day' | 'week' | 'month';
export const COHORT_UNITS: readonly CohortUnit[] = ['day', 'week', 'month'];

/** The most periods a retention table may follow after the cohort bucket, and the most cohorts it may have. */
export const RETENTION_LIMITS = { maxPeriods: 60, maxCohorts: 400 } as const;

/** A retention query, as the API takes it (validated there). */
export interface RetentionQuery {
  /** Cohort entry range: a person enters with a start event in `[from, to)`. */
  range: TimeRange;
  cohort: CohortUnit;
  /** The event that puts a person in a cohort. */
  start: EventFilter;
  /** The event that counts as coming back. */
  return: EventFilter;
  /**
   * `first_time`: the cohort of the person's first start event ever (across all history), only when
   * that falls in the range. `recurring`: every bucket of the range in which they did the start event.
   */
  mode: 'first_time' | 'recurring';
  /** Periods after the cohort bucket (the table has periods 0..periods). */
  periods: number;
  /** true: returned in exactly period k; false: returned in period k or any later one up to `periods`. */
  bounded: boolean;
}

/**
 * Options of the retention builders. `firstTimes` (first-time mode only): a statement selecting
 * `(profile_id, first_at)` of exactly the people whose first start event ever falls in the range, one row
 * each, read from a smaller input than events (the server's analytics_first_times); the statement then reads
 * only those people's events from their first time on, instead of probing or scanning everyone's history.
 */
export interface RetentionSqlOptions {
  now: Date;
  firstTimes?: Fragment;
  /**
   * Only the people whose profile id falls in this slice ({@link profileSlices}); the one-pass statement
   * ({@link retentionPassSql}) only. Each person is in exactly one slice, so the rows of the slices of a
   * partition, put together, are the rows of the whole table: slices can run at once on several connections.
   */
  people?: ProfileSlice;
}

/** Profile ids in `[from, to)` (uuid text; an end left out is open). */
export interface ProfileSlice {
  from?: string;
  to?: string;
}

/**
 * `n` slices partitioning every profile id, cut by the id's first byte (ids are random uuids, so each
 * slice holds about 1/n of the people). One slice (n <= 1) is everyone: `[{}]`.
 *
 * @example
 * profileSlices(2); // [{ to: '80000000-0000-0000-0000-000000000000' }, { from: '80000000-0000-0000-0000-000000000000' }]
 */
export function profileSlices(n: number): ProfileSlice[] {
  const count = Math.max(1, Math.min(256, Math.floor(n)));
  const cut = (k: number) =>
    `${Math.floor((k * 256) / count)
      .toString(16)
      .padStart(2, '0')}000000-0000-0000-0000-000000000000`;
  return Array.from({ length: count }, (_, k) => ({
    ...(k > 0 ? { from: cut(k) } : {}),
    ...(k < count - 1 ? { to: cut(k + 1) } : {}),
  }));
}

// The condition putting a person's rows in a slice (true without one).
function inSlice(column: Fragment, slice: ProfileSlice | undefined): Fragment {
  const from = slice?.from === undefined ? sql`true` : sql`${column} >= ${slice.from}::uuid`;
  const to = slice?.to === undefined ? sql`true` : sql`${column} < ${slice.to}::uuid`;
  return sql`(${from} AND ${to})`;
}

/** One row of the statement {@link retentionSql} builds. */
export interface RetentionRow {
  /** The cohort bucket's start (epoch ms). */
  cohort_ms: number;
  /** -1: the cohort's size; k ≥ 0: people who came back in period k (bounded) or whose LAST return period is k (unbounded). */
  period: number;
  people: number;
}

// The period index of a return bucket relative to a cohort bucket (both local `timestamp`s from date_trunc):
// whole calendar units, so DST days and months of any length count as one.
const periodIndex: Record<CohortUnit, (cohort: Fragment, bucket: Fragment) => Fragment> = {
  day: (c, b) => sql`(${b}::date - ${c}::date)`,
  week: (c, b) => sql`((${b}::date - ${c}::date) / 7)`,
  month: (c, b) =>
    sql`((extract(year FROM ${b}) * 12 + extract(month FROM ${b})) - (extract(year FROM ${c}) * 12 + extract(month FROM ${c})))::int`,
};

/**
 * The end of the last period a retention query looks at: the start of the range's last cohort bucket
 * plus `periods + 1` units, on the wall clock of the range's time zone.
 *
 * @example
 * retentionHorizon({ range: { from: '2026-03-02T00:00:00Z', to: '2026-03-09T00:00:00Z', timezone: 'UTC' }, cohort: 'week', periods: 2 });
 * // '2026-03-23T00:00:00.000Z'
 */
export function retentionHorizon(q: Pick<RetentionQuery, 'range' | 'cohort' | 'periods'>): string {
  const starts = bucketStarts(q.range, q.cohort);
  return DateTime.fromISO(starts[starts.length - 1]!, { zone: q.range.timezone })
    .plus({ [`${q.cohort}s`]: q.periods + 1 })
    .toUTC()
    .toISO()!;
}

/**
 * The statement of a retention table: one row per cohort with its size (`period` -1), and per period
 * the people who came back. One scan of the start and return events from the range's start to the
 * horizon, sorted once by person, bucket and `(timestamp, id)`: a running flag says whether a start
 * event came before each event of its bucket, and each person's buckets fold to (entered, came back,
 * came back after a start). Cohorts are the entered buckets (recurring) or the first one (first time,
 * kept when an index probe of the person's events before the range finds no start event); one join
 * on the person pairs them with the buckets they came back in: at most `periods + 1` rows per entry.
 * Period 0 is the cohort bucket itself and counts a return event strictly after the entering start
 * event in the order of the person's events `(timestamp, id)` — so when start and return match the
 * same events, the entry itself is not a return. Unbounded tables return each entry's LAST period
 * instead (the API sums them from the right).
 *
 * @example
 * const rows = await reader.rows<RetentionRow>(retentionSql(query, { now: new Date() }));
 */
export function retentionSql(q: RetentionQuery, options: RetentionSqlOptions): Fragment {
  const { from, to, timezone: tz } = q.range;
  const unit = q.cohort;
  const start = compileEventFilter(q.start, { now: options.now, alias: 'e' });
  const back = compileEventFilter(q.return, { now: options.now, alias: 'e' });
  const startBefore = compileEventFilter(q.start, { now: options.now, alias: 'p' });
  const startIn = compileEventFilter(q.start, { now: options.now, alias: 'x' });
  const entering = sql`(e.timestamp < ${to}::timestamptz AND ${start})`;

  const cohorts =
    q.mode === 'recurring'
      ? sql`SELECT profile_id, b AS cohort FROM buckets WHERE entered`
      : sql`SELECT profile_id, min(b) AS cohort FROM buckets WHERE entered GROUP BY profile_id`;
  // First time: only people with no start event before the range (an index probe per person).
  const firstEver =
    q.mode === 'recurring'
      ? sql``
      : options.firstTimes
        ? sql`
    AND x.profile_id IN (SELECT ft.profile_id FROM (${options.firstTimes}) ft)`
        : sql`
    AND NOT EXISTS (
      SELECT 1 FROM events p
      WHERE p.profile_id = x.profile_id AND p.timestamp < ${from}::timestamptz AND ${startBefore}
    )`;
  const k = periodIndex[unit](sql`c.cohort`, sql`r.b`);
  const counted = q.bounded
    ? sql`SELECT cohort, k AS period, count(*)::int AS people FROM hits GROUP BY 1, 2`
    : sql`SELECT cohort, period, count(*)::int AS people
  FROM (SELECT cohort, max(k) AS period FROM hits GROUP BY profile_id, cohort) last
  GROUP BY 1, 2`;

  return sql`
WITH entrants AS (
  SELECT DISTINCT x.profile_id FROM events x
  WHERE x.profile_id IS NOT NULL
    AND x.timestamp >= ${from}::timestamptz AND x.timestamp < ${to}::timestamptz AND ${startIn}${firstEver}
),
ev AS (
  SELECT e.profile_id, e.timestamp, e.id, date_trunc(${unit}::text, e.timestamp AT TIME ZONE ${tz}::text) AS b,
    coalesce(${entering}, false) AS s, coalesce(${back}, false) AS r
  FROM events e
  WHERE e.profile_id IS NOT NULL
    AND e.timestamp >= ${from}::timestamptz AND e.timestamp < ${retentionHorizon(q)}::timestamptz
    AND (${entering} OR ${back})
    -- Only the people who entered: a rare start event keeps the scan to their events.
    AND e.profile_id IN (SELECT profile_id FROM entrants)
),
-- The ordered pass: did a start event come strictly before this event, in its person's bucket?
marked AS (
  SELECT profile_id, b, s, r,
    coalesce(bool_or(s) OVER (
      PARTITION BY profile_id, b ORDER BY timestamp, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), false) AS after_start
  FROM ev
),
buckets AS (
  SELECT profile_id, b, bool_or(s) AS entered, bool_or(r) AS back, bool_or(r AND after_start) AS back_after_start
  FROM marked
  GROUP BY profile_id, b
),
cohorts AS (${cohorts}),
hits AS (
  SELECT c.profile_id, c.cohort, ${k} AS k
  FROM cohorts c
  JOIN buckets r ON r.profile_id = c.profile_id
    AND r.b >= c.cohort AND r.b < c.cohort + ${q.periods + 1}::int * ${`1 ${unit}`}::interval
  WHERE r.back AND (r.b > c.cohort OR r.back_after_start)
),
counted AS (${counted})
SELECT (extract(epoch FROM cohort AT TIME ZONE ${tz}::text) * 1000)::float8 AS cohort_ms, -1 AS period,
  count(*)::int AS people
FROM cohorts GROUP BY cohort
UNION ALL
SELECT (extract(epoch FROM cohort AT TIME ZONE ${tz}::text) * 1000)::float8, period, people
FROM counted`;
}

/** One cohort of a retention table. */
export interface RetentionCohort {
  /** The cohort bucket's start (ISO, UTC). */
  cohort: string;
  size: number;
  periods: {
    period: number;
    /** The period's start (ISO, UTC). */
    start: string;
    people: number;
    /** people / size × 100, to 2 decimals; null for an empty cohort. */
    percent: number | null;
    /** false while the period ends after now (its numbers can still grow). */
    complete: boolean;
  }[];
}

/**
 * The retention table from the rows of {@link retentionSql}: every cohort bucket of the range (empty
 * ones with size 0), periods 0..`periods`, unbounded counts summed from the right.
 *
 * @example
 * const table = retentionTable(query, rows, new Date());
 */
export function retentionTable(q: RetentionQuery, rows: readonly RetentionRow[], now: Date): RetentionCohort[] {
  const zone = q.range.timezone;
  const byCohort = new Map<number, { size: number; counts: number[] }>();
  const of = (ms: number) => {
    const c = byCohort.get(ms) ?? { size: 0, counts: Array(q.periods + 1).fill(0) };
    byCohort.set(ms, c);
    return c;
  };
  for (const r of rows) {
    const c = of(Number(r.cohort_ms));
    if (r.period < 0) c.size = Number(r.people);
    else c.counts[r.period] = Number(r.people);
  }
  return bucketStarts(q.range, q.cohort).map((cohort) => {
    const start = DateTime.fromISO(cohort, { zone });
    const c = of(+start);
    const counts = q.bounded ? c.counts : suffixSums(c.counts);
    return {
      cohort,
      size: c.size,
      periods: counts.map((people, period) => {
        const at = start.plus({ [`${q.cohort}s`]: period });
        const end = at.plus({ [`${q.cohort}s`]: 1 });
        return {
          period,
          start: at.toUTC().toISO()!,
          people,
          percent: c.size ? Math.round((people / c.size) * 10_000) / 100 : null,
          complete: +end <= +now,
        };
      }),
    };
  });
}

function suffixSums(xs: readonly number[]): number[] {
  const out = [...xs];
  for (let i = out.length - 2; i >= 0; i--) out[i]! += out[i + 1]!;
  return out;
}

/**
 * The most buckets (cohorts + periods) {@link retentionPassSql} handles: a person's buckets are bits
 * of a bigint. Longer tables run {@link retentionSql}.
 */
export const RETENTION_PASS_MAX_BUCKETS = 63;

/** The bucket starts of a retention table, from the first cohort's to the horizon (cohorts + periods + 1 instants, ISO). */
export function retentionBounds(q: Pick<RetentionQuery, 'range' | 'cohort' | 'periods'>): string[] {
  const starts = bucketStarts(q.range, q.cohort);
  const first = DateTime.fromISO(starts[0]!, { zone: q.range.timezone });
  return Array.from(
    { length: starts.length + q.periods + 1 },
    (_, i) =>
      first
        .plus({ [`${q.cohort}s`]: i })
        .toUTC()
        .toISO()!,
  );
}

/** One row of {@link retentionPassSql}: `n` people with the same buckets (bigint bit masks as text). */
export interface RetentionPassRow {
  /** First time: the bucket of the person's first start event (an index into the bounds); recurring: null. */
  first: number | null;
  /** Buckets with a start event in the range (recurring). */
  entered: string | null;
  /** Buckets with a return event. */
  back: string | null;
  /** Buckets with a return event after a start event of the same bucket (period 0). */
  after: string | null;
  n: number;
}

/**
 * Retention as one ordered pass per person: the person's start and return events newest first, as the
 * (profile_id, timestamp DESC, id DESC) index gives them (no sort), a running minimum giving each
 * start event the earliest return event after it (in (timestamp, id) order), then one row per person:
 * the bit masks of the buckets they entered, came back in, and came back in after a start event of that
 * bucket — and, in first-time mode, whether a start event came before the range (then they are left
 * out). People with the same masks are counted together: the answer is a few thousand rows at most,
 * which {@link retentionRowsOfPass} turns into the rows of {@link retentionSql}. Exactly the counts of
 * retentionSql (the oracle test checks both); tables of more than {@link RETENTION_PASS_MAX_BUCKETS}
 * buckets must use retentionSql.
 *
 * @example
 * const rows = await reader.rows<RetentionPassRow>(retentionPassSql(query, { now }));
 * const table = retentionTable(query, retentionRowsOfPass(query, rows), now);
 */
export function retentionPassSql(q: RetentionQuery, options: RetentionSqlOptions): Fragment {
  const bounds = retentionBounds(q);
  if (bounds.length - 1 > RETENTION_PASS_MAX_BUCKETS)
    throw new RangeError(`more than ${RETENTION_PASS_MAX_BUCKETS} buckets: use retentionSql`);
  const { from, to } = q.range;
  const horizon = bounds[bounds.length - 1]!;
  const start = compileEventFilter(q.start, { now: options.now, alias: 'e' });
  const back = compileEventFilter(q.return, { now: options.now, alias: 'e' });
  const firstTime = q.mode === 'first_time';
  if (firstTime && options.firstTimes) return firstTimesPassSql(q, options.firstTimes, options.now, options.people);
  // First time reads the start events before the range too (to leave out who started before it).
  const lower = firstTime ? sql`` : sql`AND e.timestamp >= ${from}::timestamptz`;
  const bit = sql`(1::int8 << b)`;
  return sql`
WITH ev AS (
  SELECT e.profile_id, e.timestamp, e.id,
    width_bucket(e.timestamp, ${bounds}::timestamptz[]) - 1 AS b,
    coalesce(e.timestamp >= ${from}::timestamptz AND e.timestamp < ${to}::timestamptz AND ${start}, false) AS s,
    coalesce(e.timestamp >= ${from}::timestamptz AND ${back}, false) AS r,
    coalesce(e.timestamp < ${from}::timestamptz AND ${start}, false) AS early
  FROM events e
  WHERE e.profile_id IS NOT NULL
    AND e.timestamp < ${horizon}::timestamptz ${lower}
    AND (${start} OR ${back})
    AND ${inSlice(sql`e.profile_id`, options.people)}
),
-- Newest first: the frame before a row holds the person's later events; the least return instant among
-- them is the earliest return event after this one.
passed AS (
  SELECT profile_id, b, s, r, early,
    min(CASE WHEN r THEN timestamp END) OVER (
      PARTITION BY profile_id ORDER BY timestamp DESC, id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS next_return
  FROM ev
),
people AS (
  SELECT profile_id,
    min(b) FILTER (WHERE s) AS first,
    bit_or(${bit}) FILTER (WHERE s) AS entered,
    bit_or(${bit}) FILTER (WHERE r) AS back,
    -- A start event whose next return event falls before the end of its own bucket.
    bit_or(${bit}) FILTER (WHERE s AND next_return < (${bounds}::timestamptz[])[b + 2]) AS after
  FROM passed
  GROUP BY profile_id
  HAVING bool_or(s)${firstTime ? sql` AND NOT bool_or(early)` : sql``}
)
SELECT ${firstTime ? sql`first` : sql`NULL::int AS first`},
  ${firstTime ? sql`NULL::text` : sql`entered::text`} AS entered,
  back::text AS back,
  after::text AS after,
  count(*)::int AS n
FROM people
GROUP BY 1, 2, 3, 4`;
}

// First time with the cohort given as (profile_id, first_at): no running window. Each person's events from
// their first time to the horizon (one index range per person, read index-only) fold, inside a LATERAL
// aggregate, to the buckets they came back in, and period 0 is a return after the entering event — the
// least (timestamp, id) start event, at first_at: one later in time, or at the same instant with a greater id
// than the least start event's there. The cohort is walked in profile-id order, so the ranges read follow
// the (profile_id, timestamp) index from left to right (measured on bench:analytics 10M: the cohort walked in
// first_at order read 4.5 times as many index pages from outside shared_buffers); folding per person in the
// lateral leaves only the few mask groups to hash, where grouping the joined events by person sorted 4.3M rows.
function firstTimesPassSql(q: RetentionQuery, firstTimes: Fragment, now: Date, slice?: ProfileSlice): Fragment {
  const bounds = retentionBounds(q);
  const horizon = bounds[bounds.length - 1]!;
  const start = compileEventFilter(q.start, { now, alias: 'e' });
  const back = compileEventFilter(q.return, { now, alias: 'e' });
  return sql`
WITH cohort AS (
  SELECT ft.profile_id, ft.first_at, width_bucket(ft.first_at, ${bounds}::timestamptz[]) - 1 AS fb
  FROM (${firstTimes}) ft
  WHERE ${inSlice(sql`ft.profile_id`, slice)}
  ORDER BY ft.profile_id
)
SELECT c.fb AS first, NULL::text AS entered, p.back::text AS back, p.after::text AS after, count(*)::int AS n
FROM cohort c
CROSS JOIN LATERAL (
  SELECT bit_or(1::int8 << ev.b) FILTER (WHERE ev.r) AS back,
    CASE WHEN bool_or(ev.r AND ev.timestamp > c.first_at AND ev.b = c.fb)
      OR max(ev.id) FILTER (WHERE ev.r AND ev.timestamp = c.first_at) > min(ev.id) FILTER (WHERE ev.s AND ev.timestamp = c.first_at)
    THEN 1::int8 << c.fb END AS after
  FROM (
    SELECT e.timestamp, e.id, width_bucket(e.timestamp, ${bounds}::timestamptz[]) - 1 AS b,
      coalesce(${start}, false) AS s,
      coalesce(${back}, false) AS r
    FROM events e
    WHERE e.profile_id = c.profile_id AND e.timestamp >= c.first_at AND e.timestamp < ${horizon}::timestamptz
      AND (${start} OR ${back})
  ) ev
  -- A person without a start or return event from the first time on has no row (as an inner join).
  HAVING count(*) > 0
) p
GROUP BY 1, 2, 3, 4`;
}

/**
 * The rows of {@link retentionSql} from those of {@link retentionPassSql}: cohort sizes, and per
 * cohort and period the people who came back (bounded) or whose last period back it is (unbounded).
 *
 * @example
 * const table = retentionTable(query, retentionRowsOfPass(query, rows), now);
 */
export function retentionRowsOfPass(q: RetentionQuery, rows: readonly RetentionPassRow[]): RetentionRow[] {
  const bounds = retentionBounds(q).map((b) => Date.parse(b));
  const counts = new Map<string, number>();
  const add = (cohort: number, period: number, n: number) => {
    const key = `${cohort}:${period}`;
    counts.set(key, (counts.get(key) ?? 0) + n);
  };
  const has = (mask: bigint, b: number) => ((mask >> BigInt(b)) & 1n) === 1n;
  for (const r of rows) {
    const back = BigInt(r.back ?? 0);
    const after = BigInt(r.after ?? 0);
    const entered = r.first !== null ? 1n << BigInt(r.first) : BigInt(r.entered ?? 0);
    for (let c = 0; c + q.periods + 1 < bounds.length; c++) {
      if (!has(entered, c)) continue;
      add(c, -1, r.n);
      let last = -1;
      for (let k = 0; k <= q.periods; k++) {
        if (!(k === 0 ? has(after, c) : has(back, c + k))) continue;
        if (q.bounded) add(c, k, r.n);
        last = k;
      }
      if (!q.bounded && last >= 0) add(c, last, r.n);
    }
  }
  return [...counts].map(([key, people]) => {
    const [c, period] = key.split(':').map(Number) as [number, number];
    return { cohort_ms: bounds[c]!, period, people };
  });
}
