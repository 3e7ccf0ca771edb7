import type { JsonValue } from '@cairn/core';
import { QUEUES } from '../../jobs/queues.ts';
import type { Runtime, Stage } from '../../runtime.ts';
import type { Inbox } from '../topics.ts';
import { createCatalog } from './catalog.ts';
import { expireCoupons, redeemCoupons } from './coupons.ts';
import { startEffectsWorker } from './effects-worker.ts';
import { runExperiments } from './experiment-look.ts';
import { runDueIsolating } from './isolate.ts';
import { type MigrationReport, type MigrationRequest, migrateRuns } from './migrate-runs.ts';
import { replanIdentified, runPlanner } from './planner.ts';
import { plannerNextDue } from './planner-queries.ts';
import { nextDue } from './queries.ts';
import { type ApiEntry, enterByApi, handleEvents, type RunnerDeps } from './runner.ts';
import { startTimer, type Timer } from './timer.ts';

/** Stage 4: flows' runs, moved by events (the `automate` queue) and by time (the timer). */
export interface AutomateStage extends Stage {
  /**
   * Enters a person into a live flow with an `api` trigger and takes the first step (`POST
   * /api/flows/:id/enter`); with `key`, at most once per key. 409 when the flow is not live or not entered
   * through the API, 400 for data fields the trigger does not declare.
   */
  enter(flowId: string, profileId: string, data: Record<string, JsonValue>, key?: string): Promise<ApiEntry>;
  /** Moves waiting runs from one version of a flow to another by a node map, or counts them (`POST /api/flows/:id/migrate`). */
  migrate(request: MigrationRequest): Promise<MigrationReport>;
}

/** The timer's longest sleep: a due run is taken at most this late when nothing wakes it sooner. */
export const SWEEP_MS = 1000;
/** Runs per timer transaction. */
export const DUE_BATCH = 500;

/**
 * Creates stage 4. With `work` (every role but `ingest`) it consumes `automate` (attached events and
 * membership changes: triggers, and runs waiting for an event) and runs the timer of due runs; on every
 * role it enters people through the API.
 *
 * @example
 * const automate = createAutomateStage(runtime, { work: true });
 * await automate.start();
 */
export function createAutomateStage(rt: Runtime, options: { work: boolean }): AutomateStage {
  const deps: RunnerDeps = {
    sql: rt.sql,
    pii: rt.pii,
    clock: rt.clock,
    catalog: createCatalog(),
    handOff: rt.handOff,
    log: rt.log,
    dbKind: rt.dbKind,
    sweepMs: SWEEP_MS,
    metrics: rt.metrics,
  };
  let timer: Timer | undefined;
  return {
    async start() {
      if (!options.work) return;
      await rt.boss.work<Inbox<'automate'>>(
        QUEUES.automate.name,
        {
          batchSize: 20,
          pollingIntervalSeconds: 0.5,
          notifyPollingIntervalSeconds: 2,
          burstWhenBatchFull: true,
          localConcurrency: 2,
        },
        async function automateEvents(jobs) {
          const ids = jobs.flatMap((j) => j.data.ids);
          // Codes the events redeem first: a flow step on the same event then sees the coupon redeemed.
          await redeemCoupons(rt.sql, rt.pii, ids);
          await handleEvents(deps, ids);
          // Identify events may have changed a date trait (or the zone) date_trait flows planned with.
          await replanIdentified(deps, ids);
        },
      );
      // Webhooks and plugin actions runs await (effects.ts).
      await startEffectsWorker(rt, deps);
      timer = await startTimer({
        sql: rt.sql,
        dbKind: rt.dbKind,
        log: rt.log,
        clock: rt.clock,
        everyMs: SWEEP_MS,
        batch: DUE_BATCH,
        pass: async (limit) =>
          Math.max(
            await runDueIsolating(deps, limit),
            await runPlanner(deps, limit),
            await runExperiments(deps),
            await expireCoupons(rt.sql, rt.clock(), limit),
          ),
        nextDue: async () => {
          const due = [await nextDue(rt.sql), await plannerNextDue(rt.sql)].filter((d): d is number => d !== null);
          return due.length ? Math.min(...due) : null;
        },
      });
    },
    async stop() {
      await timer?.stop();
    },
    enter: (flowId, profileId, data, key) => enterByApi(deps, flowId, profileId, data, key),
    migrate: (request) => migrateRuns(deps, request),
  };
}
