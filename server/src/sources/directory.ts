import type { Sql } from '../db/index.ts';
import { createDirectory } from '../infra/directory.ts';
import type { Logger } from '../log.ts';
import { listSources, type Source, sourcesFingerprint } from './queries.ts';

/** Write-key lookups served from memory: the hot path never touches the database to authenticate. */
export interface SourceDirectory {
  /** The enabled-or-not source a write key belongs to, reloading once on a miss (rate-limited). */
  byWriteKey(writeKey: string): Promise<Source | undefined>;
  /** Whether any source accepts this browser origin (answers CORS preflights, which carry no key). */
  anyAllowsOrigin(origin: string): boolean;
  /** Reload now (after this process changed a source). */
  reload(): Promise<void>;
  start(): Promise<void>;
  /** Stops refreshing; resolves once a reload under way has finished. */
  stop(): Promise<void>;
}

// A miss reloads at most this often, so a flood of bad keys cannot turn into a flood of queries.
const MISS_RELOAD_MIN_MS = 250;

/**
 * Creates the in-memory write-key directory. It polls a fingerprint of the sources table so keys
 * created, rotated or disabled by another server process are seen within `refreshMs`.
 *
 * @example
 * const sources = createSourceDirectory(sql, log, 2000);
 * await sources.start();
 * const source = await sources.byWriteKey(key);
 */
export function createSourceDirectory(sql: Sql, log: Logger, refreshMs: number): SourceDirectory {
  const directory = createDirectory<Source>({
    name: 'sources',
    load: () => listSources(sql),
    // A rotated source answers to its previous key too, during its grace period (see current()).
    keys: (s) => (s.previousWriteKey ? [s.writeKey, s.previousWriteKey] : [s.writeKey]),
    fingerprint: () => sourcesFingerprint(sql),
    refreshMs,
    log,
  });

  function current(writeKey: string): Source | undefined {
    const s = directory.get(writeKey);
    if (!s || s.writeKey === writeKey) return s;
    // The previous key of a rotated source works only until its grace period ends.
    return s.previousKeyExpiresAt && s.previousKeyExpiresAt.getTime() > Date.now() ? s : undefined;
  }

  return {
    async byWriteKey(writeKey) {
      const hit = current(writeKey);
      if (hit || Date.now() - directory.checkedAt() < MISS_RELOAD_MIN_MS) return hit;
      await directory.reload();
      return current(writeKey);
    },
    anyAllowsOrigin(origin) {
      for (const s of directory.all()) {
        if (s.enabled && originAllowed(s.allowedOrigins, origin)) return true;
      }
      return false;
    },
    // A load that starts after the caller's own change committed (one under way may have read before it).
    reload: () => directory.reload({ fresh: true }),
    start: directory.start,
    stop: directory.stop,
  };
}

/**
 * Whether a browser origin may send with a source: an empty list or `*` allows any origin; an entry
 * may use one leading wildcard label (`https://*.shop.example`), which also covers the bare domain.
 *
 * @example
 * originAllowed(['https://*.shop.test'], 'https://www.shop.test'); // true
 */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  if (allowed.length === 0) return true;
  for (const entry of allowed) {
    if (entry === '*' || entry === origin) return true;
    const star = entry.indexOf('://*.');
    if (star < 0) continue;
    const scheme = entry.slice(0, star + 3);
    const domain = entry.slice(star + 5);
    if (origin === scheme + domain) return true;
    // What the star stands for must be host labels only: `https://evil.test/x.shop.test` ends like a
    // subdomain but is a path (browsers never send one in Origin; a hand-made request might).
    const sub =
      origin.startsWith(scheme) && origin.endsWith(`.${domain}`) ? origin.slice(scheme.length, -domain.length - 1) : '';
    if (/^[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(sub)) return true;
  }
  return false;
}
