import { type Rule, type RuleDependencies, ruleDependencies } from '@cairn/core';
import type { Tx } from '../../db/index.ts';

/** A rule-kept set of profiles: an audience, or a dynamic tag. */
export interface Definition {
  kind: 'audience' | 'tag';
  key: string;
  name: string;
  rule: Rule;
  deps: RuleDependencies;
}

/** `audience:key` / `tag:key`: the node names of the dependency graph. */
export function nodeName(kind: Definition['kind'], key: string): string {
  return `${kind}:${key}`;
}

/**
 * Enabled audiences and dynamic tags, in dependency order (a definition after those it reads).
 *
 * @example
 * const defs = await loadDefinitions(sql);
 */
export async function loadDefinitions(sql: Tx): Promise<Definition[]> {
  const rows = await sql<{ kind: 'audience' | 'tag'; key: string; name: string; rule: Rule }[]>`
    SELECT 'audience' AS kind, key, name, rule FROM audiences WHERE enabled
    UNION ALL
    SELECT 'tag', key, name, rule FROM tags WHERE rule IS NOT NULL
    ORDER BY 1, 2`;
  const defs = rows.map((r) => ({ ...r, deps: ruleDependencies(r.rule) }));
  return dependencyOrder(defs).order;
}

/** The definitions a definition reads directly. */
export function readsOf(d: Pick<Definition, 'deps'>): string[] {
  return [
    ...[...d.deps.audiences].map((k) => nodeName('audience', k)),
    ...[...d.deps.tags].map((k) => nodeName('tag', k)),
  ];
}

/**
 * Topological order of definitions, or the first cycle found (a rule reading itself through others).
 * References to missing definitions are allowed (they read as empty) and ignored here.
 *
 * @example
 * const { order, cycle } = dependencyOrder(defs);
 */
export function dependencyOrder<D extends Pick<Definition, 'kind' | 'key' | 'deps'>>(
  defs: readonly D[],
): { order: D[]; cycle: string[] | null } {
  const byName = new Map(defs.map((d) => [nodeName(d.kind, d.key), d]));
  const state = new Map<string, 'visiting' | 'done'>();
  const order: D[] = [];
  let cycle: string[] | null = null;
  const visit = (name: string, trail: string[]) => {
    if (cycle) return;
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      cycle = [...trail.slice(trail.indexOf(name)), name];
      return;
    }
    const d = byName.get(name);
    if (!d) return;
    state.set(name, 'visiting');
    for (const dep of readsOf(d)) visit(dep, [...trail, name]);
    state.set(name, 'done');
    order.push(d);
  };
  for (const name of byName.keys()) visit(name, []);
  return { order: cycle ? [] : order, cycle };
}

/**
 * Whether a batch of changes can change a definition: it reads one of the events seen, or profile
 * state that any event may change (traits, consent, subscriptions, accounts, computed traits).
 *
 * @example
 * if (affectedBy(def, new Set(['Order Completed']))) ...
 */
export function affectedBy(d: Definition, eventNames: ReadonlySet<string>): boolean {
  const deps = d.deps;
  if (deps.traits.size || deps.accountTraits.size || deps.computed.size || deps.consent || deps.subscriptions)
    return true;
  for (const e of deps.events) if (eventNames.has(e)) return true;
  // Static tags change through the API (and later flows), recorded as these events.
  if (deps.tags.size && (eventNames.has('tag.added') || eventNames.has('tag.removed'))) return true;
  return false;
}
