import type { ComputedTraitDefinition, Rule } from '@cairn/core';
import type { Transaction, Tx } from '../../db/index.ts';

// The definitions of stage 3 as the admin API writes them (audiences, tags, computed traits), and
// what it reads of a profile's tags and computed values. Reads the compute worker itself makes stay
// in queries.ts; the audience reads the API shares with it (getAudience, listAudiences) are there too.

/** A tag as the API shows it: static without a rule, dynamic with one. */
export interface TagRow {
  key: string;
  name: string;
  rule: Rule | null;
  members: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A computed trait as the API shows it, with how many profiles have a value. */
export interface ComputedTraitRow {
  key: string;
  name: string;
  definition: ComputedTraitDefinition;
  profiles: number;
  createdAt: Date;
  updatedAt: Date;
}

/** What an audience stores (its members and timestamps are the database's). */
export interface AudienceRecord {
  name: string;
  description: string | null;
  rule: Rule;
  enabled: boolean;
}

/** What a tag stores. */
export interface TagRecord {
  name: string;
  rule: Rule | null;
}

/** What a computed trait stores. */
export interface ComputedTraitRecord {
  name: string;
  definition: ComputedTraitDefinition;
}

function tagRows(sql: Tx, key?: string): Promise<TagRow[]> {
  return sql<TagRow[]>`
    SELECT t.key, t.name, t.rule, t.created_at AS "createdAt", t.updated_at AS "updatedAt",
      (SELECT count(*)::int FROM tag_assignments a WHERE a.tag = t.key AND a.removed_at IS NULL) AS members
    FROM tags t
    ${key ? sql`WHERE t.key = ${key}` : sql``}
    ORDER BY t.key`;
}

/**
 * Every tag with its current member count, by key.
 *
 * @example
 * const tags = await listTags(sql); // [{ key: 'vip', rule: null, members: 12, ... }]
 */
export function listTags(sql: Tx): Promise<TagRow[]> {
  return tagRows(sql);
}

/**
 * One tag with its current member count, or undefined.
 *
 * @example
 * const tag = await getTag(sql, 'vip');
 */
export async function getTag(sql: Tx, key: string): Promise<TagRow | undefined> {
  const [row] = await tagRows(sql, key);
  return row;
}

function computedTraitRows(sql: Tx, key?: string): Promise<ComputedTraitRow[]> {
  return sql<ComputedTraitRow[]>`
    SELECT c.key, c.name, c.definition, c.created_at AS "createdAt", c.updated_at AS "updatedAt",
      (SELECT count(*)::int FROM computed_trait_values v WHERE v.key = c.key) AS profiles
    FROM computed_traits c
    ${key ? sql`WHERE c.key = ${key}` : sql``}
    ORDER BY c.key`;
}

/**
 * Every computed trait with the number of profiles that have a value, by key.
 *
 * @example
 * const traits = await listComputedTraits(sql);
 */
export function listComputedTraits(sql: Tx): Promise<ComputedTraitRow[]> {
  return computedTraitRows(sql);
}

/**
 * One computed trait, or undefined.
 *
 * @example
 * const trait = await getComputedTrait(sql, 'order_count');
 */
export async function getComputedTrait(sql: Tx, key: string): Promise<ComputedTraitRow | undefined> {
  const [row] = await computedTraitRows(sql, key);
  return row;
}

/**
 * Stores a new audience; false when the key is taken (nothing is written then).
 *
 * @example
 * if (!(await insertAudience(tx, 'vip', { name: 'VIP', description: null, rule, enabled: true }))) conflict();
 */
export async function insertAudience(tx: Transaction, key: string, a: AudienceRecord): Promise<boolean> {
  const rows = await tx`
    INSERT INTO audiences (key, name, description, rule, enabled)
    VALUES (${key}, ${a.name}, ${a.description}, ${tx.json(a.rule as never)}, ${a.enabled})
    ON CONFLICT (key) DO NOTHING
    RETURNING key`;
  return rows.length > 0;
}

/**
 * Replaces an audience's definition; `recomputed` clears its last full recompute (a new rule is
 * computed over every profile again, and the API shows null until that is done).
 *
 * @example
 * await updateAudience(tx, 'vip', { name, description, rule, enabled }, { recomputed: true });
 */
export async function updateAudience(
  tx: Transaction,
  key: string,
  a: AudienceRecord,
  options: { recomputed: boolean },
): Promise<void> {
  await tx`
    UPDATE audiences
    SET name = ${a.name}, description = ${a.description}, rule = ${tx.json(a.rule as never)}, enabled = ${a.enabled},
      updated_at = now(),
      computed_at = CASE WHEN ${options.recomputed}::boolean THEN NULL ELSE computed_at END
    WHERE key = ${key}`;
}

/**
 * Deletes an audience; its memberships, counts and history go with it (foreign keys cascade).
 *
 * @example
 * await deleteAudience(sql, 'vip');
 */
export async function deleteAudience(sql: Tx, key: string): Promise<void> {
  await sql`DELETE FROM audiences WHERE key = ${key}`;
}

/**
 * Stores a new tag (a null rule makes it static); false when the key is taken.
 *
 * @example
 * await insertTag(tx, 'vip', { name: 'VIP', rule: null });
 */
export async function insertTag(tx: Transaction, key: string, t: TagRecord): Promise<boolean> {
  const rows = await tx`
    INSERT INTO tags (key, name, rule)
    VALUES (${key}, ${t.name}, ${t.rule ? tx.json(t.rule as never) : null})
    ON CONFLICT (key) DO NOTHING
    RETURNING key`;
  return rows.length > 0;
}

/**
 * Replaces a tag's name and rule.
 *
 * @example
 * await updateTag(tx, 'vip', { name: 'Very important', rule });
 */
export async function updateTag(tx: Transaction, key: string, t: TagRecord): Promise<void> {
  await tx`
    UPDATE tags
    SET name = ${t.name}, rule = ${t.rule ? tx.json(t.rule as never) : null}, updated_at = now()
    WHERE key = ${key}`;
}

/**
 * Deletes a tag and its assignments' history.
 *
 * @example
 * await deleteTag(sql, 'vip');
 */
export async function deleteTag(sql: Tx, key: string): Promise<void> {
  await sql`DELETE FROM tags WHERE key = ${key}`;
}

/**
 * Stores a new computed trait; false when the key is taken.
 *
 * @example
 * await insertComputedTrait(tx, 'order_count', { name: 'Orders', definition });
 */
export async function insertComputedTrait(tx: Transaction, key: string, c: ComputedTraitRecord): Promise<boolean> {
  const rows = await tx`
    INSERT INTO computed_traits (key, name, definition)
    VALUES (${key}, ${c.name}, ${tx.json(c.definition as never)})
    ON CONFLICT (key) DO NOTHING
    RETURNING key`;
  return rows.length > 0;
}

/**
 * Replaces a computed trait's name and definition.
 *
 * @example
 * await updateComputedTrait(tx, 'order_count', { name: 'Orders', definition });
 */
export async function updateComputedTrait(tx: Transaction, key: string, c: ComputedTraitRecord): Promise<void> {
  await tx`
    UPDATE computed_traits
    SET name = ${c.name}, definition = ${tx.json(c.definition as never)}, updated_at = now()
    WHERE key = ${key}`;
}

/**
 * Deletes a computed trait and its values.
 *
 * @example
 * await deleteComputedTrait(sql, 'order_count');
 */
export async function deleteComputedTrait(sql: Tx, key: string): Promise<void> {
  await sql`DELETE FROM computed_traits WHERE key = ${key}`;
}

/**
 * A tag's stored definition as JSON (key, name, rule), without counters or timestamps: what the audit
 * log keeps before and after a change. Undefined when there is no such tag.
 *
 * @example
 * await tagDefinition(sql, 'vip'); // { key: 'vip', name: 'VIP', rule: null }
 */
export async function tagDefinition(sql: Tx, key: string): Promise<unknown> {
  const [r] = await sql<{ row: unknown }[]>`
    SELECT jsonb_build_object('key', key, 'name', name, 'rule', rule) AS row
    FROM tags
    WHERE key = ${key}`;
  return r?.row;
}

/**
 * A computed trait's stored row as JSON without its timestamps (audit log). Undefined when unknown.
 *
 * @example
 * await computedTraitDefinition(sql, 'order_count'); // { key, name, definition }
 */
export async function computedTraitDefinition(sql: Tx, key: string): Promise<unknown> {
  const [r] = await sql<{ row: unknown }[]>`
    SELECT to_jsonb(t) - 'created_at' - 'updated_at' AS row
    FROM computed_traits t
    WHERE t.key = ${key}`;
  return r?.row;
}

/** One period during which a profile carried a tag (removed* null while it still does). */
export interface TagAssignment {
  tag: string;
  addedAt: Date;
  addedBy: string;
  addedReason: string | null;
  removedAt: Date | null;
  removedBy: string | null;
  removedReason: string | null;
}

/**
 * A profile's tag assignments, current and past, newest first (the latest 500).
 *
 * @example
 * const history = await tagHistory(sql, profileId);
 * const current = history.filter((a) => !a.removedAt).map((a) => a.tag);
 */
export function tagHistory(sql: Tx, profileId: string): Promise<TagAssignment[]> {
  return sql<TagAssignment[]>`
    SELECT tag, added_at AS "addedAt", added_by AS "addedBy", added_reason AS "addedReason",
      removed_at AS "removedAt", removed_by AS "removedBy", removed_reason AS "removedReason"
    FROM tag_assignments
    WHERE profile_id = ${profileId}
    ORDER BY added_at DESC, id DESC
    LIMIT 500`;
}

/**
 * A profile's computed trait values, by key.
 *
 * @example
 * const values = await computedValuesOf(sql, profileId); // [{ key: 'order_count', value: 3, computedAt }]
 */
export function computedValuesOf(
  sql: Tx,
  profileId: string,
): Promise<{ key: string; value: unknown; computedAt: Date }[]> {
  return sql<{ key: string; value: unknown; computedAt: Date }[]>`
    SELECT key, value, computed_at AS "computedAt"
    FROM computed_trait_values
    WHERE profile_id = ${profileId}
    ORDER BY key`;
}

/**
 * Has Postgres compile a regular expression by using it once, on an empty string: a pattern it cannot
 * compile rejects with its error (SQLSTATE 2201B) here, not later while a rule is evaluated.
 *
 * @example
 * await compilePattern(sql, '^(foo'); // throws: invalid regular expression
 */
export async function compilePattern(sql: Tx, pattern: string): Promise<void> {
  await sql`SELECT '' ~ ${pattern}::text`;
}
