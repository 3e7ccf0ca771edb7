/**
 * Whether conditions on one value can all hold at once: an event's `where` conditions and those of another
 * flow's trigger on the same event, or the leaves two entry rules both require. Decided by trying
 * witnesses (values that would satisfy them) with the rule language's own `compareValue`, so `=` on
 * text ignores case and numbers compare as numbers exactly as the engine matches them. When no finite set
 * of witnesses settles it (text patterns, relative dates), the answer is "can hold": a conflict check
 * must not hide a conflict it cannot rule out.
 */
import type { Comparison, EventCondition, Rule, Scalar } from '../rules/ast.ts';
import { compareValue } from '../rules/evaluate.ts';

/** A comparison on one value, or its negation. */
export type Leaf = Comparison & { negated?: boolean };

const ORDERING = new Set(['=', '!=', '<', '<=', '>', '>=', 'between']);
const PRESENCE = new Set(['exists', 'is_empty']);

/** Candidate values that settle the leaves, or undefined when none do (assume they can hold). */
function witnesses(leaves: readonly Leaf[]): unknown[] | undefined {
  // A positive `=` or `in`: the value is one of their operands, up to case and number form (`3` and
  // `'3.0'` are both the text "3.0"): every operand of every such leaf is tried.
  const pinned = leaves.flatMap((l) =>
    !l.negated && (l.cmp === '=' || l.cmp === 'in') ? ([] as Scalar[]).concat(l.value) : [],
  );
  if (pinned.length) return pinned;
  if (leaves.every((l) => PRESENCE.has(l.cmp))) return [undefined, '', 'x'];
  // Numbers only: the operands, the points between them and beyond them cover every interval.
  const numeric = leaves.every(
    (l) =>
      PRESENCE.has(l.cmp) ||
      (ORDERING.has(l.cmp) &&
        'value' in l &&
        (Array.isArray(l.value) ? l.value.every((v) => typeof v === 'number') : typeof l.value === 'number')),
  );
  if (!numeric) return undefined;
  const points = [
    ...new Set(leaves.flatMap((l) => ('value' in l ? ([] as Scalar[]).concat(l.value as Scalar) : [])) as number[]),
  ].sort((a, b) => a - b);
  if (!points.length) return [undefined, '', 'x'];
  const between = points.slice(1).flatMap((p, i) => {
    const q = points[i]!;
    return [q + (p - q) / 3, q + (2 * (p - q)) / 3];
  });
  return [...points, ...between, points[0]! - 1, points.at(-1)! + 1, undefined];
}

/**
 * Whether some value satisfies every leaf (negated leaves must not hold).
 *
 * @example
 * canAllHold([{ cmp: '=', value: 'pro' }, { cmp: 'in', value: ['free', 'team'] }], Date.now()); // false
 * canAllHold([{ cmp: '>', value: 10 }, { cmp: '<', value: 20 }], Date.now()); // true
 */
export function canAllHold(leaves: readonly Leaf[], nowMs: number): boolean {
  if (leaves.length < 2) return true;
  const candidates = witnesses(leaves);
  if (candidates === undefined) return true;
  return candidates.some((v) => leaves.every((l) => compareValue(v, l, nowMs) !== (l.negated === true)));
}

/** Leaves by the value they read: `properties.plan`, `context.locale`, `trait:plan`, `audience:vip`. */
export type LeafGroups = Map<string, Leaf[]>;

const add = (groups: LeafGroups, key: string, leaf: Leaf) => groups.set(key, [...(groups.get(key) ?? []), leaf]);

const comparisonOf = (c: object): Comparison => {
  const { property: _p, field: _f, op: _o, trait: _t, ...rest } = c as Record<string, unknown>;
  return rest as unknown as Comparison;
};

/**
 * An event trigger's conditions grouped by the field they read (properties under `properties.`).
 *
 * @example
 * whereGroups([{ property: 'plan', cmp: '=', value: 'pro' }]); // Map { 'properties.plan' => [{ cmp: '=', value: 'pro' }] }
 */
export function whereGroups(where: readonly EventCondition[] = [], groups: LeafGroups = new Map()): LeafGroups {
  for (const c of where) {
    const negated = 'not' in c;
    const inner = 'not' in c ? c.not : c;
    const key = 'property' in inner ? `properties.${inner.property}` : inner.field;
    add(groups, key, { ...comparisonOf(inner), ...(negated ? { negated } : {}) });
  }
  return groups;
}

/**
 * The leaves a profile rule requires of everyone it admits (the leaves of its top-level `and`, and
 * negated leaves), grouped by what they read. `or` branches require nothing in particular: skipped.
 *
 * @example
 * requiredLeaves({ op: 'and', rules: [{ op: 'in_audience', audience: 'vip' }] }); // Map { 'audience:vip' => [{ cmp: 'exists' }] }
 */
export function requiredLeaves(rule: Rule | undefined, groups: LeafGroups = new Map(), negated = false): LeafGroups {
  if (!rule) return groups;
  const leaf = (key: string, c: Comparison) => add(groups, key, { ...c, ...(negated ? { negated } : {}) });
  switch (rule.op) {
    case 'and':
      if (!negated) for (const r of rule.rules) requiredLeaves(r, groups);
      break;
    case 'not':
      requiredLeaves(rule.rule, groups, !negated);
      break;
    case 'trait':
    case 'computed':
    case 'account':
      leaf(`${rule.op}:${rule.trait}`, comparisonOf(rule));
      break;
    case 'in_audience':
      leaf(`audience:${rule.audience}`, { cmp: 'exists' });
      break;
    case 'has_tag':
      leaf(`tag:${rule.tag}`, { cmp: 'exists' });
      break;
    default:
      break;
  }
  return groups;
}

/**
 * The first key whose leaves, from both groups together, cannot all hold; undefined when all can.
 *
 * @example
 * exclusiveKey(whereGroups(a.where), whereGroups(b.where), Date.now()); // 'properties.plan'
 */
export function exclusiveKey(a: LeafGroups, b: LeafGroups, nowMs: number): string | undefined {
  for (const [key, leaves] of a) {
    const other = b.get(key);
    if (other && !canAllHold([...leaves, ...other], nowMs)) return key;
  }
  return undefined;
}
