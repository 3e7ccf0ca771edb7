import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';

/** The roles of the permission table (auth/middleware.ts). */
export type Role = 'admin' | 'operator' | 'analyst';
export const ROLES: readonly Role[] = ['admin', 'operator', 'analyst'];

/** Who is calling the admin API: a person (session) or a key, with the role it acts as. */
export interface Principal {
  kind: 'bootstrap-key' | 'admin-key' | 'api-key' | 'session';
  /** The key's id (`env:CAIRN_ADMIN_API_KEY`, `settings:admin_api_key`, a better-auth apikey id) or the user id. */
  id: string;
  role: Role;
  /** The person behind a session, or the person who created an API key. */
  userId?: string;
}

/** Verifies admin API credentials; nothing is written per request. */
export interface Authenticator {
  /** Verifies the bootstrap and generated admin keys (memory only). */
  verifyBearer(token: string): Principal | null;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const newAdminKey = () => `cairn_admin_${randomBytes(24).toString('base64url')}`;

/**
 * Replaces the stored admin key (a lost one, or one that leaked) with a new one and returns it in
 * clear text, once. Only its SHA-256 is stored. Servers read the stored key when they start: restart
 * them for the new key to work there and the old one to stop working.
 *
 * @example
 * const key = await rotateAdminKey(sql); // `npm run cairn -- admin-key rotate`
 */
export async function rotateAdminKey(sql: Sql): Promise<string> {
  const key = newAdminKey();
  await sql`
    INSERT INTO settings (key, value)
    VALUES ('admin_api_key', ${sql.json({ sha256: sha256(key).toString('hex') })})
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`;
  return key;
}

/**
 * Makes sure an admin key exists and returns the authenticator. `CAIRN_ADMIN_API_KEY` is always
 * accepted. Without it, the first start generates a key, stores only its SHA-256 and returns the
 * key in clear text once (`generatedKey`) so it can be printed; concurrent first starts agree on
 * one key (the insert that wins).
 *
 * @example
 * const { authenticator, generatedKey } = await setupAdminKeys(sql, config);
 */
export async function setupAdminKeys(
  sql: Sql,
  config: Readonly<Config>,
): Promise<{ authenticator: Authenticator; generatedKey?: string }> {
  const envHash = config.adminApiKey ? sha256(config.adminApiKey) : null;
  let generatedKey: string | undefined;
  let stored: Buffer | null = null;
  const [row] = await sql<{ value: { sha256: string } }[]>`SELECT value FROM settings WHERE key = 'admin_api_key'`;
  if (row) stored = Buffer.from(row.value.sha256, 'hex');
  else if (!envHash) {
    const key = newAdminKey();
    const inserted = await sql`
      INSERT INTO settings (key, value)
      VALUES ('admin_api_key', ${sql.json({ sha256: sha256(key).toString('hex') })})
      ON CONFLICT (key) DO NOTHING
      RETURNING key`;
    if (inserted.length > 0) generatedKey = key;
    const [again] = await sql<{ value: { sha256: string } }[]>`SELECT value FROM settings WHERE key = 'admin_api_key'`;
    stored = Buffer.from(again!.value.sha256, 'hex');
  }
  return {
    generatedKey,
    authenticator: {
      verifyBearer(token) {
        const h = sha256(token);
        if (envHash && sameHash(h, envHash))
          return { kind: 'bootstrap-key', id: 'env:CAIRN_ADMIN_API_KEY', role: 'admin' };
        if (stored && sameHash(h, stored)) return { kind: 'admin-key', id: 'settings:admin_api_key', role: 'admin' };
        return null;
      },
    },
  };
}
