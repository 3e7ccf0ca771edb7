import { createHash } from 'node:crypto';
import type { Sql } from '../db/index.ts';
import { type Principal, ROLES, type Role } from './keys.ts';

/** Verifies role-bound API keys made by better-auth's api-key plugin, through a short cache. */
export interface ApiKeyVerifier {
  verify(token: string): Promise<Principal | null>;
  /** Forgets every cached verification (this process only; other processes wait out the TTL). */
  clear(): void;
}

interface Cached {
  at: number;
  row: KeyRow | null;
}

interface KeyRow {
  id: string;
  referenceId: string;
  role: Role;
  enabled: boolean;
  expiresAt: Date | null;
}

// Bounds memory under a flood of random keys; the cache is simply emptied when full.
const MAX_ENTRIES = 10_000;

/** better-auth's default key hash: SHA-256, base64url without padding (api-key plugin's defaultKeyHasher). */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('base64url');
}

/**
 * Verifies keys against better-auth's `auth_apikey` table by their hash, remembering each answer (found or
 * not) for `ttlMs`. The plugin's own verify endpoint updates request counters on every call; this
 * reads only, and at most once per key per TTL, so a revoked key is refused within `ttlMs` on every
 * process, and an expired key at once (the expiry is checked on each request).
 *
 * @example
 * const keys = createApiKeyVerifier(sql, 5000);
 * const principal = await keys.verify(token);
 */
export function createApiKeyVerifier(sql: Sql, ttlMs: number, now: () => number = Date.now): ApiKeyVerifier {
  const cache = new Map<string, Cached>();
  async function lookup(hash: string): Promise<KeyRow | null> {
    const [row] = await sql<
      { id: string; referenceId: string; metadata: unknown; enabled: boolean | null; expiresAt: Date | null }[]
    >`
      SELECT id, "referenceId", metadata, enabled, "expiresAt"
      FROM auth_apikey
      WHERE key = ${hash}`;
    if (!row) return null;
    const role = roleOf(row.metadata);
    if (!role) return null;
    return {
      id: row.id,
      referenceId: row.referenceId,
      role,
      enabled: row.enabled !== false,
      expiresAt: row.expiresAt ? new Date(row.expiresAt) : null,
    };
  }
  return {
    async verify(token) {
      const hash = hashApiKey(token);
      let entry = cache.get(hash);
      if (!entry || now() - entry.at >= ttlMs) {
        if (cache.size >= MAX_ENTRIES) cache.clear();
        entry = { at: now(), row: await lookup(hash) };
        cache.set(hash, entry);
      }
      const row = entry.row;
      if (!row?.enabled) return null;
      if (row.expiresAt && row.expiresAt.getTime() <= now()) return null;
      return { kind: 'api-key', id: row.id, role: row.role, userId: row.referenceId };
    },
    clear() {
      cache.clear();
    },
  };
}

/** The role stored in a key's metadata (better-auth stores metadata as JSON text). */
export function roleOf(metadata: unknown): Role | null {
  let m = metadata;
  if (typeof m === 'string') {
    try {
      m = JSON.parse(m);
    } catch {
      return null;
    }
  }
  // Double-encoded by some adapter paths: a JSON string holding JSON.
  if (typeof m === 'string') return roleOf(m);
  const role = (m as { role?: unknown } | null)?.role;
  return ROLES.includes(role as Role) ? (role as Role) : null;
}
