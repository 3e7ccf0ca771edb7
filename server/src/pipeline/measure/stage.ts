import { type PeriodicTask, startPeriodic } from '../../infra/periodic.ts';
import type { Runtime, Stage } from '../../runtime.ts';
import type { DeliverCommands } from '../deliver/commands.ts';
import { type CheckResult, checkAlerts } from './alerts.ts';
import { type AnalyticsReader, createAnalyticsReader } from './reader.ts';
import { createReports, type Reports } from './reports.ts';
import { startRollupWorker } from './rollup.ts';

/** Stage 6, measure: the analytics reader the query routes use, and on workers the rollup's `measure` jobs. */
export interface MeasureStage extends Stage {
  readonly reader: AnalyticsReader;
  /** Scheduled reports: the due check runs on workers; `sendNow` previews one. */
  readonly reports: Reports;
  /** Checks every enabled alert rule now, at the runtime clock's instant (the schedule does it every minute). */
  checkAlerts(): Promise<CheckResult>;
}

/** How often alert rules are checked (one server of many at a time). */
export const ALERT_CHECK_MS = 60_000;

/**
 * Creates stage 6. Its reader connects on first use (CAIRN_ANALYTICS_DATABASE_URL, else the main
 * database), so a server that never answers an analytics query opens no connection for it.
 *
 * @example
 * const measure = createMeasureStage(rt);
 * await measure.reader.rows(query, signal);
 */
export function createMeasureStage(
  rt: Runtime,
  deps: { deliver?: Pick<DeliverCommands, 'sendNotice'> } = {},
): MeasureStage {
  const reader = createAnalyticsReader({
    sql: rt.sql,
    dbKind: rt.dbKind,
    databaseUrl: rt.config.databaseUrl,
    replicaUrl: rt.config.analytics.databaseUrl,
    timeoutMs: rt.config.analytics.timeoutMs,
    maxLagSeconds: rt.config.analytics.maxLagSeconds,
    metrics: rt.metrics,
    log: rt.log,
  });
  const alertDeps = {
    sql: rt.sql,
    reader,
    log: rt.log,
    send: deps.deliver ? deps.deliver.sendNotice.bind(deps.deliver) : undefined,
  };
  let alerts: PeriodicTask | undefined;
  const reports = createReports(rt, reader);
  return {
    reader,
    reports,
    checkAlerts: () => checkAlerts(alertDeps, rt.clock()),
    async start() {
      // Workers keep the hourly rollup; an ingest-only server only answers queries.
      if (rt.config.role !== 'ingest') await startRollupWorker({ sql: rt.sql, boss: rt.boss });
      // Scheduled reports: each period is claimed by a row before it is sent, so every worker may check.
      if (rt.config.role !== 'ingest') await reports.start();
      // Alert rules: a few system-level checks a minute, one server at a time (the lease); each firing is
      // recorded once whoever checks (alert-queries.ts recordTransition).
      if (rt.config.role !== 'ingest')
        alerts = startPeriodic({
          name: 'measure.alerts',
          everyMs: ALERT_CHECK_MS,
          run: () => checkAlerts(alertDeps, rt.clock()),
          log: rt.log,
          lease: { sql: rt.sql, kind: rt.dbKind },
        });
    },
    async stop() {
      await reports.stop();
      await alerts?.stop();
      await reader.close();
    },
  };
}
