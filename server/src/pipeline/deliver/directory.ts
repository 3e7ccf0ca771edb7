import type { PluginDefinition } from '@cairn/plugin-api';
import { createDirectory } from '../../infra/directory.ts';
import { type PeriodicTask, startPeriodic } from '../../infra/periodic.ts';
import { type DeliverJob, destinationQueue, destinationQueueName, ensureQueue } from '../../jobs/queues.ts';
import { sweepWaiting } from './order.ts';
import { type Destination, destinationsFingerprint, listDestinations } from './queries/destinations.ts';
import { deliverJobs, type SenderDeps } from './sender.ts';

import type { ActiveDestination } from './types.ts';

export type { ActiveDestination } from './types.ts';

/** The destinations of this database, kept current, with one pg-boss worker per enabled one. */
export interface DestinationDirectory {
  /** Enabled destinations whose plugin is installed and whose settings parse. */
  active(): readonly ActiveDestination[];
  /** Re-reads now (after a change made through this server). */
  refresh(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Keeps the destination list in memory (re-read when the table's fingerprint changes, every
 * `refreshMs`, so destinations created on another server are picked up) and runs a worker per enabled
 * destination when `work` is set (a `CAIRN_ROLE=ingest` server only fans out nothing and sends
 * nothing). Workers also run the sweep of waiting deliveries (order.ts) at start and every
 * `delivery.sweepSeconds`.
 *
 * @example
 * const destinations = createDestinationDirectory({ ...senderDeps, work: true, refreshMs: 2000 });
 * await destinations.start();
 */
export function createDestinationDirectory(
  deps: SenderDeps & { work: boolean; refreshMs: number },
): DestinationDirectory {
  const { sql, boss, log } = deps;
  // Worker per destination, keyed by what requires restarting it when changed.
  const running = new Map<string, string>();
  let sweeper: PeriodicTask | undefined;
  const directory = createDirectory<ActiveDestination>({
    name: 'destinations',
    load: loadActive,
    keys: (a) => [a.destination.id],
    fingerprint: () => destinationsFingerprint(sql),
    // Workers start and stop with the rows they serve, inside the load (loads never overlap).
    onChange: (list) => (deps.work ? syncWorkers(list) : Promise.resolve()),
    refreshMs: deps.refreshMs,
    log,
  });

  async function loadActive(): Promise<ActiveDestination[]> {
    const next: ActiveDestination[] = [];
    for (const destination of await listDestinations(sql)) {
      const plugin = deps.plugins.get(destination.plugin);
      if (!destination.enabled || !plugin) continue;
      const parsed = plugin.settings.safeParse(destination.settings);
      if (!parsed.success) {
        log.error(`destination ${destination.id}: settings no longer valid for plugin ${plugin.name}; not sending`);
        continue;
      }
      next.push({ destination, plugin, settings: parsed.data });
    }
    return next;
  }

  async function syncWorkers(list: readonly ActiveDestination[]): Promise<void> {
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
        // Read the current entry on every fetch: settings changed on any server apply at once.
        async (jobs) => {
          const current = directory.get(id);
          if (!current) throw new Error(`destination ${id} is no longer active`);
          await deliverJobs(deps, current.destination, current.plugin, current.settings, jobs);
        },
      );
      running.set(id, workerKey(a));
    }
  }

  // Each destination's own errors are logged, not thrown: one broken destination does not stop the sweep.
  async function sweep(): Promise<void> {
    for (const a of directory.all()) {
      try {
        const promoted = await sweepWaiting(boss, sql, a);
        if (promoted) log.info(`destination ${a.destination.id}: the sweep promoted ${promoted} waiting deliveries`);
      } catch (err) {
        log.error(`destination ${a.destination.id}: sweep`, err);
      }
    }
  }

  return {
    active: () => directory.all(),
    // Failures are logged, never thrown at the caller; the next refresh loads again.
    refresh: () => directory.reload({ fresh: true }).catch((err) => log.error('destinations', err)),
    async start() {
      // The refresh keeps running when the first load fails: the destinations come once it succeeds.
      await directory.start().catch((err) => log.error('destinations', err));
      if (deps.work) {
        // With a lease: every server would repeat the same scan of every destination's waiting rows, and
        // two sweeps of one destination only contend for its (destination, profile) order locks, the
        // loser finding nothing left to promote. One server of many sweeps each period.
        sweeper = startPeriodic({
          name: 'deliver.sweep',
          everyMs: deps.delivery.sweepSeconds * 1000,
          run: sweep,
          log,
          lease: { sql },
        });
        // At once: rows an upgrade or a crash left waiting go without waiting for the first tick.
        void sweeper.runNow();
      }
    },
    async stop() {
      await Promise.all([directory.stop(), sweeper?.stop()]);
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
