import {
  bucketOf,
  compileEventFilter,
  type Fragment,
  numericValue,
  OTHER_GROUP,
  rankKey,
  ruleSql as sql,
  type TimeInterval,
  type TimeRange,
  TREND_LIMITS,
  type TrendBreakdown,
  type TrendRow,
  type TrendSeries,
} from '@cairn/core';
import { DateTime } from 'luxon';
import type { PinnedReader } from '../../pipeline/measure/reader.ts';

// Trend series broken down by a person's current trait, answered from the trait rollup (migration 0044):
// the whole local days of the range from the day sums of a kept (trait, event, property, zone) entry, the
// partial days at its edges from events joined to the current traits, as the scan does. The statement's
// ranking and grouping are the scan's (packages/core trendsQuery), over those rows.

/** A kept breakdown as the read connection sees it. */
export interface TraitRollupRow {
  id: number;
  trait: string;
  event: string;
  property: string;
  zone: string;
}

/** The registry as the read connection sees it. */
export const TRAIT_REGISTRY = sql`SELECT id, trait, event, property, zone FROM analytics_rollup_traits`;

/** The entry a series reads, and the whole local days [from, to) it reads there. */
export interface TraitKey {
  id: number;
  zone: string;
  /** The whole local days: ISO dates, and the instants they start at. */
  days: { from: string; to: string; fromAt: string; toAt: string };
}

/**
 * The entry a series reads from the trait rollup, or null (it scans): a count, sum or mean of one named
 * event (no type, no conditions), broken down by a trait, by day, week or month, in a zone with an entry
 * for that trait and event (and property, for a sum or mean), over a range holding at least one whole local day.
 *
 * @example
 * traitKeyOf({ events: { event: 'Order Completed' }, measure: 'avg', property: 'total' }, { interval: 'week', range, breakdown: { trait: 'plan' }, registry });
 */
export function traitKeyOf(
  s: TrendSeries,
  q: { interval: TimeInterval; range: TimeRange; breakdown?: TrendBreakdown; registry: readonly TraitRollupRow[] },
): TraitKey | null {
  if (!q.breakdown || !('trait' in q.breakdown) || q.interval === 'hour' || s.measure === 'people') return null;
  if (s.events.where?.length || s.events.type !== undefined || s.events.event === undefined) return null;
  const names = [s.events.event].flat();
  if (names.length !== 1) return null;
  const zone = q.range.timezone ?? 'UTC';
  const trait = q.breakdown.trait;
  const entry = q.registry.find(
    (r) =>
      r.trait === trait &&
      r.event === names[0] &&
      r.zone === zone &&
      (s.measure === 'count' || (r.property !== '' && r.property === s.property)),
  );
  if (!entry) return null;
  // Whole local days: from the first midnight at or after the start to the last one at or before the end.
  const startDay = bucketOf(q.range.from, 'day', zone);
  const fromAt =
    Date.parse(startDay) === Date.parse(q.range.from)
      ? startDay
      : DateTime.fromISO(startDay).setZone(zone).plus({ days: 1 }).startOf('day').toUTC().toISO()!;
  const toAt = bucketOf(q.range.to, 'day', zone);
  if (Date.parse(fromAt) >= Date.parse(toAt)) return null;
  const date = (iso: string) => DateTime.fromISO(iso, { zone }).toISODate()!;
  return { id: entry.id, zone, days: { from: date(fromAt), to: date(toAt), fromAt, toAt } };
}

const unionAll = (parts: readonly Fragment[]) =>
  parts.reduce(
    (a, b) => sql`${a}
  UNION ALL
  ${b}`,
  );

/**
 * What a read of a trend by a trait takes: its series with their entries (`K`), the trait, the range and
 * its bucket starts, and the groups to show (the top `limit`, or those of `keep` per series).
 */
export interface TraitRead<K> {
  series: readonly TrendSeries[];
  keys: readonly K[];
  trait: string;
  range: TimeRange;
  starts: readonly string[];
  limit?: number;
  keep?: readonly (readonly (string | null)[])[];
  now: Date;
}

/**
 * The rows (as trendsQuery's) of series answered from the trait rollup, numbered 0.. in `series` order:
 * per series the top `limit` groups by total (or the groups of `keep`), the rest as `$other`.
 *
 * @example
 * const rows = await reader.rows<TrendRow>(traitRollupQuery({ series, keys, trait: 'plan', range, starts, now }));
 */
export function traitRollupQuery(q: TraitRead<TraitKey>): Fragment {
  const hits = q.series.map((s, i) => {
    const key = q.keys[i]!;
    const sums =
      s.measure === 'count' ? sql`NULL::float8 AS value, 0::bigint AS nums` : sql`c.sum::float8 AS value, c.nums`;
    // A day's deltas summed per value; values that sum to no event are no group (the scan would not see them).
    const whole = sql`
    SELECT ${i}::int AS series,
      width_bucket((c.day::timestamp + interval '12 hours') AT TIME ZONE ${key.zone}, ${q.starts}::timestamptz[]) - 1 AS bucket,
      c.value AS grp, ${sums}, c.n AS weight
    FROM (
      SELECT day, value, sum(n) AS n, sum(sum) AS sum, sum(nums) AS nums
      FROM analytics_trait_counts
      WHERE rollup_id = ${key.id}::int AND day >= ${key.days.from}::date AND day < ${key.days.to}::date
      GROUP BY day, value
      HAVING sum(n) <> 0
    ) c`;
    const edge = (from: string, to: string) => sql`
    SELECT ${i}::int AS series,
      width_bucket(e.timestamp, ${q.starts}::timestamptz[]) - 1 AS bucket,
      t.value #>> '{}' AS grp,
      ${numericValue(s)} AS value,
      (${numericValue(s)} IS NOT NULL)::int::bigint AS nums,
      1::bigint AS weight
    FROM events e
    LEFT JOIN profile_traits t ON t.profile_id = e.profile_id AND t.key = ${q.trait}
    WHERE e.profile_id IS NOT NULL
      AND e.timestamp >= ${from}::timestamptz AND e.timestamp < ${to}::timestamptz
      AND ${compileEventFilter(s.events, { now: q.now, alias: 'e' })}`;
    const parts = [whole];
    if (Date.parse(q.range.from) < Date.parse(key.days.fromAt)) parts.push(edge(q.range.from, key.days.fromAt));
    if (Date.parse(key.days.toAt) < Date.parse(q.range.to)) parts.push(edge(key.days.toAt, q.range.to));
    return unionAll(parts);
  });
  const chosen = q.keep
    ? sql`SELECT k.series, k.grp
    FROM unnest(${q.keep.flatMap((groups, i) => groups.map(() => i))}::int[], ${q.keep.flat()}::text[]) AS k(series, grp)`
    : sql`SELECT series, grp
    FROM (
      SELECT series, grp,
        row_number() OVER (
          PARTITION BY series
          ORDER BY CASE series ${q.series.map((s, i) => sql`WHEN ${i}::int THEN ${rankKey(s)} `).reduce((a, b) => sql`${a}${b}`)} END DESC, grp NULLS LAST
        ) AS place
      FROM hits
      GROUP BY series, grp
    ) ranked
    WHERE place <= ${q.limit ?? TREND_LIMITS.groups}::int`;
  return sql`
WITH hits AS (
  ${unionAll(hits)}
),
chosen AS (
  ${chosen}
),
labelled AS (
  SELECT h.series, h.bucket, h.value, h.nums, h.weight,
    CASE WHEN c.series IS NULL THEN ${OTHER_GROUP}::text ELSE h.grp END AS grp
  FROM hits h
  LEFT JOIN chosen c
    ON c.series = h.series
    AND coalesce(c.grp, '') = coalesce(h.grp, '')
    AND (c.grp IS NULL) = (h.grp IS NULL)
)
SELECT series, grp, GROUPING(grp) AS all_groups, GROUPING(bucket) AS all_buckets, bucket,
  sum(weight)::int AS n, 0 AS people, sum(value)::float8 AS sum, coalesce(sum(nums), 0)::int AS nums
FROM labelled
GROUP BY GROUPING SETS ((series, grp, bucket), (series, grp), (series, bucket), (series))`;
}

/**
 * The rows of a trend broken down by a trait: series with a key from the trait rollup (one statement), the
 * rest from `scan` (trendsQuery over those series), renumbered back; `keep` is per series of the trend.
 *
 * @example
 * const rows = await trendRowsWithTraits(reader, { keys, series, trait, range, starts, now }, (rest, keep) => trendsQuery({ ...q, series: rest, keep }), signal);
 */
export async function trendRowsWithTraits(
  reader: PinnedReader,
  q: TraitRead<TraitKey | null>,
  scan: (rest: TrendSeries[], keep?: (string | null)[][]) => Fragment,
  signal: AbortSignal,
): Promise<TrendRow[]> {
  const rolled = q.series.flatMap((_, i) => (q.keys[i] ? [i] : []));
  const rest = q.series.flatMap((_, i) => (q.keys[i] ? [] : [i]));
  const pick = (ix: number[]) => (q.keep ? ix.map((i) => [...q.keep![i]!]) : undefined);
  const reads: Promise<TrendRow[]>[] = [];
  if (rolled.length)
    reads.push(
      reader
        .rows<TrendRow>(
          traitRollupQuery({
            ...q,
            series: rolled.map((i) => q.series[i]!),
            keys: rolled.map((i) => q.keys[i]!),
            keep: pick(rolled),
          }),
          signal,
        )
        .then((rows) => rows.map((r) => ({ ...r, series: rolled[r.series]! }))),
    );
  if (rest.length)
    reads.push(
      reader
        .rows<TrendRow>(
          scan(
            rest.map((i) => q.series[i]!),
            pick(rest),
          ),
          signal,
        )
        .then((rows) => rows.map((r) => ({ ...r, series: rest[r.series]! }))),
    );
  return (await Promise.all(reads)).flat();
}
