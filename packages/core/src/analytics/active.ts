import { DateTime } from 'luxon';
import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, ident, sql } from '../rules/sql.ts';
import { bucketStarts, type TimeRange } from './range.ts';
import type { CohortUnit } from './retention.ts';

/** An active-users query, as the API takes it (validated there). */
export interface ActiveQuery {
  /** The days reported: every calendar day (in `range.timezone`) that meets `[from, to)`. */
  range: TimeRange;
  /** What counts as being active; absent: any event but `identify`. */
  events?: EventFilter;
  /** The buckets of the lifecycle. */
  interval: CohortUnit;
}

/** The rolling windows, in calendar days ending on (and including) each day. */
export const ACTIVE_WINDOWS = { dau: 1, wau: 7, mau: 30 } as const;

const activeWhere = (q: ActiveQuery, now: Date, alias: 'e' | 'p'): Fragment =>
  q.events ? compileEventFilter(q.events, { now, alias }) : sql`${ident(alias)}.type <> 'identify'`;

/** The instants the series reads events in: from the start of the day 29 days before the first reported day. */
function seriesBounds(range: TimeRange): { days: string[]; lo: string; hi: string } {
  const zone = range.timezone;
  const starts = bucketStarts(range, 'day');
  const first = DateTime.fromISO(starts[0]!, { zone });
  const last = DateTime.fromISO(starts[starts.length - 1]!, { zone });
  return {
    days: starts.map((s) => DateTime.fromISO(s, { zone }).toISODate()!),
    lo: first
      .minus({ days: ACTIVE_WINDOWS.mau - 1 })
      .toUTC()
      .toISO()!,
    hi: last.plus({ days: 1 }).toUTC().toISO()!,
  };
}

/** A row of {@link activeSeriesSql}: how many people were active on `day` and next on `day + gap` (null: not again; gaps past 30 as 30). */
export interface ActiveRunRow {
  day: string;
  gap: number | null;
  people: number;
}

/**
 * The statement behind DAU/WAU/MAU: each person's distinct active days (local dates), and in one pass
 * over them in order (`lead`) the gap to their next active day, counted per (day, gap). A person active
 * on `day` covers the days from `day` to `day + min(window, gap) - 1` that no later active day of
 * theirs covers, so summing those spans day by day ({@link activeSeries}) gives the distinct people of
 * each rolling window without a join of days against windows; the answer has at most 31 rows per day.
 *
 * @example
 * const rows = await reader.rows<ActiveRunRow>(activeSeriesSql(query, { now }));
 */
export function activeSeriesSql(q: ActiveQuery, options: { now: Date }): Fragment {
  const tz = q.range.timezone;
  const { lo, hi } = seriesBounds(q.range);
  return sql`
WITH days AS (
  SELECT DISTINCT e.profile_id, (e.timestamp AT TIME ZONE ${tz}::text)::date AS day
  FROM events e
  WHERE e.profile_id IS NOT NULL
    AND e.timestamp >= ${lo}::timestamptz AND e.timestamp < ${hi}::timestamptz
    AND ${activeWhere(q, options.now, 'e')}
),
runs AS (
  SELECT day, lead(day) OVER (PARTITION BY profile_id ORDER BY day) - day AS gap FROM days
)
SELECT to_char(day, 'YYYY-MM-DD') AS day, least(gap, ${ACTIVE_WINDOWS.mau}::int) AS gap, count(*)::int AS people
FROM runs
GROUP BY 1, 2`;
}

/** A day of the active-users series. */
export interface ActiveDay {
  /** The local date (`YYYY-MM-DD` in the range's time zone). */
  day: string;
  /** The day's start (ISO, UTC). */
  start: string;
  dau: number;
  wau: number;
  mau: number;
  /** DAU / MAU, to 4 decimals; null when nobody was active in the 30 days. */
  stickiness: number | null;
}

/**
 * The series from the rows of {@link activeSeriesSql}: each (day, gap) as +people on the day and
 * −people when its span ends, per window; running sums from the first day read, kept for the reported
 * days; and the average stickiness (DAU/MAU over the days with an MAU, to 4 decimals).
 *
 * @example
 * const { series, stickiness } = activeSeries(query.range, rows);
 */
export function activeSeries(
  range: TimeRange,
  rows: readonly ActiveRunRow[],
): { series: ActiveDay[]; stickiness: number | null } {
  const zone = range.timezone;
  const { days } = seriesBounds(range);
  const marks = new Map<string, { dau: number; wau: number; mau: number }>();
  const mark = (day: string, plus: number, window: keyof typeof ACTIVE_WINDOWS) => {
    const m = marks.get(day) ?? marks.set(day, { dau: 0, wau: 0, mau: 0 }).get(day)!;
    m[window] += plus;
  };
  for (const r of rows) {
    const people = Number(r.people);
    const day = DateTime.fromISO(r.day, { zone: 'UTC' });
    for (const window of ['dau', 'wau', 'mau'] as const) {
      const span = Math.min(ACTIVE_WINDOWS[window], r.gap === null ? Number.POSITIVE_INFINITY : Number(r.gap));
      mark(r.day, people, window);
      mark(day.plus({ days: span }).toISODate()!, -people, window);
    }
  }
  const now = { dau: 0, wau: 0, mau: 0 };
  const series: ActiveDay[] = [];
  let day = DateTime.fromISO(days[0]!, { zone }).minus({ days: ACTIVE_WINDOWS.mau - 1 });
  const wanted = new Set(days);
  let ratios = 0;
  let counted = 0;
  for (;;) {
    const date = day.toISODate()!;
    const m = marks.get(date);
    if (m) {
      now.dau += m.dau;
      now.wau += m.wau;
      now.mau += m.mau;
    }
    if (wanted.has(date)) {
      const ratio = now.mau ? now.dau / now.mau : null;
      if (ratio !== null) {
        ratios += ratio;
        counted++;
      }
      series.push({
        day: date,
        start: day.toUTC().toISO()!,
        ...now,
        stickiness: ratio === null ? null : round(ratio, 4),
      });
      if (date === days[days.length - 1]) break;
    }
    day = day.plus({ days: 1 });
  }
  return { series, stickiness: counted ? round(ratios / counted, 4) : null };
}

/** A row of {@link lifecycleSql}. */
export interface LifecycleRow {
  bucket_ms: number;
  status: 'new' | 'returning' | 'resurrecting' | 'dormant';
  people: number;
}

/**
 * The statement of the lifecycle: each person's distinct active buckets from the bucket before the
 * range's first, in order (`lag`/`lead`), each classified — returning (active in the previous bucket
 * too), resurrecting (not in the previous bucket but earlier: in the window, or before it, one index
 * probe on the person's events), new (no event before) — and dormant in the bucket after one in which
 * they were active, when they are not active in it.
 *
 * @example
 * const rows = await reader.rows<LifecycleRow>(lifecycleSql(query, { now }));
 */
export function lifecycleSql(q: ActiveQuery, options: { now: Date }): Fragment {
  const tz = q.range.timezone;
  const starts = bucketStarts(q.range, q.interval);
  const zone = tz;
  const first = DateTime.fromISO(starts[0]!, { zone });
  const lo = first
    .minus({ [`${q.interval}s`]: 1 })
    .toUTC()
    .toISO()!;
  const hi = DateTime.fromISO(starts[starts.length - 1]!, { zone })
    .plus({ [`${q.interval}s`]: 1 })
    .toUTC()
    .toISO()!;
  const step = sql`${`1 ${q.interval}`}::interval`;
  const local = (instant: string) => sql`(${instant}::timestamptz AT TIME ZONE ${tz}::text)`;
  return sql`
WITH act AS (
  SELECT DISTINCT e.profile_id, date_trunc(${q.interval}::text, e.timestamp AT TIME ZONE ${tz}::text) AS b
  FROM events e
  WHERE e.profile_id IS NOT NULL
    AND e.timestamp >= ${lo}::timestamptz AND e.timestamp < ${hi}::timestamptz
    AND ${activeWhere(q, options.now, 'e')}
),
seq AS (
  SELECT profile_id, b, lag(b) OVER w AS prev, lead(b) OVER w AS next
  FROM act
  WINDOW w AS (PARTITION BY profile_id ORDER BY b)
),
classified AS (
  SELECT s.b AS bucket,
    CASE
      WHEN s.prev = s.b - ${step} THEN 'returning'
      WHEN s.prev IS NOT NULL THEN 'resurrecting'
      WHEN EXISTS (
        SELECT 1 FROM events p
        WHERE p.profile_id = s.profile_id AND p.timestamp < ${lo}::timestamptz AND ${activeWhere(q, options.now, 'p')}
      ) THEN 'resurrecting'
      ELSE 'new'
    END AS status
  FROM seq s
  WHERE s.b >= ${local(first.toUTC().toISO()!)}
  UNION ALL
  SELECT s.b + ${step}, 'dormant'
  FROM seq s
  WHERE (s.next IS NULL OR s.next <> s.b + ${step}) AND s.b + ${step} < ${local(hi)}
)
SELECT (extract(epoch FROM bucket AT TIME ZONE ${tz}::text) * 1000)::float8 AS bucket_ms, status, count(*)::int AS people
FROM classified
GROUP BY 1, 2`;
}

/** A bucket of the lifecycle; dormant is negative (people lost since the previous bucket), as PostHog shows it. */
export interface LifecycleBucket {
  /** The bucket's start (ISO, UTC). */
  start: string;
  new: number;
  returning: number;
  resurrecting: number;
  dormant: number;
}

/**
 * The lifecycle table from the rows of {@link lifecycleSql}: every bucket of the range, dormant negated.
 *
 * @example
 * const buckets = lifecycleTable(query, rows);
 */
export function lifecycleTable(q: ActiveQuery, rows: readonly LifecycleRow[]): LifecycleBucket[] {
  const zone = q.range.timezone;
  const at = new Map<string, number>(rows.map((r) => [`${Number(r.bucket_ms)} ${r.status}`, Number(r.people)]));
  return bucketStarts(q.range, q.interval).map((start) => {
    const ms = +DateTime.fromISO(start, { zone });
    const n = (status: LifecycleRow['status']) => at.get(`${ms} ${status}`) ?? 0;
    return {
      start,
      new: n('new'),
      returning: n('returning'),
      resurrecting: n('resurrecting'),
      dormant: 0 - n('dormant'),
    };
  });
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
