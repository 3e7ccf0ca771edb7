import {
  RETENTION_PASS_MAX_BUCKETS,
  type RetentionPassRow,
  type RetentionQuery,
  type RetentionRow,
  retentionBounds,
  retentionPassSql,
  retentionRowsOfPass,
  retentionSql,
} from '@cairn/core';
import type { PinnedReader } from '../../pipeline/measure/index.ts';

/**
 * How a retention table is read: `pass` (one ordered pass per person over the (profile, timestamp)
 * index, people with the same bucket masks counted together; tables of at most 63 buckets) or `join`
 * (per-bucket folds joined to the cohorts, any size). Measured on bench:analytics (docs/benchmarks.md,
 * "Analytics", "Funnels and retention at 10M events"): `pass` is the faster; `join` serves longer tables.
 */
export type RetentionRead = 'pass' | 'join';

/**
 * The rows of a retention table ({@link retentionSql}'s shape), read the fastest way the table allows.
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
  if (how === 'join') return reader.rows<RetentionRow>(retentionSql(query, { now }), signal);
  const rows = await reader.rows<RetentionPassRow>(retentionPassSql(query, { now }), signal);
  return retentionRowsOfPass(query, rows);
}
