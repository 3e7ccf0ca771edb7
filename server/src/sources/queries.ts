import { randomBytes } from 'node:crypto';
import type { Tx } from '../db/index.ts';

/** A source: where events come from, and the write key that authenticates them. */
export interface Source {
  id: string;
  name: string;
  writeKey: string;
  previousWriteKey: string | null;
  previousKeyExpiresAt: Date | null;
  allowedOrigins: string[];
  enabled: boolean;
  /** What to assume for consent purposes a profile never chose (see README "Destinations"). */
  consentPolicy: { default: 'allow' | 'deny'; purposes?: Record<string, 'allow' | 'deny'> };
  createdAt: Date;
  updatedAt: Date;
}

/** A new random write key. Write keys identify a source; they are public in web pages, not secrets. */
export function newWriteKey(): string {
  return `wk_${randomBytes(24).toString('base64url')}`;
}

const COLUMNS = (sql: Tx) => sql`
  id,
  name,
  write_key AS "writeKey",
  previous_write_key AS "previousWriteKey",
  previous_key_expires_at AS "previousKeyExpiresAt",
  allowed_origins AS "allowedOrigins",
  enabled,
  consent_policy AS "consentPolicy",
  created_at AS "createdAt",
  updated_at AS "updatedAt"
`;

export async function listSources(sql: Tx): Promise<Source[]> {
  return sql<Source[]>`SELECT ${COLUMNS(sql)} FROM sources ORDER BY created_at, id`;
}

export async function getSource(sql: Tx, id: string): Promise<Source | undefined> {
  const [row] = await sql<Source[]>`SELECT ${COLUMNS(sql)} FROM sources WHERE id = ${id}`;
  return row;
}

/** A cheap fingerprint of the table, so caches reload only when something changed. */
export async function sourcesFingerprint(sql: Tx): Promise<string> {
  const [row] = await sql<{ f: string }[]>`
    SELECT count(*)::text || ':' || coalesce(max(updated_at)::text, '') AS f
    FROM sources`;
  return row?.f ?? '';
}

export async function insertSource(
  sql: Tx,
  input: { name: string; allowedOrigins: string[]; id?: string; writeKey?: string },
): Promise<Source> {
  const id = input.id ?? `src_${randomBytes(9).toString('base64url')}`;
  const [row] = await sql<Source[]>`
    INSERT INTO sources (id, name, write_key, allowed_origins)
    VALUES (${id}, ${input.name}, ${input.writeKey ?? newWriteKey()}, ${input.allowedOrigins})
    RETURNING ${COLUMNS(sql)}`;
  return row!;
}

export async function updateSource(
  sql: Tx,
  id: string,
  patch: { name?: string; allowedOrigins?: string[]; enabled?: boolean; consentPolicy?: Source['consentPolicy'] },
): Promise<Source | undefined> {
  const [row] = await sql<Source[]>`
    UPDATE sources
    SET
      name = coalesce(${patch.name ?? null}, name),
      allowed_origins = coalesce(${patch.allowedOrigins ?? null}::text[], allowed_origins),
      enabled = coalesce(${patch.enabled ?? null}::boolean, enabled),
      consent_policy = coalesce(${patch.consentPolicy ? sql.json(patch.consentPolicy as never) : null}::jsonb, consent_policy),
      updated_at = clock_timestamp()
    WHERE id = ${id}
    RETURNING ${COLUMNS(sql)}`;
  return row;
}

/** Issues a new write key; the old one keeps working for `graceSeconds` (0 = revoked now). */
export async function rotateWriteKey(sql: Tx, id: string, graceSeconds: number): Promise<Source | undefined> {
  const [row] = await sql<Source[]>`
    UPDATE sources
    SET
      previous_write_key = CASE WHEN ${graceSeconds} > 0 THEN write_key END,
      previous_key_expires_at = CASE WHEN ${graceSeconds} > 0
        THEN clock_timestamp() + make_interval(secs => ${graceSeconds}) END,
      write_key = ${newWriteKey()},
      updated_at = clock_timestamp()
    WHERE id = ${id}
    RETURNING ${COLUMNS(sql)}`;
  return row;
}
