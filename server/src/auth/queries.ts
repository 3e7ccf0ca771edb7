import type { Sql, Tx } from '../db/index.ts';

// better-auth owns these tables (auth_user, auth_apikey, auth_session, auth_account) and writes them
// through its own adapter; the admin API reads them here, and changes what better-auth has no
// endpoint for (a role, a revocation, a removal with everything that belongs to the person).

/** An API key as stored by better-auth's api-key plugin, minus the key's hash. */
export interface ApiKeyRow {
  id: string;
  name: string | null;
  start: string | null;
  metadata: unknown;
  referenceId: string;
  enabled: boolean | null;
  expiresAt: Date | null;
  createdAt: Date;
}

/**
 * Every API key, oldest first (never the hash of the key).
 *
 * @example
 * const keys = await listApiKeys(sql);
 */
export function listApiKeys(sql: Tx): Promise<ApiKeyRow[]> {
  return sql<ApiKeyRow[]>`
    SELECT id, name, start, metadata, "referenceId", enabled, "expiresAt", "createdAt"
    FROM auth_apikey
    ORDER BY "createdAt"`;
}

/**
 * One API key, or undefined.
 *
 * @example
 * const key = await getApiKey(sql, created.id);
 */
export async function getApiKey(sql: Tx, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await sql<ApiKeyRow[]>`
    SELECT id, name, start, metadata, "referenceId", enabled, "expiresAt", "createdAt"
    FROM auth_apikey
    WHERE id = ${id}`;
  return row;
}

/**
 * Disables an API key; false when there is no such key. Verifiers cache keys: clear them after.
 *
 * @example
 * if (!(await revokeApiKey(sql, id))) notFound();
 */
export async function revokeApiKey(sql: Tx, id: string): Promise<boolean> {
  const rows = await sql`
    UPDATE auth_apikey
    SET enabled = false, "updatedAt" = now()
    WHERE id = ${id}
    RETURNING id`;
  return rows.length > 0;
}

/**
 * An API key as the audit log keeps it: never the key column (a hash, but still the credential's
 * verifier); `metadata` as stored (text: read the role with roleOf). Undefined when unknown.
 *
 * @example
 * const k = await apiKeyRecord(sql, id); // { id, name, start, metadata, ownerId, enabled, expiresAt }
 */
export async function apiKeyRecord(
  sql: Tx,
  id: string,
): Promise<{ metadata: unknown; [column: string]: unknown } | undefined> {
  const [k] = await sql<{ metadata: unknown; [column: string]: unknown }[]>`
    SELECT id, name, start, metadata, "referenceId" AS "ownerId", enabled, "expiresAt"
    FROM auth_apikey
    WHERE id = ${id}`;
  return k;
}

/**
 * Everyone who can sign in, oldest first, as raw rows (read them with toPerson).
 *
 * @example
 * const people = (await listPeople(sql)).map(toPerson);
 */
export function listPeople(sql: Tx): Promise<Record<string, unknown>[]> {
  return sql<Record<string, unknown>[]>`
    SELECT id, email, name, role, "createdAt"
    FROM auth_user
    ORDER BY "createdAt"`;
}

/**
 * Sets a person's role (a null role leaves it) and returns the person's row, or undefined when unknown.
 *
 * @example
 * const row = await setRole(sql, id, 'operator');
 */
export async function setRole(sql: Tx, id: string, role: string | null): Promise<Record<string, unknown> | undefined> {
  const [row] = await sql<Record<string, unknown>[]>`
    UPDATE auth_user
    SET role = coalesce(${role}, role), "updatedAt" = now()
    WHERE id = ${id}
    RETURNING id, email, name, role, "createdAt"`;
  return row;
}

/**
 * Removes a person with their API keys, sessions and accounts, in one transaction; false when there
 * was no such person. Verifiers cache keys: clear them after.
 *
 * @example
 * if (!(await removePerson(sql, id))) notFound();
 */
export async function removePerson(sql: Sql, id: string): Promise<boolean> {
  const removed = await sql.begin(async (tx) => {
    await tx`DELETE FROM auth_apikey WHERE "referenceId" = ${id}`;
    await tx`DELETE FROM auth_session WHERE "userId" = ${id}`;
    await tx`DELETE FROM auth_account WHERE "userId" = ${id}`;
    return tx`DELETE FROM auth_user WHERE id = ${id} RETURNING id`;
  });
  return removed.length > 0;
}

/**
 * A person as the audit log keeps them (id, email, name, role), or undefined.
 *
 * @example
 * await personRecord(sql, id); // { id, email: 'ann@example.com', name: 'Ann', role: 'admin' }
 */
export async function personRecord(sql: Tx, id: string): Promise<unknown> {
  const [r] = await sql<{ row: unknown }[]>`
    SELECT jsonb_build_object('id', id, 'email', email, 'name', name, 'role', role) AS row
    FROM auth_user
    WHERE id = ${id}`;
  return r?.row;
}
