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
import type { PinnedReader } from '../../pipeline/measure/index.ts';
import { analyticsSlices, balancedSlices, readSliced } from './slices.ts';

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
 * (the table has no payloads). A person's least matching row, by (first_at, type, event), is their first
 * time: the cohort is the matching rows in the range (a range of the (event, first_at) index) with no
 * lesser matching row of the same person — one row each, no grouping. A start filter of any event reads the
 * person's one row of any event (type and event ''), which has no other matching row to be less than it.
 *
 * @example
 * const cohort = firstTimesCohort(query); // sql`SELECT f.profile_id, f.first_at FROM analytics_first_times f ...`
 */
export function firstTimesCohort(q: RetentionQuery): Fragment | undefined {
  if (q.mode !== 'first_time' || q.start.where?.length) return undefined;
  const { from, to } = q.range;
  const anyEvent = q.start.type === undefined && q.start.event === undefined;
  const first = anyEvent
    ? sql``
    : sql`
      AND NOT EXISTS (
        SELECT 1 FROM analytics_first_times g
        WHERE g.profile_id = f.profile_id AND ${firstTimeKeys(q.start, 'g')}
          AND (g.first_at, g.type, g.event) < (f.first_at, f.type, f.event)
      )`;
  return sql`
    SELECT f.profile_id, f.first_at FROM analytics_first_times f
    WHERE ${firstTimeKeys(q.start, 'f')} AND f.first_at >= ${from}::timestamptz AND f.first_at < ${to}::timestamptz${first}`;
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

/**
 * The rows of a retention table ({@link retentionSql}'s shape), read the fastest way the table allows. The
 * one pass runs in `slices` slices of the people at once ({@link readSliced}: one connection each, one
 * cancel for all); each person is in one slice, so the slices' rows together are the table's.
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
  slices: number = analyticsSlices(),
): Promise<RetentionRow[]> {
  const options = { now, firstTimes: firstTimesCohort(query) };
  if (how === 'join') return reader.rows<RetentionRow>(retentionSql(query, options), signal);
  const rows = await readSliced(
    await balancedSlices(reader, slices, signal),
    (people, sliceSignal) =>
      reader.rows<RetentionPassRow>(retentionPassSql(query, { ...options, people }), sliceSignal),
    signal,
  );
  return retentionRowsOfPass(query, rows);
}
