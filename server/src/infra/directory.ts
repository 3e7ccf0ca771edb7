import type { Logger } from '../log.ts';
import { type PeriodicTask, startPeriodic } from './periodic.ts';

/** Options of {@link createDirectory}. */
export interface DirectoryOptions<T> {
  /** Names it in logs and names its refresh task. */
  name: string;
  /** Reads the whole table (it is small) and prepares its entries: what lookups answer from. */
  load: () => Promise<readonly T[]>;
  /** The keys an entry is found by (several for one entry: a source's current and previous write key). */
  keys: (entry: T) => readonly string[];
  /**
   * A cheap summary of the table (row count and latest update, say): when it has not changed since the
   * last load, a periodic refresh reads nothing more. Without it every refresh loads.
   */
  fingerprint?: () => Promise<string>;
  /**
   * Runs after each load that changed the entries, before the next load starts (loads never overlap):
   * where a directory starts and stops what depends on its rows. A failure fails the load, which the
   * next refresh repeats.
   */
  onChange?: (entries: readonly T[]) => Promise<void>;
  /** Re-read this often, so rows changed through another server are seen. */
  refreshMs: number;
  log: Logger;
}

/** A small table kept in memory, found by key. */
export interface Directory<T> {
  /** The entry with this key, or undefined (from memory: never a query). */
  get(key: string): T | undefined;
  /** Every entry, in the order `load` gave them. */
  all(): readonly T[];
  /** When the table was last checked (ms since the epoch), changed or not; 0 before the first load. */
  checkedAt(): number;
  /**
   * Reads the table now. Plain: joins a load under way. `fresh` (after a change this process made):
   * a load that starts after the call and reads the rows even if the fingerprint did not move; rejects
   * when that load fails.
   */
  reload(options?: { fresh?: boolean }): Promise<void>;
  /** Loads (rejects when that first load fails) and refreshes every `refreshMs` until stopped. */
  start(): Promise<void>;
  /** No more refreshes; resolves once the load under way (if any) has finished. */
  stop(): Promise<void>;
}

/**
 * A cached-table directory: all rows of a small table in memory, looked up by key, refreshed every
 * `refreshMs` (only when its fingerprint moved) and on demand. Loads run one at a time; `onChange`
 * runs inside the load that changed the entries.
 *
 * @example
 * const sources = createDirectory({
 *   name: 'sources',
 *   load: () => listSources(sql),
 *   keys: (s) => [s.writeKey],
 *   fingerprint: () => sourcesFingerprint(sql),
 *   refreshMs: 2000,
 *   log,
 * });
 * await sources.start();
 * sources.get(writeKey);
 */
export function createDirectory<T>(options: DirectoryOptions<T>): Directory<T> {
  let entries: readonly T[] = [];
  let byKey = new Map<string, T>();
  let fingerprint: string | undefined;
  let checkedAt = 0;
  // The last load scheduled, until it settles; a fresh load waiting behind it, until it starts.
  let latest: Promise<void> | undefined;
  let waiting: Promise<void> | undefined;
  let refresher: PeriodicTask | undefined;

  async function load(force: boolean): Promise<void> {
    const f = options.fingerprint ? await options.fingerprint() : undefined;
    checkedAt = Date.now();
    if (!force && f !== undefined && f === fingerprint) return;
    const next = await options.load();
    const index = new Map<string, T>();
    for (const entry of next) for (const key of options.keys(entry)) index.set(key, entry);
    entries = next;
    byKey = index;
    await options.onChange?.(next);
    // Only now: a failed load or onChange leaves the old fingerprint, so the next refresh tries again.
    fingerprint = f;
  }

  // Loads are chained: each starts after the one before has settled, so they never overlap.
  function schedule(force: boolean): Promise<void> {
    const before = latest;
    const run: Promise<void> = (before ? before.catch(() => {}) : Promise.resolve())
      .then(() => {
        if (waiting === run) waiting = undefined;
        return load(force);
      })
      .finally(() => {
        if (latest === run) latest = undefined;
      });
    latest = run;
    return run;
  }

  function reload(opts: { fresh?: boolean } = {}): Promise<void> {
    if (!opts.fresh) return latest ?? schedule(false);
    // Callers asking while a fresh load waits to start share it: it starts after all of them asked.
    waiting ??= schedule(true);
    return waiting;
  }

  return {
    get: (key) => byKey.get(key),
    all: () => entries,
    checkedAt: () => checkedAt,
    reload,
    async start() {
      // A cache of this process's own: every server refreshes its copy, so no lease. Started before the
      // first load, so a first load that fails (and rejects here) is tried again by the next refresh.
      refresher ??= startPeriodic({
        name: `${options.name}.refresh`,
        everyMs: options.refreshMs,
        run: () => reload(),
        log: options.log,
      });
      await reload({ fresh: true });
    },
    async stop() {
      await refresher?.stop();
      await latest?.catch(() => {});
    },
  };
}
