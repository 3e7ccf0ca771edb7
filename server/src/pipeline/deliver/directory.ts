import type { PluginDefinition } from '@cairn/plugin-api';
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { type DeliverJob, destinationQueue, destinationQueueName, ensureQueue } from '../../jobs/queues.ts';
import type { Logger } from '../../log.ts';
import { PLUGINS } from './plugins.ts';
import { type Destination, destinationsFingerprint, listDestinations } from './queries.ts';
import { deliverJobs, type SenderDeps } from './sender.ts';

/** A destination ready to receive: its row, its plugin and its parsed settings. */
export interface ActiveDestination {
  destination: Destination;
  plugin: Readonly<PluginDefinition>;
  settings: unknown;
}

/** The destinations of this database, kept current, with one pg-boss worker per enabled one. */
export interface DestinationDirectory {
  /** Enabled destinations whose plugin is installed and whose settings parse. */
  active(): ActiveDestination[];
  /** Re-reads now (after a change made through this server). */
  refresh(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Keeps the destination list in memory (re-read when the table's fingerprint changes, every
 * `refreshMs`, so destinations created on another server are picked up) and runs a worker per enabled
 * destination when `work` is set (a `CAIRN_ROLE=ingest` server only fans out nothing and sends
 * nothing).
 *
 * @example
 * const destinations = createDestinationDirectory({ ...senderDeps, work: true, refreshMs: 2000 });
 * await destinations.start();
 */
export function createDestinationDirectory(
  deps: SenderDeps & { work: boolean; refreshMs: number },
): DestinationDirectory {
  const { sql, boss, log } = deps;
  let list: ActiveDestination[] = [];
  let fingerprint = '';
  let timer: NodeJS.Timeout | undefined;
  // Worker per destination, keyed by what requires restarting it when changed.
  const running = new Map<string, string>();
  let loading: Promise<void> | undefined;

  async function load(force: boolean): Promise<void> {
    const f = await destinationsFingerprint(sql);
    if (!force && f === fingerprint) return;
    fingerprint = f;
    const next: ActiveDestination[] = [];
    for (const destination of await listDestinations(sql)) {
      const plugin = PLUGINS.get(destination.plugin);
      if (!destination.enabled || !plugin) continue;
      const parsed = plugin.settings.safeParse(destination.settings);
      if (!parsed.success) {
        log.error(`destination ${destination.id}: settings no longer valid for plugin ${plugin.name}; not sending`);
        continue;
      }
      next.push({ destination, plugin, settings: parsed.data });
    }
    list = next;
    if (deps.work) await syncWorkers();
  }

  async function syncWorkers(): Promise<void> {
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
        ordered: a.plugin.ordering === 'profile',
        retryDelay: deps.delivery.retryDelaySeconds,
        retryDelayMax: deps.delivery.retryMaxSeconds,
      });
      await ensureQueue(boss, queue);
      await boss.work<DeliverJob>(
        queue.name,
        {
          batchSize: a.plugin.batchSize ?? 1,
          localConcurrency: a.destination.concurrency,
          pollingIntervalSeconds: 0.5,
          // NOTIFY wakes workers for new jobs, not for retries coming due: without this backstop
          // poll (pg-boss defaults it to 30 s) a retry waits up to 30 s past its backoff.
          notifyPollingIntervalSeconds: 1,
          burstWhenBatchFull: true,
        },
        // Read the current entry on every fetch: settings changed on any server apply at once.
        async (jobs) => {
          const current = list.find((x) => x.destination.id === id);
          if (!current) throw new Error(`destination ${id} is no longer active`);
          await deliverJobs(deps, current.destination, current.plugin, current.settings, jobs);
        },
      );
      running.set(id, workerKey(a));
    }
  }

  function reload(force: boolean): Promise<void> {
    loading = (loading ?? Promise.resolve()).then(() => load(force)).catch((err) => log.error('destinations', err));
    return loading;
  }

  return {
    active: () => list,
    refresh: () => reload(true),
    async start() {
      await reload(true);
      timer = setInterval(() => void reload(false), deps.refreshMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      await loading;
      for (const id of running.keys()) await boss.offWork(destinationQueueName(id)).catch(() => {});
      running.clear();
    },
  };
}

// Only what the worker's registration depends on; settings are read per fetch.
function workerKey(a: ActiveDestination): string {
  return `${a.destination.concurrency}:${a.plugin.batchSize}:${a.plugin.ordering}`;
}
