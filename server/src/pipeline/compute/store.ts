import type { PendingQuery, Row } from 'postgres';
import type { Tx } from '../../db/index.ts';

/** The audience or tag whose members changed, as change events name it. */
export interface ChangedDefinition {
  kind: 'audience' | 'tag';
  key: string;
  name: string;
}

/** Profiles that entered and left in one application of a rule. */
export interface MembershipDiff {
  entered: string[];
  /** Left because the rule no longer holds. */
  exited: string[];
  /** Left because the profile is no longer live (merged away): quietly, without an event. */
  gone: string[];
}

/** Where a definition's members live: current rows and their history in one table per kind. */
export interface MembershipStore {
  kind: 'audience' | 'tag';
  /**
   * Applies a rule's truth over a scope in one statement: enters profiles that hold it and are not
   * members, ends memberships of those that do not hold it (or are no longer live). `truth` is the
   * compiled `truth(scope)` statement (`id uuid, member boolean`), rendered.
   */
  apply(
    sql: Tx,
    key: string,
    truth: { text: string; values: unknown[] },
    scope: readonly string[] | undefined,
    at: Date,
    by: string,
  ): Promise<MembershipDiff>;
  /** Adds members (skipping current ones); returns those added. */
  enter(sql: Tx, key: string, ids: readonly string[], at: Date, by: string, reason: string | null): Promise<string[]>;
  /** Ends current memberships; returns those ended. */
  exit(sql: Tx, key: string, ids: readonly string[], at: Date, by: string, reason: string | null): Promise<string[]>;
}

/** Where one kind's rows live: the table, its definition column, and its since/until columns. */
interface Table {
  table: string;
  key: string;
  since: string;
  sinceBy: string;
  until: string;
  untilBy: string;
  /** The tag table records why a row was added and removed (`<prefix>added_reason`, ...). */
  reasons?: { added: string; removed: string };
}

// The diff runs in SQL, whatever the scope's size: a full recompute over a million profiles never
// ships the truth table to Node. `unsafe` because the rule compiler renders its own parameterised
// text (packages/core has no driver); every value stays a bound parameter.
function diffSql(t: Table, truth: { text: string; values: unknown[] }, scoped: boolean): string {
  const n = truth.values.length;
  const [key, at, by, scope] = [`$${n + 1}`, `$${n + 2}::timestamptz`, `$${n + 3}::text`, `$${n + 4}::uuid[]`];
  const r = t.reasons;
  return `
    WITH truth AS (${truth.text}),
    cur AS (
      SELECT profile_id FROM ${t.table}
      WHERE ${t.key} = ${key} AND ${t.until} IS NULL${scoped ? ` AND profile_id = ANY(${scope})` : ''}),
    entering AS (
      INSERT INTO ${t.table} (${t.key}, profile_id, ${t.since}, ${t.sinceBy}${r ? `, ${r.added}` : ''})
      SELECT ${key}, t.id, ${at}, ${by}${r ? ", 'rule'" : ''} FROM truth t
      WHERE t.member AND NOT EXISTS (SELECT 1 FROM cur c WHERE c.profile_id = t.id)
      ON CONFLICT DO NOTHING
      RETURNING profile_id),
    leaving AS (
      UPDATE ${t.table} m SET ${t.until} = ${at},
        ${t.untilBy} = CASE WHEN t.id IS NULL THEN 'merge' ELSE ${by} END${r ? `, ${r.removed} = 'rule'` : ''}
      FROM cur c LEFT JOIN truth t ON t.id = c.profile_id
      WHERE m.${t.key} = ${key} AND m.${t.until} IS NULL AND m.profile_id = c.profile_id AND t.member IS NOT TRUE
      RETURNING m.profile_id, t.id IS NULL AS gone)
    SELECT 'enter' AS change, profile_id::text AS id FROM entering
    UNION ALL
    SELECT CASE WHEN gone THEN 'gone' ELSE 'exit' END, profile_id::text FROM leaving`;
}

/** The membership store of one kind over its table (audience memberships or tag assignments). */
function membershipStore(kind: 'audience' | 'tag', t: Table): MembershipStore {
  const r = t.reasons;
  return {
    kind,
    async apply(sql, key, truth, scope, at, by) {
      const rows = await sql.unsafe<{ change: 'enter' | 'exit' | 'gone'; id: string }[]>(diffSql(t, truth, !!scope), [
        ...truth.values,
        key,
        at.toISOString(),
        by,
        ...(scope ? [scope] : []),
      ] as never[]);
      const diff: MembershipDiff = { entered: [], exited: [], gone: [] };
      for (const row of rows)
        (row.change === 'enter' ? diff.entered : row.change === 'exit' ? diff.exited : diff.gone).push(row.id);
      return diff;
    },
    async enter(sql, key, ids, at, by, reason) {
      if (!ids.length) return [];
      const rows = await sql<{ id: string }[]>`
        INSERT INTO ${sql(t.table)} (${sql(t.key)}, profile_id, ${sql(t.since)}, ${sql(t.sinceBy)}${r ? sql`, ${sql(r.added)}` : sql``})
        SELECT ${key}, p, ${at}, ${by}${r ? sql`, ${reason}` : sql``} FROM unnest(${ids as string[]}::uuid[]) AS p
        ON CONFLICT (${sql(t.key)}, profile_id) WHERE ${sql(t.until)} IS NULL DO NOTHING
        RETURNING profile_id::text AS id`;
      return rows.map((x) => x.id);
    },
    async exit(sql, key, ids, at, by, reason) {
      if (!ids.length) return [];
      const rows = await sql<{ id: string }[]>`
        UPDATE ${sql(t.table)} SET ${sql(t.until)} = ${at}, ${sql(t.untilBy)} = ${by}${r ? sql`, ${sql(r.removed)} = ${reason}` : sql``}
        WHERE ${sql(t.key)} = ${key} AND ${sql(t.until)} IS NULL AND profile_id = ANY(${ids as string[]}::uuid[])
        RETURNING profile_id::text AS id`;
      return rows.map((x) => x.id);
    },
  };
}

export const audienceStore = membershipStore('audience', {
  table: 'audience_memberships',
  key: 'audience',
  since: 'entered_at',
  sinceBy: 'entered_by',
  until: 'exited_at',
  untilBy: 'exited_by',
});

export const tagStore = membershipStore('tag', {
  table: 'tag_assignments',
  key: 'tag',
  since: 'added_at',
  sinceBy: 'added_by',
  until: 'removed_at',
  untilBy: 'removed_by',
  reasons: { added: 'added_reason', removed: 'removed_reason' },
});

export const STORES = { audience: audienceStore, tag: tagStore } as const;

/**
 * The reason (`by`) of changes caused only by one import's events: `import:<id>`. Their change events carry
 * the import's id, so stages 4 and 5 treat them as they treat the imported events themselves (skipped unless
 * the import asked for flows or delivery, migration 0033): importing last year's orders does not send
 * everyone the welcome of an "ever ordered" audience.
 */
export const importReason = (importId: string) => `import:${importId}`;

/** The import named by a reason from {@link importReason}, else null. */
export function importOf(by: string): string | null {
  return /^import:\d+$/.test(by) ? by.slice('import:'.length) : null;
}

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
  def: ChangedDefinition,
  change: 'enter' | 'exit',
  profileIds: readonly string[],
  at: Date,
  by: string,
): Promise<string[]> {
  if (!profileIds.length) return [];
  const event = CHANGE_EVENTS[def.kind][change];
  const property = def.kind === 'audience' ? 'audience' : 'tag';
  return insertCairnEvents(sql, {
    people: sql`SELECT p.id AS profile_id FROM unnest(${profileIds as string[]}::uuid[]) AS p (id)`,
    event,
    prefix: `${event}:${def.key}:`,
    at,
    importId: importOf(by),
    properties: sql`jsonb_build_object(${property}::text, jsonb_build_object('key', ${def.key}::text, 'name', ${def.name}::text), 'reason', ${by}::text)`,
  });
}

/**
 * Records Cairn's own track events (source `cairn`, already processed): one `event` for each person
 * `people` selects (a `profile_id` column, and any others `properties` reads as `w.<column>`), named by
 * their first userId (else anonymousId), which makes the event useful to destinations that key people by
 * their own ids. The messageId `<prefix><profile id>:<at>` names the change: a retried job records it
 * once. Returns the ids of the events recorded now.
 *
 * @example
 * const ids = await insertCairnEvents(tx, {
 *   people: tx`SELECT p.id AS profile_id FROM unnest(${ids}::uuid[]) AS p (id)`,
 *   event: 'audience.entered', prefix: 'audience.entered:vip:', at: now,
 *   properties: tx`jsonb_build_object('reason', 'event')`,
 * });
 */
export async function insertCairnEvents(
  sql: Tx,
  q: {
    people: PendingQuery<Row[]>;
    event: string;
    prefix: string;
    at: Date;
    properties: PendingQuery<Row[]>;
    /** The import whose events caused the change: the change event is held back from flows and fan-out as they are. */
    importId?: string | null;
  },
): Promise<string[]> {
  const { event, prefix, at } = q;
  const ts = at.toISOString();
  const rows = await sql<{ id: string }[]>`
    WITH people AS (${q.people}),
    who AS (
      SELECT p.*,
        (SELECT i.value FROM identities i WHERE i.profile_id = p.profile_id AND i.type = 'userId' ORDER BY i.created_at, i.key LIMIT 1) AS user_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = p.profile_id AND i.type = 'anonymousId' ORDER BY i.created_at, i.key LIMIT 1) AS anonymous_id
      FROM people p
    )
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, profile_id, processed_at, import_id)
    SELECT 'cairn', ${prefix} || w.profile_id::text || ':' || ${ts}, 'track', ${event}, w.user_id, w.anonymous_id,
      ${at}, now(),
      jsonb_strip_nulls(jsonb_build_object(
        'type', 'track', 'event', ${event}::text,
        'messageId', ${prefix} || w.profile_id::text || ':' || ${ts},
        'userId', w.user_id, 'anonymousId', w.anonymous_id,
        'timestamp', ${ts}::text, 'receivedAt', ${ts}::text,
        'properties', ${q.properties},
        'context', jsonb_build_object('library', jsonb_build_object('name', 'cairn')))),
      w.profile_id, now(), ${q.importId ?? null}::bigint
    FROM who w
    -- A (source_id, message_id) already stored is refused by the events_dedup trigger (migration 0034).
    RETURNING id::text`;
  return rows.map((r) => r.id);
}
