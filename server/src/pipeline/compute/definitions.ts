import {
  type ComputedTraitDefinition,
  computedKindOf,
  emptyDependencies,
  type PreferenceDefinition,
  type Rule,
  type RuleDependencies,
  ruleDependencies,
  type ScoreDefinition,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';

/** A rule-kept set of profiles (an audience, a dynamic tag), or a computed trait. */
export type Definition =
  | { kind: 'audience' | 'tag'; key: string; name: string; rule: Rule; deps: RuleDependencies }
  | { kind: 'computed'; key: string; name: string; computed: ComputedTraitDefinition; deps: RuleDependencies };

/** `audience:key` / `tag:key` / `computed:key`: the node names of the dependency graph. */
export function nodeName(kind: Definition['kind'], key: string): string {
  return `${kind}:${key}`;
}

/** What a computed trait reads: its events (all events when it names none), and time for windows. */
export function computedDependencies(def: ComputedTraitDefinition): RuleDependencies {
  const deps = emptyDependencies();
  const kind = computedKindOf(def);
  if (kind) {
    // Preferences and scores (packages/core preferences.ts, scores.ts) say what they read.
    const d = kind.dependencies(def as PreferenceDefinition | ScoreDefinition);
    for (const e of d.events) deps.events.add(e);
    for (const t of d.traits ?? []) deps.traits.add(t);
    for (const k of d.computed ?? []) deps.computed.add(k);
    deps.timeBound = d.timeBound;
    return deps;
  }
  const c = def as Exclude<ComputedTraitDefinition, PreferenceDefinition | ScoreDefinition>;
  if (c.kind === 'aggregate' || c.event) deps.events.add(c.kind === 'aggregate' ? c.event : c.event!);
  else if (c.kind === 'rfm') deps.events.add('Order Completed');
  else deps.events.add('*');
  deps.timeBound = c.kind === 'rfm' || c.kind === 'lifecycle' || (!!c.within && 'last' in c.within);
  return deps;
}

/**
 * Enabled audiences and dynamic tags, in dependency order (a definition after those it reads).
 *
 * @example
 * const defs = await loadDefinitions(sql);
 */
export async function loadDefinitions(sql: Tx): Promise<Definition[]> {
  const rows = await sql<{ kind: 'audience' | 'tag' | 'computed'; key: string; name: string; rule: unknown }[]>`
    SELECT 'audience' AS kind, key, name, rule FROM audiences WHERE enabled
    UNION ALL
    SELECT 'tag', key, name, rule FROM tags WHERE rule IS NOT NULL
    UNION ALL
    SELECT 'computed', key, name, definition FROM computed_traits
    -- A clustering's trait is written by its runs (clustering.ts), not evaluated here.
    WHERE definition->>'kind' IS DISTINCT FROM 'cluster'
    ORDER BY 1, 2`;
  const defs: Definition[] = rows.map((r) =>
    r.kind === 'computed'
      ? {
          kind: 'computed',
          key: r.key,
          name: r.name,
          computed: r.rule as ComputedTraitDefinition,
          deps: computedDependencies(r.rule as ComputedTraitDefinition),
        }
      : { kind: r.kind, key: r.key, name: r.name, rule: r.rule as Rule, deps: ruleDependencies(r.rule as Rule) },
  );
  return dependencyOrder(defs).order;
}

/** The definitions a definition reads directly. */
export function readsOf(d: Pick<Definition, 'deps'>): string[] {
  return [
    ...[...d.deps.audiences].map((k) => nodeName('audience', k)),
    ...[...d.deps.tags].map((k) => nodeName('tag', k)),
    ...[...d.deps.computed].map((k) => nodeName('computed', k)),
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
  if (deps.events.has('*')) return true;
  // Computed traits change in the same pass and cascade to their readers; traits and the rest may
  // change with any event.
  if (deps.traits.size || deps.accountTraits.size || deps.consent || deps.subscriptions) return true;
  for (const e of deps.events) if (eventNames.has(e)) return true;
  // Static tags change through the API (and later flows), recorded as these events.
  if (deps.tags.size && (eventNames.has('tag.added') || eventNames.has('tag.removed'))) return true;
  return false;
}
