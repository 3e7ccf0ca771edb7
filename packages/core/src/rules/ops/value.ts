import type { AccountRule, ComputedRule, TraitIndexRule, TraitRule } from '../ast.ts';
import { col, sql } from '../sql.ts';
import { comparisonSql, dateEdges, describeComparison } from './compare.ts';
import type { Operator } from './types.ts';

const TIME_CMPS = new Set(['within_last', 'within_next', 'older_than', 'anniversary_within']);

/** A profile trait (`profile_traits`). */
export const trait: Operator<TraitRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT t.profile_id AS id, t.value AS v
      FROM profile_traits t
      JOIN scope s ON s.id = t.profile_id
      WHERE t.key = ${r.trait}::text`);
    const v = col(a, 'v');
    return { truth: sql`coalesce(${comparisonSql(v, r, ctx.nowMs)}, false)`, value: v };
  },
  dependencies(r, deps) {
    deps.traits.add(r.trait);
    if (TIME_CMPS.has(r.cmp)) deps.timeBound = true;
  },
  edges: (r, since, now) =>
    dateEdges(sql`SELECT profile_id AS id, value AS v FROM profile_traits WHERE key = ${r.trait}::text`, r, since, now),
  describe: (r) => `${r.trait} ${describeComparison(r)}`,
};

/** A trait encrypted at rest, matched by the blind index stored beside it (`profile_traits.blind`). */
export const traitIndex: Operator<TraitIndexRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT t.profile_id AS id, t.blind AS v
      FROM profile_traits t
      JOIN scope s ON s.id = t.profile_id
      WHERE t.key = ${r.trait}::text`);
    const v = col(a, 'v');
    return { truth: sql`coalesce(${v} = ANY(${r.in}::text[]), false)`, value: v };
  },
  dependencies(r, deps) {
    deps.traits.add(r.trait);
  },
  describe: (r) =>
    `${r.trait} is ${r.in.length === 1 ? 'a given value' : `one of ${r.in.length} given values`} (compared encrypted)`,
};

/** A computed trait (`computed_trait_values`), kept by stage 3 itself. */
export const computed: Operator<ComputedRule> = {
  compile(r, ctx) {
    // `rfm.segment`: the key, then a path into an object value.
    const [key, ...path] = r.trait.split('.');
    const a = ctx.relation(sql`
      SELECT c.profile_id AS id, ${path.length ? sql`c.value #> ${path}::text[]` : sql`c.value`} AS v
      FROM computed_trait_values c
      JOIN scope s ON s.id = c.profile_id
      WHERE c.key = ${key}::text`);
    const v = col(a, 'v');
    return { truth: sql`coalesce(${comparisonSql(v, r, ctx.nowMs)}, false)`, value: v };
  },
  dependencies(r, deps) {
    deps.computed.add(r.trait.split('.')[0]!);
    if (TIME_CMPS.has(r.cmp)) deps.timeBound = true;
  },
  edges: (r, since, now) =>
    dateEdges(
      sql`SELECT profile_id AS id, ${
        r.trait.includes('.') ? sql`value #> ${r.trait.split('.').slice(1)}::text[]` : sql`value`
      } AS v FROM computed_trait_values WHERE key = ${r.trait.split('.')[0]}::text`,
      r,
      since,
      now,
    ),
  describe: (r) => `computed ${r.trait} ${describeComparison(r)}`,
};

/** A trait of any account (group) the profile belongs to. */
export const account: Operator<AccountRule> = {
  compile(r, ctx) {
    const x = sql`x.value`;
    const a = ctx.relation(sql`
      SELECT pa.profile_id AS id,
        bool_or(coalesce(${comparisonSql(x, r, ctx.nowMs)}, false)) AS v,
        jsonb_agg(x.value) AS vals
      FROM profile_accounts pa
      JOIN scope s ON s.id = pa.profile_id
      LEFT JOIN account_traits x ON x.account_id = pa.account_id AND x.key = ${r.trait}::text
      GROUP BY pa.profile_id`);
    return {
      truth: sql`coalesce(${col(a, 'v')}, false)`,
      value: col(a, 'vals'),
    };
  },
  dependencies(r, deps) {
    deps.accountTraits.add(r.trait);
    if (TIME_CMPS.has(r.cmp)) deps.timeBound = true;
  },
  edges: (r, since, now) =>
    dateEdges(
      sql`SELECT pa.profile_id AS id, x.value AS v FROM account_traits x JOIN profile_accounts pa ON pa.account_id = x.account_id WHERE x.key = ${r.trait}::text`,
      r,
      since,
      now,
    ),
  describe: (r) => `an account's ${r.trait} ${describeComparison(r)}`,
};
