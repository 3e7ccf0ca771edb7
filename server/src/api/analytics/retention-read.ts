import {
  compileEventFilter,
  type EventFilter,
  type Fragment,
  RETENTION_PASS_MAX_BUCKETS,
  type RetentionPassRow,
  type RetentionQuery,
  type RetentionRow,
  retentionBounds,
  retentionPassSql,
  retentionRowsOfPass,
  retentionSql,
  ruleSql as sql,
} from '@cairn/core';
import { DateTime } from 'luxon';
import type { PinnedReader } from '../../pipeline/measure/index.ts';
import { PERIOD_REGISTRY, type PeriodKey } from './trends-period.ts';

/**
 * How a retention table is read: `pass` (one ordered pass per person over the (profile, timestamp)
 * index, people with the same bucket masks counted together; tables of at most 63 buckets) or `join`
 * (per-bucket folds joined to the cohorts, any size). Measured on bench:analytics (docs/benchmarks.md,
 * "Analytics", "Funnels and retention at 10M events"): `pass` is the faster; `join` serves longer tables.
 */
export type RetentionRead = 'pass' | 'join';

/** Where a retention table's cohorts were read: the first times (migration 0041) or a scan of events. */
export type CohortSource = 'first_times' | 'events';

// A start filter as a condition on analytics_first_times rows: no type and no name is the person's row of
// any event (type and name ''); a type or a name never matches that row ('' is neither).
function firstTimeKeys(start: EventFilter, alias: 'f' | 'g'): Fragment {
  if (start.type === undefined && start.event === undefined)
    return alias === 'f' ? sql`(f.type = '' AND f.event = '')` : sql`(g.type = '' AND g.event = '')`;
  return compileEventFilter({ type: start.type, event: start.event }, { now: new Date(0), alias });
}

/**
 * The people whose first start event ever falls in the range, from analytics_first_times (kept by the
 * pipeline as events attach, and across merges, undo and erasure: pipeline/measure/rollup-first-times.ts), or undefined
 * when the table cannot answer: recurring mode, or a start filter with `where` conditions on properties
 * (the table has no payloads). A candidate's first time in the range is a range of the (event, first_at)
 * index; a probe of its primary key leaves out people with a matching first time before the range.
 *
 * @example
 * const cohort = firstTimesCohort(query); // sql`SELECT f.profile_id, min(f.first_at) AS first_at ...`
 */
export function firstTimesCohort(q: RetentionQuery): Fragment | undefined {
  if (q.mode !== 'first_time' || q.start.where?.length) return undefined;
  const { from, to } = q.range;
  return sql`
    SELECT f.profile_id, min(f.first_at) AS first_at FROM analytics_first_times f
    WHERE ${firstTimeKeys(q.start, 'f')} AND f.first_at >= ${from}::timestamptz AND f.first_at < ${to}::timestamptz
      AND NOT EXISTS (
        SELECT 1 FROM analytics_first_times g
        WHERE g.profile_id = f.profile_id AND ${firstTimeKeys(q.start, 'g')} AND g.first_at < ${from}::timestamptz
      )
    GROUP BY f.profile_id`;
}

/**
 * Where {@link readRetention} reads a query's cohorts.
 *
 * @example
 * retentionCohortSource({ ...query, mode: 'recurring' }); // 'events'
 */
export function retentionCohortSource(q: RetentionQuery): CohortSource {
  return firstTimesCohort(q) ? 'first_times' : 'events';
}

/** Where a retention table's returns were read: the per-day people rollup (migration 0042) or events. */
export type ReturnSource = 'period_people' | 'events';

/**
 * The key of the per-day people rollup (migration 0042) a retention table reads its returns from, or
 * null: first-time cohorts read from analytics_first_times, a return of any event or of one named event
 * (no type, no conditions) kept in the range's zone, and every cohort and period starting at a local
 * midnight (a day, a week or a month is then whole local days). Recurring tables, and tables of more than
 * {@link RETENTION_PASS_MAX_BUCKETS} buckets, read events.
 *
 * @example
 * periodReturnKey({ ...query, mode: 'first_time', start: {}, return: {} }, [{ kind: 'zone', value: 'UTC' }]);
 * // { zone: 'UTC', event: '' } when query.range.timezone is 'UTC'
 */
export function periodReturnKey(
  q: RetentionQuery,
  registry: readonly { kind: string; value: string }[],
): PeriodKey | null {
  if (!firstTimesCohort(q)) return null;
  const r = q.return;
  if (r.where?.length || r.type !== undefined) return null;
  const names = r.event === undefined ? [] : [r.event].flat();
  if (names.length > 1) return null;
  const zone = q.range.timezone;
  const event = names[0] ?? '';
  const kept = (kind: string, value: string) => registry.some((x) => x.kind === kind && x.value === value);
  if (!kept('zone', zone) || (event !== '' && !kept('event', event))) return null;
  const bounds = retentionBounds(q);
  if (bounds.length - 1 > RETENTION_PASS_MAX_BUCKETS) return null;
  // A bucket boundary that is not the first instant of its local day (a zone whose midnight is skipped) would cut a day.
  const midnights = bounds.every((b) => +DateTime.fromISO(b, { zone }).startOf('day') === Date.parse(b));
  return midnights ? { zone, event } : null;
}

/**
 * First-time retention with the returns read from the per-day people rollup instead of events: the
 * statement of {@link retentionPassSql}'s rows (one per group of people with the same buckets). A person's
 * present local days after the day of their first time give the periods they came back in (a day of a
 * later bucket is a return in that period; a later day of their first bucket, a return in period 0). Only
 * when no later day of the first bucket has them, period 0 reads their events of the first time's own day
 * (from the first time to the next local midnight): a return there counts after the entering event, the
 * least (timestamp, id) start event at the first time, exactly as the events path decides it.
 *
 * @example
 * const rows = await reader.rows<RetentionPassRow>(periodReturnsPassSql(query, key, firstTimesCohort(query)!, now));
 */
export function periodReturnsPassSql(q: RetentionQuery, key: PeriodKey, firstTimes: Fragment, now: Date): Fragment {
  const bounds = retentionBounds(q);
  const days = bounds.map((b) => DateTime.fromISO(b, { zone: key.zone }).toISODate()!);
  const start = compileEventFilter(q.start, { now, alias: 'e' });
  const back = compileEventFilter(q.return, { now, alias: 'e' });
  const zone = key.zone;
  return sql`
WITH cohort AS (${firstTimes}),
entered AS (
  SELECT c.profile_id, c.first_at, width_bucket(c.first_at, ${bounds}::timestamptz[]) - 1 AS fb,
    (c.first_at AT TIME ZONE ${zone}::text)::date AS fday
  FROM cohort c
),
people AS (
  SELECT n.profile_id, n.first_at, n.fb, n.fday,
    (SELECT bit_or(1::int8 << (width_bucket(p.day, ${days}::date[]) - 1))
     FROM analytics_period_people p
     WHERE p.profile_id = n.profile_id AND p.zone = ${zone}::text AND p.event = ${key.event}::text
       AND p.day > n.fday AND p.day < ${days[days.length - 1]!}::date) AS back
  FROM entered n
),
marked AS (
  SELECT fb AS first, back,
    CASE
      WHEN coalesce((back >> fb) & 1, 0) = 1 THEN 1::int8 << fb
      WHEN (
        SELECT bool_or(r AND timestamp > m.first_at)
          OR max(id) FILTER (WHERE r AND timestamp = m.first_at) > min(id) FILTER (WHERE s AND timestamp = m.first_at)
        FROM (
          SELECT e.timestamp, e.id, coalesce(${start}, false) AS s, coalesce(${back}, false) AS r
          FROM events e
          WHERE e.profile_id = m.profile_id AND e.timestamp >= m.first_at
            AND e.timestamp < ((m.fday + 1)::timestamp AT TIME ZONE ${zone}::text)
            AND (${start} OR ${back})
        ) d
      ) THEN 1::int8 << fb
    END AS after
  FROM people m
)
SELECT first, NULL::text AS entered, back::text AS back, after::text AS after, count(*)::int AS n
FROM marked
GROUP BY 1, 2, 3, 4`;
}

/**
 * The rows of a retention table ({@link retentionSql}'s shape) with its returns read from events, the
 * fastest way the table allows.
 *
 * @example
 * const rows = await readRetention(reader, query, now, signal);
 * const table = retentionTable(query, rows, now);
 */
export async function readRetention(
  reader: PinnedReader,
  query: RetentionQuery,
  now: Date,
  signal?: AbortSignal,
  how: RetentionRead = retentionBounds(query).length - 1 <= RETENTION_PASS_MAX_BUCKETS ? 'pass' : 'join',
): Promise<RetentionRow[]> {
  const options = { now, firstTimes: firstTimesCohort(query) };
  if (how === 'join') return reader.rows<RetentionRow>(retentionSql(query, options), signal);
  const rows = await reader.rows<RetentionPassRow>(retentionPassSql(query, options), signal);
  return retentionRowsOfPass(query, rows);
}

/** A retention table's rows and where its cohorts and returns were read. */
export interface RetentionAnswer {
  rows: RetentionRow[];
  sources: [CohortSource, ReturnSource];
}

/**
 * The rows of a retention table and where they were read: returns from the per-day people rollup when
 * {@link periodReturnKey} finds a key (the registry is read through `reader`), else {@link readRetention}.
 * `returns: 'events'` reads events even where the rollup could answer (the benchmark's before, and tests
 * comparing the two).
 *
 * @example
 * const { rows, sources } = await answerRetention(reader, query, now, signal);
 * const table = retentionTable(query, rows, now);
 */
export async function answerRetention(
  reader: PinnedReader,
  query: RetentionQuery,
  now: Date,
  signal?: AbortSignal,
  returns: 'auto' | 'events' = 'auto',
): Promise<RetentionAnswer> {
  const firstTimes = firstTimesCohort(query);
  const cohorts: CohortSource = firstTimes ? 'first_times' : 'events';
  if (firstTimes && returns === 'auto') {
    const key = periodReturnKey(query, await reader.rows<{ kind: string; value: string }>(PERIOD_REGISTRY, signal));
    if (key) {
      const rows = await reader.rows<RetentionPassRow>(periodReturnsPassSql(query, key, firstTimes, now), signal);
      return { rows: retentionRowsOfPass(query, rows), sources: [cohorts, 'period_people'] };
    }
  }
  return { rows: await readRetention(reader, query, now, signal), sources: [cohorts, 'events'] };
}
