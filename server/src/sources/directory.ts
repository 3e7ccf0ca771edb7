import type { Sql } from '../db/index.ts';
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
  stop(): void;
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
  let byKey = new Map<string, Source>();
  let fingerprint = '';
  let loadedAt = 0;
  let loading: Promise<void> | null = null;
  let timer: NodeJS.Timeout | undefined;

  async function load(): Promise<void> {
    const f = await sourcesFingerprint(sql);
    loadedAt = Date.now();
    if (f === fingerprint) return;
    const next = new Map<string, Source>();
    for (const s of await listSources(sql)) {
      next.set(s.writeKey, s);
      if (s.previousWriteKey) next.set(s.previousWriteKey, s);
    }
    byKey = next;
    fingerprint = f;
  }

  // `fresh` = a load that starts after the caller's own change committed; a load already under way
  // may have read the table before it, so it is waited for, then followed by a new one.
  function reload(fresh = false): Promise<void> {
    if (loading && !fresh) return loading;
    const next: Promise<void> = (loading ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        if (fresh) fingerprint = '';
        return load();
      })
      .finally(() => {
        if (loading === next) loading = null;
      });
    loading = next;
    return next;
  }

  function current(writeKey: string): Source | undefined {
    const s = byKey.get(writeKey);
    if (!s || s.writeKey === writeKey) return s;
    // The previous key of a rotated source works only until its grace period ends.
    return s.previousKeyExpiresAt && s.previousKeyExpiresAt.getTime() > Date.now() ? s : undefined;
  }

  return {
    async byWriteKey(writeKey) {
      const hit = current(writeKey);
      if (hit || Date.now() - loadedAt < MISS_RELOAD_MIN_MS) return hit;
      await reload();
      return current(writeKey);
    },
    anyAllowsOrigin(origin) {
      for (const s of byKey.values()) {
        if (s.enabled && originAllowed(s.allowedOrigins, origin)) return true;
      }
      return false;
    },
    reload: () => reload(true),
    async start() {
      await reload();
      timer = setInterval(() => reload().catch((err) => log.error('reloading sources', err)), refreshMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
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
    if (origin === scheme + domain || (origin.startsWith(scheme) && origin.endsWith(`.${domain}`))) return true;
  }
  return false;
}
