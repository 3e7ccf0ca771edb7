import { describeRule, type Rule, ruleDependencies, validateRule } from '@cairn/core';
import type { Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { blindEqualities, sealedUseInRule } from '../pii/rules.ts';
import {
  allRules,
  compilePattern,
  dependencyOrder,
  evaluateRule,
  nodeName,
  readsOf,
} from '../pipeline/compute/index.ts';

/**
 * Checks a rule submitted for a definition (`kind:key`): structure and values (400 naming the field),
 * references to tags and audiences that exist (400), no cycle through other definitions (400), and
 * that Postgres accepts it (a regex it cannot compile is a 400, not a 500 at evaluation), and that it
 * compares no encrypted trait or property in a way ciphertext cannot answer (400).
 *
 * @example
 * Equality on an encrypted trait is rewritten to compare blind indexes (see blindEqualities).
 *
 * @example
 * const rule = await checkRule(sql, body.rule, { kind: 'audience', key: 'vip' }, pii);
 */
export async function checkRule(
  sql: Tx,
  input: unknown,
  self: { kind: 'audience' | 'tag'; key: string } | null,
  pii: Pick<Pii, 'isSensitive' | 'traitIndex'>,
): Promise<Rule> {
  const v = validateRule(blindEqualities(input, pii));
  if (!v.ok) {
    const first = v.issues[0]!;
    throw apiError(400, 'invalid_rule', `rule${first.path ? `.${first.path}` : ''}: ${first.message}`, v.issues);
  }
  const sealed = sealedUseInRule(v.rule, pii.isSensitive);
  if (sealed) throw apiError(400, 'invalid_rule', `rule.${sealed.path}: ${sealed.message}`, [sealed]);
  const existing = await allRules(sql);
  const names = new Set(existing.map((d) => nodeName(d.kind, d.key)));
  const deps = ruleDependencies(v.rule);
  for (const ref of readsOf({ deps })) {
    if (!names.has(ref) && (!self || ref !== nodeName(self.kind, self.key)))
      throw apiError(400, 'invalid_rule', `rule refers to ${ref.replace(':', ' ')}, which does not exist`);
  }
  const defs = existing
    .filter((d) => d.rule && (!self || nodeName(d.kind, d.key) !== nodeName(self.kind, self.key)))
    .map((d) => ({ kind: d.kind, key: d.key, deps: ruleDependencies(d.rule!) }));
  // (Computed traits read no other definition: they cannot close a cycle.)
  if (self) defs.push({ kind: self.kind, key: self.key, deps });
  else defs.push({ kind: 'audience', key: '$preview', deps });
  const { cycle } = dependencyOrder(defs);
  if (cycle) {
    // Told from the definition being saved: "audience a → audience b → audience a".
    const me = self ? nodeName(self.kind, self.key) : nodeName('audience', '$preview');
    const loop = (cycle as string[]).slice(0, -1);
    const start = Math.max(0, loop.indexOf(me));
    const told = [...loop.slice(start), ...loop.slice(0, start), loop[start]!];
    throw apiError(400, 'invalid_rule', `rule makes a cycle: ${told.map((c) => c.replace(':', ' ')).join(' → ')}`);
  }
  try {
    // Postgres compiles a pattern when it first uses it: try each one now, on an empty string.
    for (const pattern of patternsOf(v.rule)) await compilePattern(sql, pattern);
    // The nil profile: an empty scope the database still has to plan and type-check.
    await evaluateRule(sql, v.rule, { now: new Date(), profileIds: ['00000000-0000-0000-0000-000000000000'] });
  } catch (err) {
    // Only Postgres refusing the rule is the client's fault; a lost connection or a server fault is a
    // 500 whose message stays in the log.
    if (!refusedByPostgres(err)) throw err;
    throw apiError(400, 'invalid_rule', `rule refused by the database: ${(err as Error).message}`);
  }
  return v.rule;
}

// A SQLSTATE about the statement (a pattern that does not compile, a comparison that does not
// type-check), not about the connection (08), resources (53), operator intervention (57), the system
// (58), an internal error (XX) or a table missing (42P01: the schema, never the rule, is at fault).
function refusedByPostgres(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? '');
  return /^[0-9A-Z]{5}$/.test(code) && !/^(08|53|57|58|XX)/.test(code) && code !== '42P01';
}

function patternsOf(rule: Rule): string[] {
  const out: string[] = [];
  const walk = (r: Rule) => {
    if (r.op === 'and' || r.op === 'or') r.rules.forEach(walk);
    else if (r.op === 'not') walk(r.rule);
    else {
      if ('cmp' in r && r.cmp === 'regex') out.push(r.value);
      if ('where' in r) for (const f of r.where ?? []) if (f.cmp === 'regex') out.push(f.value);
    }
  };
  walk(rule);
  return out;
}

export { describeRule };
