import type { Sql } from '../../db/index.ts';
import { createDirectory } from '../../infra/directory.ts';
import type { Logger } from '../../log.ts';
import type { PluginRegistry } from './plugins.ts';
import { destinationsFingerprint, listDestinations } from './queries/destinations.ts';
import type { ActiveDestination } from './types.ts';

export type { ActiveDestination } from './types.ts';

/** The destinations of this database, kept current. */
export interface DestinationDirectory {
  /** Enabled destinations whose plugin is installed and whose settings parse. */
  active(): readonly ActiveDestination[];
  /** One of them by id. */
  get(id: string): ActiveDestination | undefined;
  /** Re-reads now (after a change made through this server). */
  refresh(): Promise<void>;
  /**
   * Makes sure the list was checked after `since` (ms since the epoch): checks the table's fingerprint
   * now when it was not. Work created after a destination was (a job of an event accepted once the
   * API answered) is then fanned out to it, even on a server that did not make the change.
   */
  checkedSince(since: number): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

// Jobs carry the database's time, the directory this process's: on one machine they agree to a few ms.
const CLOCK_MARGIN_MS = 250;

/**
 * Keeps the destination list in memory, re-read when the table's fingerprint changes (every
 * `refreshMs`, so destinations created on another server are picked up) and after a change made
 * here. `onChange` runs inside each load that changed the list (loads never overlap): the deliver
 * stage starts and stops its senders there (senders.ts).
 *
 * @example
 * const destinations = createDestinationDirectory({ sql, log, plugins, refreshMs: 2000 });
 * await destinations.start();
 */
export function createDestinationDirectory(deps: {
  sql: Sql;
  log: Logger;
  plugins: PluginRegistry;
  refreshMs: number;
  onChange?: (list: readonly ActiveDestination[]) => Promise<void>;
}): DestinationDirectory {
  const { sql, log } = deps;
  const directory = createDirectory<ActiveDestination>({
    name: 'destinations',
    load: loadActive,
    keys: (a) => [a.destination.id],
    fingerprint: () => destinationsFingerprint(sql),
    onChange: deps.onChange ?? (() => Promise.resolve()),
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

  return {
    active: () => directory.all(),
    get: (id) => directory.get(id),
    // Failures are logged, never thrown at the caller; the next refresh loads again.
    refresh: () => directory.reload({ fresh: true }).catch((err) => log.error('destinations', err)),
    checkedSince: async (since) => {
      if (directory.checkedAt() > since + CLOCK_MARGIN_MS) return;
      await directory.reload().catch((err) => log.error('destinations', err));
    },
    // The refresh keeps running when the first load fails: the destinations come once it succeeds.
    start: () => directory.start().catch((err) => log.error('destinations', err)),
    stop: () => directory.stop(),
  };
}
