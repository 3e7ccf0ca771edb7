import type { TraitOptions } from '@cairn/core';
import type { Queue } from 'pg-boss';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import type { Logger } from '../log.ts';
import { forgetPeriodPeopleBeforeHorizon } from '../pipeline/measure/rollup-period-people.ts';
import { forgetTraitCellsBeforeHorizon } from '../pipeline/measure/rollup-traits.ts';
import type { Runtime, Stage } from '../runtime.ts';
import { ensureQueue } from './queues.ts';
import { type BaselineContext, recordBaselines } from './retention-baseline.ts';
import {
  cutoffOf,
  deleteFinishedDeliveries,
  deleteFinishedRuns,
  dropEventPartition,
  ensureEventPartitions,
  eventPartitions,
} from './retention-queries.ts';

/**
 * The maintenance queue: one job at a time, from the hourly schedule and once at start. Several worker
 * processes may run it; every step is idempotent (a partition created or dropped once, deletes by
 * condition), and a singleton key keeps two runs from overlapping.
 */
export const RETENTION_QUEUE = {
  name: 'retention',
  policy: 'singleton',
  retryLimit: 5,
  retryDelay: 60,
  retryBackoff: true,
  expireInSeconds: 3600,
} as const satisfies Queue;

/** Minute 17 of every hour (UTC): partitions ahead, then whatever has expired. */
export const RETENTION_CRON = '17 * * * *';

/** Months of event partitions kept created ahead of the current one. */
export const MONTHS_AHEAD = 2;

/** What one maintenance run did. */
export interface RetentionReport {
  created: string[];
  dropped: string[];
  keysReleased: number;
  /** Identities whose fold baseline was carried forward over the dropped partitions. */
  baselines: number;
  deliveriesDeleted: number;
  runsDeleted: number;
}

/**
 * One maintenance run at `now`: creates the partitions of this month and the next two, drops every event
 * partition wholly older than the event retention (its newest possible row received before the cutoff)
 * after recording the fold baselines of the identities with events in it (retention-baseline.ts), and
 * deletes finished ledger rows and flow runs past theirs. Settings null = keep forever.
 *
 * @example
 * await runRetention(sql, config.retention, new Date(), { traits: {}, pii });
 */
export async function runRetention(
  sql: Sql,
  settings: Config['retention'],
  now: Date,
  fold: BaselineContext,
  log?: Logger,
): Promise<RetentionReport> {
  const report: RetentionReport = {
    created: [],
    dropped: [],
    keysReleased: 0,
    baselines: 0,
    deliveriesDeleted: 0,
    runsDeleted: 0,
  };
  report.created = await ensureEventPartitions(sql, now, MONTHS_AHEAD);
  if (settings.eventDays !== null) {
    const cutoff = cutoffOf(now, settings.eventDays);
    for (const p of await eventPartitions(sql)) {
      if (p.upperBound.getTime() > cutoff.getTime()) break;
      report.baselines += (await recordBaselines(sql, p, fold)).identities;
      report.keysReleased += await dropEventPartition(sql, p.name);
      report.dropped.push(p.name);
    }
    // People per local day before the new horizon go with their events (migration 0042).
    if (report.dropped.length) await forgetPeriodPeopleBeforeHorizon(sql);
    // Trait breakdowns' cells and day sums likewise (migration 0044).
    if (report.dropped.length) await forgetTraitCellsBeforeHorizon(sql);
  }
  if (settings.deliveryDays !== null) {
    report.deliveriesDeleted = await deleteFinishedDeliveries(sql, cutoffOf(now, settings.deliveryDays));
  }
  if (settings.flowRunDays !== null) {
    report.runsDeleted = await deleteFinishedRuns(sql, cutoffOf(now, settings.flowRunDays));
  }
  if (report.created.length || report.dropped.length || report.deliveriesDeleted || report.runsDeleted) {
    log?.info(`retention: ${JSON.stringify(report)}`);
  }
  return report;
}

/**
 * The maintenance worker as a stage: schedules the hourly run, runs once at start, and works the queue.
 * `traits`: the fold's options (stage 2's, with the data-quality rules), so baselines fold as it does.
 *
 * @example
 * const stage = createRetentionStage(runtime, identify.traits);
 * await stage.start();
 */
export function createRetentionStage(
  deps: Pick<Runtime, 'sql' | 'boss' | 'config' | 'log' | 'clock' | 'pii'>,
  traits: TraitOptions = { defaultCallingCode: deps.config.identity.defaultCallingCode },
): Stage {
  let workerId: string | undefined;
  return {
    async start() {
      await ensureQueue(deps.boss, RETENTION_QUEUE);
      await deps.boss.schedule(RETENTION_QUEUE.name, RETENTION_CRON, {}, { tz: 'UTC' });
      workerId = await deps.boss.work(
        RETENTION_QUEUE.name,
        { batchSize: 1, pollingIntervalSeconds: 10 },
        async function retentionRun() {
          await runRetention(deps.sql, deps.config.retention, deps.clock(), { traits, pii: deps.pii }, deps.log);
        },
      );
      await deps.boss.send(RETENTION_QUEUE.name, {}, { singletonKey: 'start' });
    },
    async stop() {
      if (workerId) await deps.boss.offWork(RETENTION_QUEUE.name, { id: workerId });
    },
  };
}
