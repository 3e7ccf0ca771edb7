import type { Rule } from './ast.ts';
import { OPERATORS } from './ops/index.ts';
import type { CompileContext, CompiledNode, RuleDependencies } from './ops/types.ts';
import { type Fragment, ident, join, sql } from './sql.ts';

export type { CompileContext, CompiledNode, RuleDependencies } from './ops/types.ts';

/** A rule compiled for one instant. */
export interface CompiledRule {
  rule: Rule;
  nodes: CompiledNode[];
  /** The ids of members among the live profiles (all, or `ids`). */
  members(ids?: readonly string[]): Fragment;
  /** One row per profile in scope: id and member (true/false). */
  truth(ids?: readonly string[]): Fragment;
  /** One row for the profile: `n<i>` truth and `v<i>` value (jsonb) of every node. */
  explain(profileId: string): Fragment;
}

/**
 * Compiles a (validated) rule to SQL for the instant `now`. The same statement runs over every live
 * profile or over a list of ids: full recomputes and incremental updates cannot disagree.
 *
 * @example
 * const c = compileRule({ op: 'trait', trait: 'plan', cmp: '=', value: 'pro' }, { now: new Date() });
 * const { text, values } = c.members().render();
 */
export function compileRule(rule: Rule, options: { now: Date }): CompiledRule {
  const relations: { alias: string; body: Fragment }[] = [];
  const nodes: CompiledNode[] = [];
  const ctx: CompileContext = {
    now: sql`${options.now.toISOString()}::timestamptz`,
    nowMs: options.now.getTime(),
    relation(body) {
      const alias = `r${relations.length + 1}`;
      relations.push({ alias, body });
      return alias;
    },
    child: (r, path) => compileNode(r, path),
  };
  function compileNode(r: Rule, path: string): Fragment {
    const op = OPERATORS[r.op];
    const node: CompiledNode = { path, rule: r, truth: sql`false` };
    nodes.push(node);
    const compiled = op.compile(r as never, ctx, path);
    node.truth = sql`(${compiled.truth})`;
    node.value = compiled.value;
    return node.truth;
  }
  const root = compileNode(rule, '');

  function build(select: Fragment, ids: readonly string[] | undefined, where?: Fragment): Fragment {
    const scope = ids
      ? sql`SELECT p.id FROM profiles p WHERE p.id = ANY(${[...ids]}::uuid[]) AND p.merged_into IS NULL`
      : sql`SELECT p.id FROM profiles p WHERE p.merged_into IS NULL`;
    const ctes = [
      sql`scope AS MATERIALIZED (${scope})`,
      ...relations.map((r) => sql`${ident(r.alias)} AS (${r.body})`),
    ];
    const joins = relations.map((r) => sql`\nLEFT JOIN ${ident(r.alias)} ON ${ident(r.alias)}.id = s.id`);
    return sql`WITH ${join(ctes, sql`,\n`)}\nSELECT ${select}\nFROM scope s${join(joins, sql``)}${where ? sql`\nWHERE ${where}` : sql``}`;
  }
  return {
    rule,
    nodes,
    members: (ids) => build(sql`s.id AS id`, ids, root),
    truth: (ids) => build(sql`s.id AS id, ${root} AS member`, ids),
    explain: (profileId) =>
      build(
        join(
          nodes.map((n, i) =>
            n.value
              ? sql`${n.truth} AS ${ident(`n${i}`)}, to_jsonb(${n.value}) AS ${ident(`v${i}`)}`
              : sql`${n.truth} AS ${ident(`n${i}`)}`,
          ),
          sql`, `,
        ),
        [profileId],
      ),
  };
}

/**
 * Everything a rule reads, for deciding which profile changes must re-evaluate it.
 *
 * @example
 * ruleDependencies(rule).events; // Set { 'Order Completed' }
 */
export function ruleDependencies(rule: Rule): RuleDependencies {
  const deps = emptyDependencies();
  const walk = (r: Rule) => {
    OPERATORS[r.op].dependencies(r as never, deps);
    if (r.op === 'and' || r.op === 'or') r.rules.forEach(walk);
    if (r.op === 'not') walk(r.rule);
  };
  walk(rule);
  return deps;
}

/**
 * Dependencies of nothing, to fill in.
 *
 * @example
 * const deps = emptyDependencies(); deps.events.add('Order Completed');
 */
export function emptyDependencies(): RuleDependencies {
  return {
    events: new Set(),
    traits: new Set(),
    computed: new Set(),
    accountTraits: new Set(),
    tags: new Set(),
    audiences: new Set(),
    consent: false,
    subscriptions: false,
    timeBound: false,
  };
}

/**
 * The SQL that finds profiles whose truth may have changed only because time moved from `since` to
 * `now` (a window edge or a date boundary passed): the sweep re-evaluates just those. Null when the
 * rule does not depend on time.
 *
 * @example
 * const candidates = ruleEdges(rule, new Date(Date.now() - 30_000), new Date());
 */
export function ruleEdges(rule: Rule, since: Date, now: Date): Fragment | null {
  const parts: Fragment[] = [];
  const walk = (r: Rule) => {
    const e = OPERATORS[r.op].edges?.(r as never, since.getTime(), now.getTime());
    if (e) parts.push(e);
    if (r.op === 'and' || r.op === 'or') r.rules.forEach(walk);
    if (r.op === 'not') walk(r.rule);
  };
  walk(rule);
  if (!parts.length) return null;
  return sql`SELECT DISTINCT id::text AS id FROM (${join(parts, sql`\nUNION ALL\n`)}) edges`;
}

/**
 * The rule in words, for people reading an audience.
 *
 * @example
 * describeRule({ op: 'trait', trait: 'plan', cmp: '=', value: 'pro' }); // 'plan is "pro"'
 */
export function describeRule(rule: Rule): string {
  return OPERATORS[rule.op].describe(rule as never, describeRule);
}
