import { randomBytes } from 'node:crypto';
import type { Config } from './config.ts';
import type { Sql } from './db/index.ts';

/**
 * The server secret (keyed hashes of suppressed identities, unsubscribe signatures, and the keys PII
 * is encrypted and blind-indexed with, see server/src/pii):
 * `CAIRN_SECRET` when set, else one generated at the first start and kept in `settings`, so a
 * zero-config install still works and every server on the database agrees. Production sets
 * `CAIRN_SECRET` so the key does not live next to the data it protects.
 *
 * @example
 * const secret = await resolveSecret(sql, config);
 */
export async function resolveSecret(sql: Sql, config: Readonly<Config>): Promise<string> {
  if (config.secret) return config.secret;
  const generated = randomBytes(32).toString('base64url');
  await sql`INSERT INTO settings (key, value) VALUES ('generated_secret', ${sql.json({ secret: generated })}) ON CONFLICT DO NOTHING`;
  const [row] = await sql<{ value: { secret: string } }[]>`SELECT value FROM settings WHERE key = 'generated_secret'`;
  return row!.value.secret;
}
