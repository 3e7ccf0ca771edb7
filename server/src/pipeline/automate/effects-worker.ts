import { createPluginFetch } from '@cairn/plugin-api';
import { QUEUES } from '../../jobs/queues.ts';
import type { Runtime } from '../../runtime.ts';
import { getDestination } from '../deliver/index.ts';
import { pluginContext } from '../deliver/sender.ts';
import { senderDeps } from '../deliver/stage.ts';
import type { RequestedEffect } from '../topics.ts';
import { type EffectDeps, feedResult, handleEffects } from './effects.ts';
import type { RunnerDeps } from './runner.ts';

/** How long a webhook call may take (connecting, sending, reading the answer). */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * The effect deps of a server: its plugins, destinations as stored now, stage 5's plugin context (its
 * log, kv and unsubscribe links) and the plugins' HTTP client, aborted at shutdown.
 *
 * @example
 * const deps = effectDeps(runtime, runnerDeps);
 */
export function effectDeps(rt: Runtime, runner: RunnerDeps): EffectDeps {
  const sender = senderDeps(rt);
  return {
    runner,
    pii: rt.pii,
    plugins: rt.plugins,
    destination: (id) => getDestination(rt.sql, id),
    contextOf: (destination, settings) => pluginContext(sender, destination, settings),
    fetch: createPluginFetch(rt.stopping, WEBHOOK_TIMEOUT_MS),
    timeoutMs: WEBHOOK_TIMEOUT_MS,
  };
}

/**
 * Consumes the `effects` queue: webhooks and plugin actions flows' runs await, performed and fed back
 * (effects.ts). Calls of one batch go out at once; each job is settled on its own.
 *
 * @example
 * await startEffectsWorker(runtime, runnerDeps);
 */
export async function startEffectsWorker(rt: Runtime, runner: RunnerDeps): Promise<void> {
  const deps = effectDeps(rt, runner);
  const options = {
    batchSize: 10,
    pollingIntervalSeconds: 0.5,
    // Retries coming due are not notified: poll for them well before pg-boss's 30 s default.
    notifyPollingIntervalSeconds: 1,
    localConcurrency: rt.dbKind === 'embedded' ? 1 : 4,
    includeMetadata: true,
    perJobResults: true,
  } as const;
  await rt.boss.work<RequestedEffect, unknown, typeof options>(
    QUEUES.effects.name,
    options,
    function performEffects(jobs) {
      return handleEffects(deps, jobs);
    },
  );
  // A call whose last attempt never finished: its run takes `failed` (when it still awaits that call).
  await rt.boss.work<RequestedEffect>(
    QUEUES.effects_dead.name,
    { batchSize: 10, pollingIntervalSeconds: 2, notifyPollingIntervalSeconds: 2 },
    async function failUnfinishedEffects(jobs) {
      for (const job of jobs)
        await feedResult(runner, job.data, {
          ok: false,
          error: `its last attempt did not finish (the worker stopped during it; ${job.data.key} not tried again)`,
        });
    },
  );
}
