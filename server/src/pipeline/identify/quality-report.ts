import { compileTraitRules, describeType, type TraitQualityRule } from '@cairn/core';
import type { PendingQuery, Row } from 'postgres';
import type { Sql, Tx } from '../../db/index.ts';
import { SEALED_PREFIX } from '../../pii/crypto.ts';
import type { Pii } from '../../pii/index.ts';

// The data-quality report over profile_traits (one row per profile and trait; merged-away and erased
// profiles have none). Cost, for P live profiles with T traits each (P·T rows):
// - counts (fill, types, sources, stale): one sequential pass over profile_traits grouped by
//   (key, type, derived) — no index is added to that hot table, so a single trait costs the same pass;
// - rule checks: a second pass over the values of traits that have a normalisation rule, grouped by
//   distinct value in SQL and streamed with a cursor; each distinct value (sealed ones opened) is run
//   through its rule again in JS.
//   A rule's steps are idempotent on their own output, so a stored value fails exactly when the rule
//   fails on it now: the count is exact, not estimated.
// With `samplePercent` both passes read a block sample (TABLESAMPLE SYSTEM, repeatable): counts are
// then scaled estimates and the report says so.

/** Report options. */
export interface QualityOptions {
  /** A trait is stale when its last update is before this. */
  staleBefore: Date;
  /** Read a sample of this percent of profile_traits' blocks (estimates), or null for exact counts. */
  samplePercent: number | null;
  /** Examples of failing values per trait. */
  examples: number;
  /** The server's calling code for phone rules without one (as the fold uses it). */
  defaultCallingCode?: string;
}

/** A failing value, as stored (the caller masks it for the reader), and one profile holding it. */
export interface FailedExample {
  profileId: string;
  key: string;
  value: unknown;
  reason: string;
}

/** The quality of one trait. */
export interface TraitQuality {
  key: string;
  /** Profiles with a value (derived ones included). */
  filled: number;
  /** `filled` over live profiles (0..1). */
  fillRate: number;
  /** Derived by a fill rule, not set by an event. */
  derived: number;
  /** Values by JSON type; a sensitive value sealed at rest counts as `sealed` unless opened (detail report). */
  types: Record<string, number>;
  /** Values last updated before `staleBefore`. */
  stale: number;
  oldestUpdate: string | null;
  newestUpdate: string | null;
  /** The trait's rule, or null. */
  rule: TraitQualityRule | null;
  /** With a normalisation rule: values it fails on (kept as received), and some of them. */
  failed: { count: number; examples: FailedExample[] } | null;
  /** With a normalisation rule: values it would change (stored before the rule, or by an older rule). */
  unnormalized: number | null;
}

/** The whole report. */
export interface QualityReport {
  profiles: number;
  staleBefore: string;
  exact: boolean;
  samplePercent: number | null;
  traits: TraitQuality[];
}

interface CountRow {
  key: string;
  type: string;
  derived: boolean;
  n: string;
  stale: string;
  oldest: Date;
  newest: Date;
}

/**
 * The quality of every trait (`keys` null) or of the given ones. `openTypes` opens sensitive values
 * in the rule pass so their real types are counted (the single-trait report does).
 *
 * @example
 * const r = await qualityReport(sql, pii, rules, null, { staleBefore, samplePercent: null, examples: 5 });
 */
export async function qualityReport(
  sql: Sql,
  pii: Pick<Pii, 'openValue' | 'isSensitive'>,
  rules: ReadonlyMap<string, TraitQualityRule>,
  keys: readonly string[] | null,
  options: QualityOptions & { openTypes?: boolean },
): Promise<QualityReport> {
  const pct = options.samplePercent;
  const scale = pct === null ? 1 : 100 / pct;
  // One snapshot for both passes: the counts and the rule checks describe the same data.
  return sql.begin('isolation level repeatable read read only', async (tx) => {
    // The planner cannot estimate how few (trait, type) groups there are and sorts the whole table
    // (spilling to disk: measured 2× slower on 1.6M rows); a hash aggregate holds a few groups.
    await tx`SET LOCAL enable_sort = off`;
    const from = pct === null ? tx`profile_traits` : tx`profile_traits TABLESAMPLE SYSTEM (${pct}) REPEATABLE (0)`;
    const only = keys ? tx`WHERE key = ANY(${keys as string[]}::text[])` : tx``;
    return build(tx, from, only);
  });

  async function build(tx: Tx, from: PendingQuery<Row[]>, only: PendingQuery<Row[]>): Promise<QualityReport> {
    const [[live], counts] = await Promise.all([
      tx<{ n: string }[]>`SELECT count(*) AS n FROM profiles WHERE merged_into IS NULL AND erased_at IS NULL`,
      // One pass: per trait, type and derived-or-not, the count, the stale count and the update range.
      tx<CountRow[]>`
      SELECT
        key,
        CASE
          WHEN jsonb_typeof(value) = 'string' AND starts_with(value #>> '{}', ${SEALED_PREFIX}) THEN 'sealed'
          ELSE jsonb_typeof(value)
        END AS type,
        source = 'derived' AS derived,
        count(*) AS n,
        count(*) FILTER (WHERE updated_at < ${options.staleBefore}) AS stale,
        min(updated_at) AS oldest,
        max(updated_at) AS newest
      FROM ${from}
      ${only}
      GROUP BY 1, 2, 3`,
    ]);
    const profiles = Number(live!.n);
    const byKey = new Map<string, TraitQuality>();
    const est = (n: number) => Math.round(n * scale);
    for (const r of counts) {
      let q = byKey.get(r.key);
      if (!q) {
        q = {
          key: r.key,
          filled: 0,
          fillRate: 0,
          derived: 0,
          types: {},
          stale: 0,
          oldestUpdate: null,
          newestUpdate: null,
          rule: rules.get(r.key) ?? null,
          failed: null,
          unnormalized: null,
        };
        byKey.set(r.key, q);
      }
      const n = Number(r.n);
      q.filled += n;
      if (r.derived) q.derived += n;
      q.types[r.type] = (q.types[r.type] ?? 0) + n;
      q.stale += Number(r.stale);
      const oldest = r.oldest.toISOString();
      const newest = r.newest.toISOString();
      if (!q.oldestUpdate || oldest < q.oldestUpdate) q.oldestUpdate = oldest;
      if (!q.newestUpdate || newest > q.newestUpdate) q.newestUpdate = newest;
    }
    // Traits with a rule but no value yet are listed too (fill rate 0).
    for (const [key, rule] of rules) {
      if ((keys === null || keys.includes(key)) && !byKey.has(key)) {
        byKey.set(key, {
          key,
          filled: 0,
          fillRate: 0,
          derived: 0,
          types: {},
          stale: 0,
          oldestUpdate: null,
          newestUpdate: null,
          rule,
          failed: null,
          unnormalized: null,
        });
      }
    }
    await checkRules(tx, pii, rules, byKey, from, options);
    const traits = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const q of traits) {
      q.filled = est(q.filled);
      q.derived = est(q.derived);
      q.stale = est(q.stale);
      for (const t of Object.keys(q.types)) q.types[t] = est(q.types[t]!);
      if (q.failed) q.failed.count = est(q.failed.count);
      if (q.unnormalized !== null) q.unnormalized = est(q.unnormalized);
      q.fillRate = profiles ? Math.min(1, q.filled / profiles) : 0;
    }
    return {
      profiles,
      staleBefore: options.staleBefore.toISOString(),
      exact: pct === null,
      samplePercent: pct,
      traits,
    };
  }
}

const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);

// The rule pass: each stored value of a trait with normalisation steps (or, with openTypes, a
// sensitive trait) run through its rule again; sealed values are opened first.
async function checkRules(
  sql: Tx,
  pii: Pick<Pii, 'openValue' | 'isSensitive'>,
  rules: ReadonlyMap<string, TraitQualityRule>,
  byKey: Map<string, TraitQuality>,
  from: PendingQuery<Row[]>,
  options: QualityOptions & { openTypes?: boolean },
): Promise<void> {
  const compiled = compileTraitRules(Object.fromEntries(rules));
  const checked = [...byKey.keys()].filter((k) => (rules.get(k)?.normalize.length ?? 0) > 0);
  const opened = options.openTypes ? [...byKey.keys()].filter((k) => pii.isSensitive(k)) : [];
  const scan = [...new Set([...checked, ...opened])];
  if (!scan.length) return;
  for (const k of checked) {
    const q = byKey.get(k)!;
    q.failed = { count: 0, examples: [] };
    q.unnormalized = 0;
  }
  for (const k of opened) byKey.get(k)!.types = {};
  // Each distinct value once, with how many profiles hold it and one of them: a trait's values repeat
  // (countries, plans, dates), so the rule runs far fewer times than there are rows. Sealed values
  // never repeat (a fresh IV each): those are opened and checked one by one.
  await sql<{ key: string; value: unknown; n: string; example: string }[]>`
    SELECT key, value, count(*) AS n, min(profile_id::text) AS example
    FROM ${from}
    WHERE key = ANY(${scan}::text[])
    GROUP BY key, value`.cursor(10_000, (rows) => {
    for (const r of rows) {
      const q = byKey.get(r.key)!;
      const n = Number(r.n);
      const value = pii.openValue(r.value);
      if (options.openTypes && pii.isSensitive(r.key)) {
        const t = describeType(value);
        q.types[t] = (q.types[t] ?? 0) + n;
      }
      if (!q.failed) continue;
      const out = compiled.normalize(r.key, value, options.defaultCallingCode);
      if (!out) continue;
      if (!out.ok) {
        q.failed.count += n;
        if (q.failed.examples.length < options.examples) {
          q.failed.examples.push({ profileId: r.example, key: r.key, value, reason: out.reason });
        }
      } else if (!same(out.value, value)) q.unnormalized! += n;
    }
  });
}
