import { PermanentError } from '@cairn/plugin-api';
import { QUEUES } from '../../jobs/queues.ts';
import type { Inbox } from '../topics.ts';
import type { DestinationDirectory } from './directory.ts';
import { pluginContext, type SenderDeps } from './sender.ts';

/**
 * Consumes `profile.erased` (the `forget` queue): every active destination that received the person's events and whose
 * plugin can `forget` is told who was erased (destinations that never had the data are not told). A destination that fails transiently makes the job retry (the others are told again with
 * the same erasureId, which they can dedupe on); a permanent failure is logged and not retried.
 *
 * @example
 * await startForgetWorker(deps, destinations);
 */
export async function startForgetWorker(deps: SenderDeps, destinations: DestinationDirectory): Promise<void> {
  await deps.boss.work<Inbox<'forget'>>(
    QUEUES.forget.name,
    { batchSize: 1, pollingIntervalSeconds: 2, notifyPollingIntervalSeconds: 10 },
    async function forgetErased([job]) {
      if (!job) return;
      const failures: string[] = [];
      const told = new Set(job.data.destinationIds ?? []);
      for (const a of destinations.active()) {
        if (!a.plugin.forget || !told.has(a.destination.id)) continue;
        try {
          await a.plugin.forget(
            {
              erasureId: job.data.erasureId,
              profileIds: job.data.profileIds,
              identities: job.data.identities.map((i) => ({
                type: i.type,
                value: String(deps.pii.openValue(i.value)),
              })),
            },
            pluginContext(deps, a.destination, a.settings),
          );
        } catch (err) {
          const message = `destination ${a.destination.id}: ${(err as Error)?.message ?? err}`;
          if (err instanceof PermanentError) deps.log.error(`erasure ${job.data.erasureId} not forwarded`, message);
          else failures.push(message);
        }
      }
      if (failures.length) throw new Error(`erasure ${job.data.erasureId} not yet forwarded: ${failures.join('; ')}`);
    },
  );
}
