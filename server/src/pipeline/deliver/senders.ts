import type { PluginDefinition } from '@cairn/plugin-api';
import { type DeliverJob, destinationQueue, destinationQueueName, ensureQueue } from '../../jobs/queues.ts';
import { deliverJobs, type SenderDeps } from './sender.ts';
import type { ActiveDestination } from './types.ts';

/** One pg-boss worker per enabled destination, on its own queue, kept in step with the destination list. */
export interface Senders {
  /** Starts workers for new destinations, restarts those whose registration changed, stops the others. */
  sync(list: readonly ActiveDestination[]): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Creates the senders of one server. Each fetch reads the destination's current entry through
 * `current`, so settings changed on any server apply at once.
 *
 * @example
 * const senders = createSenders(senderDeps, (id) => destinations.get(id));
 * await senders.sync(destinations.active());
 */
export function createSenders(deps: SenderDeps, current: (id: string) => ActiveDestination | undefined): Senders {
  const { boss } = deps;
  // Worker per destination, keyed by what requires restarting it when changed.
  const running = new Map<string, string>();
  return {
    async sync(list) {
      const wanted = new Map(list.map((a) => [a.destination.id, a]));
      for (const [id, key] of running) {
        const a = wanted.get(id);
        if (!a || workerKey(a) !== key) {
          await boss.offWork(destinationQueueName(id));
          running.delete(id);
        }
      }
      for (const [id, a] of wanted) {
        if (running.has(id)) continue;
        const queue = destinationQueue(id, {
          retryDelay: deps.delivery.retryDelaySeconds,
          retryDelayMax: deps.delivery.retryMaxSeconds,
        });
        await ensureQueue(boss, queue);
        await boss.work<DeliverJob>(
          queue.name,
          {
            batchSize: fetchSize(a.plugin),
            localConcurrency: a.destination.concurrency,
            pollingIntervalSeconds: 0.5,
            // NOTIFY wakes workers for new jobs, not for retries coming due: without this backstop
            // poll (pg-boss defaults it to 30 s) a retry waits up to 30 s past its backoff.
            notifyPollingIntervalSeconds: 1,
            burstWhenBatchFull: true,
          },
          async (jobs) => {
            const now = current(id);
            if (!now) throw new Error(`destination ${id} is no longer active`);
            await deliverJobs(deps, now.destination, now.plugin, now.settings, jobs);
          },
        );
        running.set(id, workerKey(a));
      }
    },
    async stop() {
      for (const id of running.keys()) await boss.offWork(destinationQueueName(id)).catch(() => {});
      running.clear();
    },
  };
}

/**
 * Jobs per fetch. An ordered plugin's job holds up to a plugin batch of rows (whole profiles, see
 * enqueue.ts): a tenth of the batch size in jobs keeps one call near ten plugin batches at most (a
 * batch size's worth of jobs could be batchSize² rows, sent one batch after another by one worker
 * while the others idle). Unordered plugins keep their batch size in jobs.
 */
function fetchSize(plugin: Readonly<PluginDefinition>): number {
  const size = plugin.batchSize ?? 1;
  return plugin.ordering === 'profile' ? Math.max(1, Math.ceil(size / 10)) : size;
}

// Only what the worker's registration depends on; settings are read per fetch.
function workerKey(a: ActiveDestination): string {
  return `${a.destination.concurrency}:${a.plugin.batchSize}:${a.plugin.ordering}`;
}
