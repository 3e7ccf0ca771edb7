import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, join, sql } from '../rules/sql.ts';
import type { TimeRange } from './range.ts';

/** What a trend series measures per bucket: events, distinct people, or a sum or mean of a numeric property. */
export type TrendMeasure = 'count' | 'people' | 'sum' | 'avg';
export const TREND_MEASURES: readonly TrendMeasure[] = ['count', 'people', 'sum', 'avg'];

/** One series of a trend: which events, and what of them is measured. */
export interface TrendSeries {
  events: EventFilter;
  measure: TrendMeasure;
  /** For sum/avg: a dot path under the event's properties; values that are not JSON numbers are ignored. */
  property?: string;
}

/** What a trend is cut by: an event property (as sent), or a person's current trait. */
export type TrendBreakdown = { property: string } | { trait: string };

/** The group label of everything outside the top groups. */
export const OTHER_GROUP = '$other';
/** How many groups a breakdown shows by default, and at most. */
export const TREND_LIMITS = { groups: 10, maxGroups: 50, series: 10 } as const;

/** What {@link trendsQuery} builds a statement for. */
export interface TrendQuery {
  range: TimeRange;
  /** The bucket starts (from `bucketStarts(range, interval)`): an event's bucket is the last start at or before it. */
  starts: readonly string[];
  series: readonly TrendSeries[];
  breakdown?: TrendBreakdown;
  /** Top groups per series (by total; `avg` by how many values it averages); the rest become `$other`. */
  limit?: number;
  /** Instead of ranking: the groups to keep per series (a previous period keeps the current one's groups). */
  keep?: readonly (readonly (string | null)[])[];
  /** The instant relative dates in event filters are read against. */
  now: Date;
  /**
   * Whole UTC hours inside the range ({@link rollupWindow}) that series with a {@link rollupSource} read
   * from the hourly rollups instead of events; the partial hours at the edges still scan events.
   */
  rollup?: { from: string; to: string };
  /** The properties rolled up per hour (analytics_rollup_properties); others are scanned. */
  rolled?: readonly RolledProperty[];
}

/** A property of a named event the pipeline rolls up per hour: sums and numbers of its JSON numbers, and per value when `byValue`. */
export interface RolledProperty {
  event: string;
  property: string;
  byValue: boolean;
}

/**
 * Where a series' whole hours are read from: `counts` (analytics_hourly_counts), `values` (sums and
 * per-value counts of a rolled-up property) or `people` (people per hour, any event).
 */
export type RollupSource = 'counts' | 'values' | 'people';

/** A row of a trend statement: one (series, group?, bucket?) cell; `group`/`bucket` null on roll-up rows. */
export interface TrendRow {
  series: number;
  grp: string | null;
  /** 1 on the rows summed over groups (no breakdown, or a series' overall line). */
  all_groups: number;
  /** 1 on the rows summed over the whole range. */
  all_buckets: number;
  bucket: number | null;
  n: number;
  people: number;
  sum: number | null;
  nums: number;
}

const valuePath = (path: string) => ['properties', ...path.split('.')];

/**
 * The value a sum or mean series adds up per event of `e` (events aliased `e`): its property when that is
 * a JSON number, else SQL NULL (also for counts and people). Shared with the server's trait-rollup reads.
 *
 * @example
 * sql`SELECT ${numericValue({ events: {}, measure: 'sum', property: 'order.total' })} FROM events e`;
 */
export function numericValue(s: TrendSeries): Fragment {
  if ((s.measure !== 'sum' && s.measure !== 'avg') || !s.property) return sql`NULL::float8`;
  const v = sql`(e.payload #> ${valuePath(s.property)}::text[])`;
  // Numbers only: a string "12" or a boolean is not summed (as the answer's meta says).
  return sql`CASE WHEN jsonb_typeof(${v}) = 'number' THEN ${v}::float8 END`;
}

/**
 * The per-series ranking key of a group, over rows with `weight`, `value`, `nums` (and `profile_id` for
 * people): what its total is, except avg, ranked by how many values it averages.
 *
 * @example
 * sql`SELECT grp, ${rankKey({ events: {}, measure: 'avg', property: 'total' })} AS key FROM hits GROUP BY grp`;
 */
export function rankKey(s: TrendSeries): Fragment {
  if (s.measure === 'people') return sql`count(DISTINCT profile_id)::float8`;
  if (s.measure === 'sum') return sql`coalesce(sum(value), 0)::float8`;
  if (s.measure === 'avg') return sql`sum(nums)::float8`;
  return sql`sum(weight)::float8`;
}

const HOUR_MS = 3_600_000;

/**
 * Whether a series can be answered from the hourly counts alone: a count of events chosen by name and
 * type only, without a breakdown (what the counts keep across a retention horizon; the other rollups
 * are chosen by {@link rollupSource}).
 *
 * @example
 * rollsUp({ events: { event: 'Order Completed' }, measure: 'count' }, undefined); // true
 */
export function rollsUp(s: TrendSeries, breakdown: TrendBreakdown | undefined): boolean {
  return s.measure === 'count' && !breakdown && !s.events.where?.length;
}

/**
 * The rollup a series' whole hours can be read from, or null when it must scan events: events chosen
 * by name and type only; counts without a breakdown, and distinct people of any event; sums and means of a
 * property rolled up for every event the series names; counts (or that property's sum) broken down by a
 * property rolled up by value. Conditions on properties, trait breakdowns and other properties scan.
 *
 * @example
 * rollupSource({ events: {}, measure: 'people' }, undefined, []); // 'people'
 * const rolled = [{ event: 'Order Completed', property: 'total', byValue: false }];
 * rollupSource({ events: { event: 'Order Completed' }, measure: 'sum', property: 'total' }, undefined, rolled); // 'values'
 */
export function rollupSource(
  s: TrendSeries,
  breakdown: TrendBreakdown | undefined,
  rolled: readonly RolledProperty[] = [],
): RollupSource | null {
  if (s.events.where?.length) return null;
  // A property's rollup serves a series whose every named event has it rolled up (by value for a breakdown).
  const names = s.events.event === undefined ? [] : [s.events.event].flat();
  const find = (p: string | undefined, byValue = false) =>
    names.length > 0 &&
    names.every((n) => rolled.some((r) => r.event === n && r.property === p && (r.byValue || !byValue)));
  if (breakdown) {
    if ('trait' in breakdown || !find(breakdown.property, true)) return null;
    if (s.measure === 'count') return 'values';
    return s.measure !== 'people' && s.property === breakdown.property ? 'values' : null;
  }
  if (s.measure === 'count') return 'counts';
  // People of a named event or type scan events: per event, person-hours are nearly one per event.
  if (s.measure === 'people') return s.events.event === undefined && s.events.type === undefined ? 'people' : null;
  return find(s.property) ? 'values' : null;
}

// The whole hours of one series from its rollup, as rows of `hits` (filter over the rollup's type and event).
function rollupHits(
  i: number,
  source: RollupSource,
  s: TrendSeries,
  bd: TrendBreakdown | undefined,
  q: TrendQuery,
  filter: Fragment,
): Fragment {
  const r = q.rollup!;
  const during = sql`e.hour >= ${r.from}::timestamptz AND e.hour < ${r.to}::timestamptz`;
  const head = sql`SELECT ${i}::int AS series, width_bucket(e.hour, ${q.starts}::timestamptz[]) - 1 AS bucket`;
  if (source === 'people')
    return sql`
    ${head}, NULL::text AS grp, e.profile_id, NULL::float8 AS value, 0 AS nums, 1::bigint AS weight
    FROM analytics_hourly_people e
    WHERE ${during}`;
  if (source === 'values') {
    const property = bd && 'property' in bd ? bd.property : s.property!;
    return sql`
    ${head}, ${bd ? sql`e.value` : sql`NULL::text`} AS grp, NULL::uuid AS profile_id, e.sum AS value, e.nums, e.n AS weight
    FROM analytics_hourly_values e
    WHERE e.property = ${property}
      AND ${during}
      AND ${filter}`;
  }
  return sql`
    ${head}, NULL::text AS grp, NULL::uuid AS profile_id, NULL::float8 AS value, 0 AS nums, e.n AS weight
    FROM (
      SELECT hour, type, event, n FROM analytics_hourly_counts
      UNION ALL
      -- Deltas not folded yet (the events' triggers write them with each change): exact at once.
      SELECT hour, type, event, n FROM analytics_count_deltas
    ) e
    WHERE ${during}
      AND ${filter}`;
}

/**
 * The whole UTC hours of a range that the hourly rollup can answer, or null: every bucket must start on
 * a whole UTC hour (zones with whole-hour offsets; not India's +05:30 or Nepal's +05:45), and the range
 * must hold at least one whole hour.
 *
 * @example
 * rollupWindow({ from: '2026-05-01T10:20:00Z', to: '2026-05-02T00:00:00Z', timezone: 'UTC' }, starts);
 * // { from: '2026-05-01T11:00:00.000Z', to: '2026-05-02T00:00:00.000Z' }
 */
export function rollupWindow(range: TimeRange, starts: readonly string[]): { from: string; to: string } | null {
  if (!starts.every((t) => Date.parse(t) % HOUR_MS === 0)) return null;
  const from = Math.ceil(Date.parse(range.from) / HOUR_MS) * HOUR_MS;
  const to = Math.floor(Date.parse(range.to) / HOUR_MS) * HOUR_MS;
  return from < to ? { from: new Date(from).toISOString(), to: new Date(to).toISOString() } : null;
}

/**
 * One statement answering every series of a trend over `range`: per series (and per breakdown group,
 * top `limit` by total with the rest as `$other`) the events, distinct people (events.profile_id, the
 * person after merges), and the sum and number of numeric values, per bucket and over the whole range
 * (GROUPING SETS: the range's people are distinct over the range, not a sum of buckets). Buckets are
 * found with `width_bucket` over the starts, so they are exactly `bucketStarts` (DST days included).
 * A trait breakdown reads the person's current value (profile_traits); refusing sensitive traits is the caller's job.
 *
 * @example
 * const starts = bucketStarts(range, 'day');
 * const q = trendsQuery({ range, starts, series: [{ events: { event: 'Signed Up' }, measure: 'people' }], now });
 * const rows = await reader.rows<TrendRow>(q);
 */
export function trendsQuery(q: TrendQuery): Fragment {
  const bd = q.breakdown;
  const grp = !bd
    ? sql`NULL::text`
    : 'trait' in bd
      ? sql`t.value #>> '{}'`
      : sql`e.payload #>> ${valuePath(bd.property)}::text[]`;
  const traitJoin =
    bd && 'trait' in bd
      ? sql`LEFT JOIN profile_traits t ON t.profile_id = e.profile_id AND t.key = ${bd.trait}`
      : sql``;
  const hits = q.series.map((s, i) => {
    const filter = compileEventFilter(s.events, { now: q.now, alias: 'e' });
    const scan = (during: Fragment) => sql`
    SELECT ${i}::int AS series,
      width_bucket(e.timestamp, ${q.starts}::timestamptz[]) - 1 AS bucket,
      ${grp} AS grp,
      e.profile_id,
      ${numericValue(s)} AS value,
      (${numericValue(s)} IS NOT NULL)::int AS nums,
      1::bigint AS weight
    FROM events e
    ${traitJoin}
    WHERE e.profile_id IS NOT NULL
      AND ${during}
      AND ${filter}`;
    const between = (from: string, to: string) =>
      sql`e.timestamp >= ${from}::timestamptz AND e.timestamp < ${to}::timestamptz`;
    const r = q.rollup;
    const source = r ? rollupSource(s, bd, q.rolled) : null;
    if (!r || !source) return scan(between(q.range.from, q.range.to));
    // The whole hours from a rollup (its rows have the type and event columns the filter reads), the
    // partial hours at the edges from events.
    return sql`${rollupHits(i, source, s, bd, q, filter)}
    UNION ALL${scan(sql`(${between(q.range.from, r.from)} OR ${between(r.to, q.range.to)})`)}`;
  });
  const people = q.series.some((s) => s.measure === 'people') ? sql`count(DISTINCT profile_id)::int` : sql`0`;
  const measures = sql`sum(weight)::int AS n,
    ${people} AS people,
    sum(value)::float8 AS sum,
    coalesce(sum(nums), 0)::int AS nums`;
  if (!bd)
    return sql`
WITH hits AS (${join(
      hits,
      sql`
  UNION ALL`,
    )}
)
SELECT series, NULL::text AS grp, 1 AS all_groups, GROUPING(bucket) AS all_buckets, bucket,
  ${measures}
FROM hits
GROUP BY GROUPING SETS ((series, bucket), (series))`;

  // The groups each series shows: given (a previous period), else its top `limit` by total.
  const chosen = q.keep
    ? sql`SELECT k.series, k.grp
    FROM unnest(${q.keep.flatMap((groups, i) => groups.map(() => i))}::int[],
      ${q.keep.flat()}::text[]) AS k(series, grp)`
    : sql`SELECT series, grp
    FROM (
      SELECT series, grp,
        row_number() OVER (
          PARTITION BY series
          ORDER BY CASE series ${join(
            q.series.map((s, i) => sql`WHEN ${i}::int THEN ${rankKey(s)}`),
            sql` `,
          )} END DESC, grp NULLS LAST
        ) AS place
      FROM hits
      GROUP BY series, grp
    ) ranked
    WHERE place <= ${q.limit ?? TREND_LIMITS.groups}::int`;
  return sql`
WITH hits AS (${join(
    hits,
    sql`
  UNION ALL`,
  )}
),
chosen AS (
  ${chosen}
),
labelled AS (
  -- A null group (no such property or trait) is a group of its own; coalesce keeps the join hashable.
  SELECT h.series, h.bucket, h.profile_id, h.value, h.nums, h.weight,
    CASE WHEN c.series IS NULL THEN ${OTHER_GROUP}::text ELSE h.grp END AS grp
  FROM hits h
  LEFT JOIN chosen c
    ON c.series = h.series
    AND coalesce(c.grp, '') = coalesce(h.grp, '')
    AND (c.grp IS NULL) = (h.grp IS NULL)
)
SELECT series, grp, GROUPING(grp) AS all_groups, GROUPING(bucket) AS all_buckets, bucket,
  ${measures}
FROM labelled
GROUP BY GROUPING SETS ((series, grp, bucket), (series, grp), (series, bucket), (series))`;
}

/** A line of a trend: a value per bucket (zero-filled; `avg` is null where nothing was averaged) and its total. */
export interface TrendLine {
  values: (number | null)[];
  /** Over the whole range: for `people` the distinct people of the range, not the sum of the buckets. */
  total: number | null;
}

/** One series of a trend answer, with its breakdown groups when there is a breakdown. */
export interface TrendSeriesResult extends TrendLine {
  groups?: (TrendLine & { group: string | null })[];
}

interface Cell {
  n: number;
  people: number;
  sum: number;
  nums: number;
}

function valueOfCell(measure: TrendMeasure, c: Cell | undefined): number | null {
  if (measure === 'avg') return c && c.nums > 0 ? c.sum / c.nums : null;
  if (!c) return 0;
  return measure === 'count' ? c.n : measure === 'people' ? c.people : c.sum;
}

/**
 * Folds the rows of {@link trendsQuery} into one result per series: zero-filled buckets, totals, and
 * the groups of a breakdown ordered by total (avg: by values averaged) with `$other` last.
 *
 * @example
 * const result = foldTrends(rows, { series, buckets: starts.length, breakdown: true });
 * result[0].values; // [3, 0, 5, ...]
 */
export function foldTrends(
  rows: readonly TrendRow[],
  options: { series: readonly TrendSeries[]; buckets: number; breakdown: boolean },
): TrendSeriesResult[] {
  type Acc = { cells: (Cell | undefined)[]; total?: Cell };
  const lines = options.series.map(() => new Map<string | null, Acc>());
  for (const r of rows) {
    const key = r.all_groups ? '\u0000all' : r.grp;
    const byKey = lines[r.series]!;
    const line: Acc = byKey.get(key) ?? { cells: new Array(options.buckets).fill(undefined) };
    byKey.set(key, line);
    const cell = { n: r.n, people: r.people, sum: r.sum ?? 0, nums: r.nums };
    if (r.all_buckets) line.total = cell;
    else line.cells[r.bucket!] = cell;
  }
  return options.series.map((s, i) => {
    const toLine = (l: { cells: (Cell | undefined)[]; total?: Cell } | undefined): TrendLine => ({
      values: (l?.cells ?? new Array(options.buckets).fill(undefined)).map((c) => valueOfCell(s.measure, c)),
      total: valueOfCell(s.measure, l?.total),
    });
    const byKey = lines[i]!;
    const result: TrendSeriesResult = toLine(byKey.get('\u0000all'));
    if (options.breakdown) {
      const rank = (l: { total?: Cell }) =>
        s.measure === 'avg' ? (l.total?.nums ?? 0) : (valueOfCell(s.measure, l.total) ?? 0);
      result.groups = [...byKey.entries()]
        .filter(([k]) => k !== '\u0000all')
        .sort(([ka, a], [kb, b]) =>
          ka === OTHER_GROUP ? 1 : kb === OTHER_GROUP ? -1 : rank(b) - rank(a) || compareGroups(ka, kb),
        )
        .map(([group, l]) => ({ group, ...toLine(l) }));
    }
    return result;
  });
}

const compareGroups = (a: string | null, b: string | null) =>
  a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1;

/**
 * The change from `previous` to `current` in percent; null when the previous value is zero or missing.
 *
 * @example
 * percentChange(150, 100); // 50
 */
export function percentChange(current: number | null, previous: number | null): number | null {
  if (current === null || previous === null || previous === 0) return null;
  return ((current - previous) / Math.abs(previous)) * 100;
}
