import { type CompiledNode, compileRule, type Fragment, type Rule } from '@cairn/core';
import type { Tx } from '../../db/index.ts';

/**
 * Runs a fragment built by the rule compiler. The compiler lives in packages/core, which has no
 * database driver, so it renders parameterised text itself: `unsafe` is the escape hatch postgres.js
 * names for that. Every value is still a bound parameter; identifiers are compiler-made.
 *
 * @example
 * const rows = await runFragment<{ id: string }>(sql, compileRule(rule, { now }).members());
 */
export async function runFragment<T>(sql: Tx, fragment: Fragment): Promise<T[]> {
  const { text, values } = fragment.render();
  return (await sql.unsafe(text, values as never[])) as unknown as T[];
}

/**
 * The live profiles (all, or among `profileIds`) satisfying a rule at `now`.
 *
 * @example
 * const members = await evaluateRule(sql, { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' }, { now: new Date() });
 */
export async function evaluateRule(
  sql: Tx,
  rule: Rule,
  opts: { now: Date; profileIds?: readonly string[] },
): Promise<Set<string>> {
  if (opts.profileIds && !opts.profileIds.length) return new Set();
  const rows = await runFragment<{ id: string }>(sql, compileRule(rule, { now: opts.now }).members(opts.profileIds));
  return new Set(rows.map((r) => r.id));
}

/** The truth of every profile in scope (members and non-members), for diffing memberships. */
export async function truthOf(
  sql: Tx,
  rule: Rule,
  opts: { now: Date; profileIds?: readonly string[] },
): Promise<Map<string, boolean>> {
  if (opts.profileIds && !opts.profileIds.length) return new Map();
  const rows = await runFragment<{ id: string; member: boolean }>(
    sql,
    compileRule(rule, { now: opts.now }).truth(opts.profileIds),
  );
  return new Map(rows.map((r) => [r.id, r.member]));
}

/** One node of an explanation: the rule node, its truth for the profile and the value that decided it. */
export interface ExplainedNode {
  rule: Rule;
  result: boolean;
  value?: unknown;
  description: string;
  children?: ExplainedNode[];
}

/**
 * Why a profile is in or out: the rule tree with each node's truth value and deciding value,
 * computed by the same SQL as membership (one statement selecting every node).
 *
 * @example
 * const tree = await explainRule(sql, rule, { now, profileId });
 */
export async function explainRule(
  sql: Tx,
  rule: Rule,
  opts: { now: Date; profileId: string; describe: (r: Rule) => string },
): Promise<ExplainedNode | null> {
  const compiled = compileRule(rule, { now: opts.now });
  const [row] = await runFragment<Record<string, unknown>>(sql, compiled.explain(opts.profileId));
  if (!row) return null;
  const byPath = new Map<string, { node: CompiledNode; index: number }>(
    compiled.nodes.map((node, index) => [node.path, { node, index }]),
  );
  const build = (path: string): ExplainedNode => {
    const { node, index } = byPath.get(path)!;
    const out: ExplainedNode = {
      rule: node.rule,
      result: row[`n${index}`] === true,
      description: opts.describe(node.rule),
    };
    if (node.value) out.value = row[`v${index}`] ?? null;
    const prefix = path ? `${path}.` : '';
    if (node.rule.op === 'and' || node.rule.op === 'or')
      out.children = node.rule.rules.map((_, i) => build(`${prefix}rules.${i}`));
    else if (node.rule.op === 'not') out.children = [build(`${prefix}rule`)];
    if (out.children) out.rule = { op: node.rule.op } as Rule;
    return out;
  };
  return build('');
}
