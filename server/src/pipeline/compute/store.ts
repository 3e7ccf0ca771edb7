import type { Tx } from '../../db/index.ts';

/** Where a definition's members live: current rows and their history in one table per kind. */
export interface MembershipStore {
  kind: 'audience' | 'tag';
  /** Current members among `ids` (all current members when ids is undefined). */
  current(sql: Tx, key: string, ids?: readonly string[]): Promise<Set<string>>;
  /** Adds members (skipping current ones); returns those added. */
  enter(sql: Tx, key: string, ids: readonly string[], at: Date, by: string, reason: string | null): Promise<string[]>;
  /** Ends current memberships; returns those ended. */
  exit(sql: Tx, key: string, ids: readonly string[], at: Date, by: string, reason: string | null): Promise<string[]>;
}

export const audienceStore: MembershipStore = {
  kind: 'audience',
  async current(sql, key, ids) {
    const rows = ids
      ? await sql<{ id: string }[]>`
          SELECT profile_id::text AS id FROM audience_memberships
          WHERE audience = ${key} AND exited_at IS NULL AND profile_id = ANY(${ids as string[]}::uuid[])`
      : await sql<{ id: string }[]>`
          SELECT profile_id::text AS id FROM audience_memberships WHERE audience = ${key} AND exited_at IS NULL`;
    return new Set(rows.map((r) => r.id));
  },
  async enter(sql, key, ids, at, by) {
    if (!ids.length) return [];
    const rows = await sql<{ id: string }[]>`
      INSERT INTO audience_memberships (audience, profile_id, entered_at, entered_by)
      SELECT ${key}, p, ${at}, ${by} FROM unnest(${ids as string[]}::uuid[]) AS p
      ON CONFLICT (audience, profile_id) WHERE exited_at IS NULL DO NOTHING
      RETURNING profile_id::text AS id`;
    return rows.map((r) => r.id);
  },
  async exit(sql, key, ids, at, by) {
    if (!ids.length) return [];
    const rows = await sql<{ id: string }[]>`
      UPDATE audience_memberships SET exited_at = ${at}, exited_by = ${by}
      WHERE audience = ${key} AND exited_at IS NULL AND profile_id = ANY(${ids as string[]}::uuid[])
      RETURNING profile_id::text AS id`;
    return rows.map((r) => r.id);
  },
};

export const tagStore: MembershipStore = {
  kind: 'tag',
  async current(sql, key, ids) {
    const rows = ids
      ? await sql<{ id: string }[]>`
          SELECT profile_id::text AS id FROM tag_assignments
          WHERE tag = ${key} AND removed_at IS NULL AND profile_id = ANY(${ids as string[]}::uuid[])`
      : await sql<{ id: string }[]>`
          SELECT profile_id::text AS id FROM tag_assignments WHERE tag = ${key} AND removed_at IS NULL`;
    return new Set(rows.map((r) => r.id));
  },
  async enter(sql, key, ids, at, by, reason) {
    if (!ids.length) return [];
    const rows = await sql<{ id: string }[]>`
      INSERT INTO tag_assignments (tag, profile_id, added_at, added_by, added_reason)
      SELECT ${key}, p, ${at}, ${by}, ${reason} FROM unnest(${ids as string[]}::uuid[]) AS p
      ON CONFLICT (tag, profile_id) WHERE removed_at IS NULL DO NOTHING
      RETURNING profile_id::text AS id`;
    return rows.map((r) => r.id);
  },
  async exit(sql, key, ids, at, by, reason) {
    if (!ids.length) return [];
    const rows = await sql<{ id: string }[]>`
      UPDATE tag_assignments SET removed_at = ${at}, removed_by = ${by}, removed_reason = ${reason}
      WHERE tag = ${key} AND removed_at IS NULL AND profile_id = ANY(${ids as string[]}::uuid[])
      RETURNING profile_id::text AS id`;
    return rows.map((r) => r.id);
  },
};

export const STORES = { audience: audienceStore, tag: tagStore } as const;

/** The event names recorded when a profile enters or leaves. */
export const CHANGE_EVENTS = {
  audience: { enter: 'audience.entered', exit: 'audience.exited' },
  tag: { enter: 'tag.added', exit: 'tag.removed' },
} as const;

/**
 * Records membership changes as track events on the profiles (source `cairn`), already attached and
 * processed, so they go straight to fan-out. Returns their ids. The messageId names the change, so a
 * retried job never records one twice.
 *
 * @example
 * const ids = await recordChangeEvents(tx, { kind: 'audience', key: 'vip', name: 'VIP' }, 'enter', ids, now, 'event');
 */
export async function recordChangeEvents(
  sql: Tx,
  def: { kind: 'audience' | 'tag'; key: string; name: string },
  change: 'enter' | 'exit',
  profileIds: readonly string[],
  at: Date,
  by: string,
): Promise<string[]> {
  if (!profileIds.length) return [];
  const event = CHANGE_EVENTS[def.kind][change];
  const ts = at.toISOString();
  const property = def.kind === 'audience' ? 'audience' : 'tag';
  // One row per profile; the first userId (else anonymousId) makes the event useful to destinations
  // that key people by their own ids.
  const rows = await sql<{ id: string }[]>`
    WITH who AS (
      SELECT p.id AS profile_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = p.id AND i.type = 'userId' ORDER BY i.created_at, i.key LIMIT 1) AS user_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = p.id AND i.type = 'anonymousId' ORDER BY i.created_at, i.key LIMIT 1) AS anonymous_id
      FROM unnest(${profileIds as string[]}::uuid[]) AS p (id)
    )
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, profile_id, processed_at)
    SELECT 'cairn', ${`${event}:${def.key}:`} || w.profile_id::text || ':' || ${ts}, 'track', ${event}, w.user_id, w.anonymous_id,
      ${at}, now(),
      jsonb_strip_nulls(jsonb_build_object(
        'type', 'track', 'event', ${event}::text,
        'messageId', ${`${event}:${def.key}:`} || w.profile_id::text || ':' || ${ts},
        'userId', w.user_id, 'anonymousId', w.anonymous_id,
        'timestamp', ${ts}::text, 'receivedAt', ${ts}::text,
        'properties', jsonb_build_object(${property}::text, jsonb_build_object('key', ${def.key}::text, 'name', ${def.name}::text), 'reason', ${by}::text),
        'context', jsonb_build_object('library', jsonb_build_object('name', 'cairn')))),
      w.profile_id, now()
    FROM who w
    ON CONFLICT (source_id, message_id) DO NOTHING
    RETURNING id::text`;
  return rows.map((r) => r.id);
}
