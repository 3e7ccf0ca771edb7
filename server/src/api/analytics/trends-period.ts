import {
  bucketOf,
  compileEventFilter,
  type Fragment,
  ruleSql as sql,
  type TimeInterval,
  type TimeRange,
  type TrendBreakdown,
  type TrendRow,
  type TrendSeries,
} from '@cairn/core';
import { DateTime } from 'luxon';
import type { PinnedReader } from '../../pipeline/measure/reader.ts';

// Trend series answered from the per-day people rollup (migration 0042): distinct people of any event
// or of one kept event, by day, week or month in a kept zone, over a range starting at a local midnight.
// Each bucket's people are the days' people whose previous present day is before the bucket (first day
// of the person in it); a partial last day is read from events with each person's latest earlier day.

/** A kept (zone, event) key that serves a series ('' = any event). */
export interface PeriodKey {
  zone: string;
  event: string;
}

/** The registry as the read connection sees it. */
export const PERIOD_REGISTRY = sql`SELECT kind, value FROM analytics_rollup_people`;

/**
 * The key a series reads from the per-day people rollup, or null: people of any event or of one named
 * event (no type, no conditions, no breakdown), by day, week or month, in a kept zone, from a local midnight.
 *
 * @example
 * periodKeyOf({ events: {}, measure: 'people' }, { interval: 'day', range, registry }); // { zone: 'UTC', event: '' }
 */
export function periodKeyOf(
  s: TrendSeries,
  q: {
    interval: TimeInterval;
    range: TimeRange;
    breakdown?: TrendBreakdown;
    registry: readonly { kind: string; value: string }[];
  },
): PeriodKey | null {
  if (s.measure !== 'people' || q.breakdown || q.interval === 'hour') return null;
  if (s.events.where?.length || s.events.type !== undefined) return null;
  const names = s.events.event === undefined ? [] : [s.events.event].flat();
  if (names.length > 1) return null;
  const zone = q.range.timezone ?? 'UTC';
  const event = names[0] ?? '';
  const kept = (kind: string, value: string) => q.registry.some((r) => r.kind === kind && r.value === value);
  if (!kept('zone', zone) || (event !== '' && !kept('event', event))) return null;
  // Whole local days from the range's start (its first bucket may start before it: a week, a month).
  if (Date.parse(bucketOf(q.range.from, 'day', zone)) !== Date.parse(q.range.from)) return null;
  return { zone, event };
}

/**
 * The rows (as trendsQuery's, series `i`) of one series from the per-day people rollup.
 *
 * @example
 * const rows = await reader.rows<TrendRow>(periodPeopleQuery(0, key, s, range, starts, now));
 */
export function periodPeopleQuery(
  i: number,
  key: PeriodKey,
  s: TrendSeries,
  range: TimeRange,
  starts: readonly string[],
  now: Date,
): Fragment {
  const local = (iso: string) => DateTime.fromISO(iso, { zone: key.zone });
  const fromDay = local(range.from).toISODate()!;
  const endDay = local(range.to).toISODate()!;
  // Each bucket's first day in the range (the first bucket may start before the range).
  const days = starts.map((t) => local(t).toISODate()!).map((d, j) => (j === 0 && d < fromDay ? fromDay : d));
  const tailFrom = bucketOf(range.to, 'day', key.zone);
  const tail =
    Date.parse(tailFrom) < Date.parse(range.to)
      ? sql`
  UNION ALL
  -- The partial last day from events: its people, each with their latest day before it.
  SELECT ${endDay}::date, l.prev, count(*)
  FROM (
    SELECT DISTINCT e.profile_id
    FROM events e
    WHERE e.profile_id IS NOT NULL
      AND e.timestamp >= ${tailFrom}::timestamptz
      AND e.timestamp < ${range.to}::timestamptz
      AND ${compileEventFilter(s.events, { now, alias: 'e' })}
  ) t
  CROSS JOIN LATERAL (
    SELECT max(p.day) AS prev
    FROM analytics_period_people p
    WHERE p.profile_id = t.profile_id AND p.zone = ${key.zone} AND p.event = ${key.event} AND p.day < ${endDay}::date
  ) l
  GROUP BY l.prev`
      : sql``;
  // Each day is placed once (width_bucket over the days, not over every cell), then joined by equality.
  return sql`
WITH cells AS (
  SELECT day, prev, sum(n)::int AS n
  FROM analytics_period_counts
  WHERE zone = ${key.zone} AND event = ${key.event} AND day >= ${fromDay}::date AND day < ${endDay}::date
  GROUP BY day, prev${tail}
),
buckets AS (
  SELECT i::int AS b, first FROM unnest(${days}::date[]) WITH ORDINALITY AS u(first, i)
),
placed AS (
  SELECT d.day, width_bucket(d.day, ${days}::date[]) AS b FROM (SELECT DISTINCT day FROM cells) d
)
SELECT ${i}::int AS series, NULL::text AS grp, 1 AS all_groups, 0 AS all_buckets, k.b - 1 AS bucket, 0 AS n,
  coalesce(sum(c.n) FILTER (WHERE c.prev IS NULL OR c.prev < k.first), 0)::int AS people,
  NULL::float8 AS sum, 0 AS nums
FROM cells c
JOIN placed p ON p.day = c.day
JOIN buckets k ON k.b = p.b
GROUP BY k.b
UNION ALL
SELECT ${i}::int, NULL::text, 1, 1, NULL::int, 0,
  coalesce(sum(n) FILTER (WHERE prev IS NULL OR prev < ${fromDay}::date), 0)::int, NULL::float8, 0
FROM cells`;
}

/**
 * The rows of a trend: series with a period key from the per-day people rollup, the rest from `scan`
 * (trendsQuery over those series, renumbered back).
 *
 * @example
 * const rows = await trendRowsWithPeriods(reader, { keys, series, range, starts, now }, (rest) => trendsQuery({ ...q, series: rest }), signal);
 */
export async function trendRowsWithPeriods(
  reader: PinnedReader,
  q: {
    keys: readonly (PeriodKey | null)[];
    series: readonly TrendSeries[];
    range: TimeRange;
    starts: readonly string[];
    now: Date;
  },
  scan: (rest: TrendSeries[]) => Fragment,
  signal: AbortSignal,
): Promise<TrendRow[]> {
  const rest = q.series.flatMap((_, i) => (q.keys[i] ? [] : [i]));
  const reads: Promise<TrendRow[]>[] = q.series.flatMap((s, i) => {
    const key = q.keys[i];
    return key ? [reader.rows<TrendRow>(periodPeopleQuery(i, key, s, q.range, q.starts, q.now), signal)] : [];
  });
  if (rest.length)
    reads.push(
      reader
        .rows<TrendRow>(scan(rest.map((i) => q.series[i]!)), signal)
        .then((rows) => rows.map((r) => ({ ...r, series: rest[r.series]! }))),
    );
  return (await Promise.all(reads)).flat();
}
