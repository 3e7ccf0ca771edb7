import type { Runtime, Stage } from '../../runtime.ts';
import { type AnalyticsReader, createAnalyticsReader } from './reader.ts';
import { createReports, type Reports } from './reports.ts';
import { startRollupWorker } from './rollup.ts';

/** Stage 6, measure: the analytics reader the query routes use, and on workers the rollup's `measure` jobs. */
export interface MeasureStage extends Stage {
  readonly reader: AnalyticsReader;
  /** Scheduled reports: the due check runs on workers; `sendNow` previews one. */
  readonly reports: Reports;
}

/**
 * Creates stage 6. Its reader connects on first use (CAIRN_ANALYTICS_DATABASE_URL, else the main
 * database), so a server that never answers an analytics query opens no connection for it.
 *
 * @example
 * const measure = createMeasureStage(rt);
 * await measure.reader.rows(query, signal);
 */
export function createMeasureStage(rt: Runtime): MeasureStage {
  const reader = createAnalyticsReader({
    sql: rt.sql,
    dbKind: rt.dbKind,
    databaseUrl: rt.config.databaseUrl,
    replicaUrl: rt.config.analytics.databaseUrl,
    timeoutMs: rt.config.analytics.timeoutMs,
  });
  const reports = createReports(rt, reader);
  return {
    reader,
    reports,
    async start() {
      // Workers keep the hourly rollup; an ingest-only server only answers queries.
      if (rt.config.role !== 'ingest') await startRollupWorker({ sql: rt.sql, boss: rt.boss });
      // Scheduled reports: each period is claimed by a row before it is sent, so every worker may check.
      if (rt.config.role !== 'ingest') await reports.start();
    },
    async stop() {
      await reports.stop();
      await reader.close();
    },
  };
}
