import { compileTraitRules, type TraitOptions, type TraitQualityRule, type TraitQualityRules } from '@cairn/core';
import type { Sql } from '../../db/index.ts';
import type { Logger } from '../../log.ts';

// Data-quality rules per trait (migration 0031) and the live fold options that carry them to every
// place traits are folded: stage 2's worker, its refolds (unmerge, erase) and bulk import.

/** A stored rule. */
export interface StoredTraitRule {
  key: string;
  rule: TraitQualityRule;
  createdAt: Date;
  updatedAt: Date;
  updatedBy: string | null;
}

interface RuleRow {
  key: string;
  rule: TraitQualityRule;
  created_at: Date;
  updated_at: Date;
  updated_by: string | null;
}

const view = (r: RuleRow): StoredTraitRule => ({
  key: r.key,
  rule: r.rule,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  updatedBy: r.updated_by,
});

/**
 * Every trait rule, by key.
 *
 * @example
 * const rules = await listTraitRules(sql);
 */
export async function listTraitRules(sql: Sql): Promise<StoredTraitRule[]> {
  const rows = await sql<RuleRow[]>`
    SELECT key, rule, created_at, updated_at, updated_by
    FROM trait_rules
    ORDER BY key`;
  return rows.map(view);
}

/**
 * One trait's rule, or undefined.
 *
 * @example
 * const r = await getTraitRule(sql, 'country');
 */
export async function getTraitRule(sql: Sql, key: string): Promise<StoredTraitRule | undefined> {
  const [row] = await sql<RuleRow[]>`
    SELECT key, rule, created_at, updated_at, updated_by
    FROM trait_rules
    WHERE key = ${key}`;
  return row ? view(row) : undefined;
}

/**
 * Creates or replaces a trait's rule (already validated); returns whether it was created.
 *
 * @example
 * await putTraitRule(sql, 'country', { normalize: [{ op: 'country' }], fill: null }, 'admin-key');
 */
export async function putTraitRule(sql: Sql, key: string, rule: TraitQualityRule, actor: string): Promise<boolean> {
  const [row] = await sql<{ created: boolean }[]>`
    INSERT INTO trait_rules (key, rule, updated_by)
    VALUES (${key}, ${sql.json(rule as never)}, ${actor})
    ON CONFLICT (key) DO UPDATE
    SET rule = excluded.rule, updated_at = now(), updated_by = excluded.updated_by
    RETURNING (xmax = 0) AS created`;
  return row!.created;
}

/**
 * Deletes a trait's rule; returns whether there was one.
 *
 * @example
 * await deleteTraitRule(sql, 'country');
 */
export async function deleteTraitRule(sql: Sql, key: string): Promise<boolean> {
  const rows = await sql`DELETE FROM trait_rules WHERE key = ${key} RETURNING key`;
  return rows.length > 0;
}

/** Fold options whose `rules` follow the trait_rules table. */
export interface TraitRulesCache {
  /** Live options: `rules` is the last loaded set (reloaded in the background when older than the TTL). */
  readonly options: TraitOptions;
  /** Reloads the rules now (one small query; compiled again only when they changed). */
  refresh(): Promise<void>;
}

/** How long loaded rules serve without a reload where no one refreshes them (API processes). */
export const TRAIT_RULES_TTL_MS = 5_000;

/**
 * The rules cache of one process. Stage 2's worker refreshes it before each batch (exact); the
 * admin API after each rule write (exact in that process, so for imports it starts); anywhere else
 * the rules are at most {@link TRAIT_RULES_TTL_MS} old.
 *
 * @example
 * const cache = traitRulesCache(sql, { defaultCallingCode: '44' }, log);
 * await cache.refresh();
 * foldEvents(state, events, cache.options);
 */
export function traitRulesCache(
  sql: Sql,
  base: TraitOptions,
  log: Logger,
  ttlMs = TRAIT_RULES_TTL_MS,
): TraitRulesCache {
  let rules: TraitQualityRules | undefined;
  let signature = '';
  let loadedAt = Number.NEGATIVE_INFINITY;
  let loading = false;
  // Loads may overlap (the worker's and the API's): a load's result applies only when no load
  // started after it has applied already, so an older read never replaces a newer one.
  let started = 0;
  let applied = 0;
  const refresh = async () => {
    const seq = ++started;
    loading = true;
    try {
      const rows = await listTraitRules(sql);
      if (seq < applied) return;
      applied = seq;
      const next = JSON.stringify(rows.map((r) => [r.key, r.updatedAt.getTime()]));
      if (next !== signature) {
        rules = rows.length ? compileTraitRules(Object.fromEntries(rows.map((r) => [r.key, r.rule]))) : undefined;
        signature = next;
      }
      loadedAt = performance.now();
    } finally {
      if (seq === started) loading = false;
    }
  };
  const options: TraitOptions = {
    ...base,
    get rules() {
      if (performance.now() - loadedAt > ttlMs && !loading) {
        refresh().catch((err) => log.error('trait rules: reload failed; the last loaded rules stay', err));
      }
      return rules;
    },
  };
  return { options, refresh };
}
