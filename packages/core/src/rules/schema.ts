import { z } from 'zod';
import { issueMessage, typeInWords } from '../issues.ts';
import type { Rule } from './ast.ts';

const KEY = /^[a-z][a-z0-9_]{0,63}$/;
// The date form of the README (and of the SQL function cairn_ts): checked by parseIsoDate.
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** The limits a rule must respect (so a rule can never be made into a denial of service). */
export const RULE_LIMITS = { depth: 12, nodes: 200, inValues: 1000, days: 36_600, regexLength: 200 } as const;

const scalar = z.union([z.string().max(1000), z.number().finite(), z.boolean()]);
const days = z.number().int().min(0).max(RULE_LIMITS.days);
const DATE_FORM = 'an ISO-8601 date: YYYY-MM-DD[THH:MM[:SS[.fff]][Z|±HH:MM]]';
// The pattern also lands in the JSON Schema (ruleJsonSchema); the refinement adds what a pattern
// cannot check (2026-02-30 is no date) and only runs once the pattern matched.
const isoDate = z
  .string()
  .regex(ISO_DATE, DATE_FORM)
  .refine((v) => parseIsoDate(v) !== undefined, DATE_FORM);

const BOUNDS = 'expected two bounds: [low, high]';
const comparisonShapes = {
  eq: z.object({ cmp: z.enum(['=', '!=', '<', '<=', '>', '>=']), value: scalar }),
  between: z.object({ cmp: z.literal('between'), value: z.tuple([scalar, scalar], { error: BOUNDS }) }),
  in: z.object({ cmp: z.literal('in'), value: z.array(scalar).min(1).max(RULE_LIMITS.inValues) }),
  text: z.object({ cmp: z.enum(['contains', 'starts_with', 'regex']), value: z.string().min(1).max(1000) }),
  presence: z.object({ cmp: z.enum(['exists', 'is_empty']) }),
  dates: z.object({ cmp: z.enum(['within_last', 'within_next', 'older_than', 'anniversary_within']), days }),
};
const comparisonOptions = Object.values(comparisonShapes);
const cmpValues = (shape: { shape: { cmp: z.ZodEnum | z.ZodLiteral } }): string[] => {
  const cmp = shape.shape.cmp;
  return 'options' in cmp ? (cmp.options as string[]) : [...(cmp.values as Set<string>)];
};
/** Every comparison a trait, computed trait, account trait or property filter takes, in the README's order. */
export const COMPARISONS: readonly string[] = Object.freeze(comparisonOptions.flatMap(cmpValues));

const numeric = [
  z.object({ cmp: z.enum(['=', '!=', '<', '<=', '>', '>=']), value: z.number().finite() }),
  z.object({
    cmp: z.literal('between'),
    value: z.tuple([z.number().finite(), z.number().finite()], { error: BOUNDS }),
  }),
];
/** The comparisons an aggregate takes (it compares numbers). */
export const AGGREGATE_COMPARISONS: readonly string[] = Object.freeze(numeric.flatMap(cmpValues));

/** A dot-separated path (a property inside `properties`, or a field from the event's root). */
export const pathSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated property path');
const path = pathSchema;
const name = z.string().min(1).max(200);
const key = z.string().regex(KEY, 'a key: lower-case letters, digits and _, starting with a letter');

const window = z.union([
  z.object({ last: z.number().int().min(1).max(1_000_000), unit: z.enum(['minutes', 'hours', 'days']) }).strict(),
  z.object({ from: isoDate, to: isoDate }).strict(),
]);
const timeRef = z.union([z.object({ daysAgo: days }).strict(), z.object({ date: isoDate }).strict()]);
export const propertyFilterSchema = z.union(comparisonOptions.map((c) => c.extend({ property: path }).strict()));

const eventMatch = {
  event: name,
  type: z.enum(['track', 'page', 'screen']).optional(),
  where: z.array(propertyFilterSchema).max(20).optional(),
};

/**
 * Every comparison shape extended with `shape`, strict: the alternatives of a leaf or a condition
 * (rule leaves here, the conditions of an event filter in event-filter.ts).
 *
 * @example
 * z.union(withComparison({ field: pathSchema }));
 */
export function withComparison<T extends z.ZodRawShape>(shape: T) {
  return comparisonOptions.map((c) => c.extend(shape).strict());
}

/** The zod schema of a rule tree (structure only; `validateRule` adds the checks zod cannot express). */
export const ruleSchema: z.ZodType<Rule> = z.lazy(() =>
  z.union([
    z.object({ op: z.literal('and'), rules: z.array(ruleSchema).min(1).max(50) }).strict(),
    z.object({ op: z.literal('or'), rules: z.array(ruleSchema).min(1).max(50) }).strict(),
    z.object({ op: z.literal('not'), rule: ruleSchema }).strict(),
    ...withComparison({ op: z.literal('trait'), trait: name }),
    z
      .object({
        op: z.literal('trait_index'),
        trait: name,
        in: z
          .array(z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a blind index (43 base64url characters)'))
          .min(1)
          .max(RULE_LIMITS.inValues),
      })
      .strict(),
    ...withComparison({
      op: z.literal('computed'),
      trait: z
        .string()
        .regex(/^[a-z][a-z0-9_]{0,63}(\.[A-Za-z0-9_]+)*$/, 'a computed trait key, optionally with a path: rfm.segment'),
    }),
    ...withComparison({ op: z.literal('account'), trait: name }),
    z
      .object({
        op: z.literal('performed'),
        ...eventMatch,
        within: window.optional(),
        min: z.number().int().min(0).max(1_000_000).optional(),
        max: z.number().int().min(0).max(1_000_000).optional(),
      })
      .strict(),
    ...numeric.map((n) =>
      n
        .extend({
          op: z.literal('aggregate'),
          fn: z.enum(['count', 'sum', 'avg', 'min', 'max']),
          property: path.optional(),
          within: window.optional(),
          ...eventMatch,
        })
        .strict(),
    ),
    z
      .object({
        op: z.literal('occurrence'),
        which: z.enum(['first', 'last']),
        before: timeRef.optional(),
        after: timeRef.optional(),
        ...eventMatch,
      })
      .strict(),
    z.object({ op: z.literal('has_tag'), tag: key }).strict(),
    z.object({ op: z.literal('in_audience'), audience: key }).strict(),
    z.object({ op: z.literal('consent'), purpose: name, state: z.enum(['granted', 'denied', 'unknown']) }).strict(),
    z
      .object({
        op: z.literal('subscription'),
        channel: name,
        topic: z.string().max(200).optional(),
        state: z.enum(['subscribed', 'unsubscribed']),
      })
      .strict(),
  ]),
) as z.ZodType<Rule>;

/** One problem with a rule, at a JSON path (`rules.1.value`). */
export interface RuleIssue {
  path: string;
  message: string;
}

/** A rule's validation: the rule, or every problem found. */
export type RuleValidation = { ok: true; rule: Rule } | { ok: false; issues: RuleIssue[] };

/**
 * Validates a rule: structure (with the nearest matching shape's errors, not a wall of union
 * alternatives), then limits, regex patterns, ranges and operand types.
 *
 * @example
 * const v = validateRule({ op: 'trait', trait: 'plan', cmp: '=', value: 'pro' });
 * if (!v.ok) console.log(v.issues); // [{ path: 'cmp', message: ... }]
 */
export function validateRule(input: unknown): RuleValidation {
  const structural = structure(input, []);
  if (structural.length) return { ok: false, issues: structural };
  const rule = input as Rule;
  const issues: RuleIssue[] = [];
  let nodes = 0;
  const walk = (r: Rule, at: (string | number)[], depth: number) => {
    nodes++;
    if (depth > RULE_LIMITS.depth)
      issues.push({ path: at.join('.'), message: `nested deeper than ${RULE_LIMITS.depth}` });
    if (r.op === 'and' || r.op === 'or') r.rules.forEach((c, i) => void walk(c, [...at, 'rules', i], depth + 1));
    else if (r.op === 'not') walk(r.rule, [...at, 'rule'], depth + 1);
    else issues.push(...leafIssues(r, at));
  };
  walk(rule, [], 1);
  if (nodes > RULE_LIMITS.nodes) issues.push({ path: '', message: `more than ${RULE_LIMITS.nodes} conditions` });
  return issues.length ? { ok: false, issues } : { ok: true, rule };
}

// Validates node by node so that an error names the node and the field, not 20 union alternatives.
function structure(input: unknown, at: (string | number)[]): RuleIssue[] {
  const here = at.join('.');
  if (input === undefined) return [{ path: here, message: `required: ${RULE_HINT}` }];
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return [{ path: here, message: `expected ${RULE_HINT}` }];
  const node = input as Record<string, unknown>;
  if (node.op === 'and' || node.op === 'or') {
    if (!Array.isArray(node.rules) || !node.rules.length)
      return [{ path: [...at, 'rules'].join('.'), message: 'expected a non-empty array of rules' }];
    const extra = Object.keys(node).filter((k) => k !== 'op' && k !== 'rules');
    if (extra.length) return [{ path: here, message: `unknown field ${extra.join(', ')}` }];
    return node.rules.flatMap((c, i) => structure(c, [...at, 'rules', i]));
  }
  if (node.op === 'not') {
    const extra = Object.keys(node).filter((k) => k !== 'op' && k !== 'rule');
    if (extra.length) return [{ path: here, message: `unknown field ${extra.join(', ')}` }];
    return structure(node.rule, [...at, 'rule']);
  }
  const leaf = LEAF_SCHEMAS[node.op as string];
  if (node.op === undefined) return [{ path: [...at, 'op'].join('.'), message: `required: one of ${OPS.join(', ')}` }];
  if (!leaf)
    return [
      { path: [...at, 'op'].join('.'), message: `unknown op ${JSON.stringify(node.op)}; one of ${OPS.join(', ')}` },
    ];
  // The comparison picks the shape: checked first, so a wrong one is told with every valid one (the
  // nearest shape alone would name only its own few).
  const cmps = cmpIssues(node, at);
  if (cmps.length) return cmps;
  const parsed = leaf.safeParse(node);
  if (parsed.success) return [];
  return nearestIssues(parsed.error, node, at);
}

const COMPARING_OPS = new Set(['trait', 'computed', 'account']);
const FILTERING_OPS = new Set(['performed', 'aggregate', 'occurrence']);

function cmpIssue(node: Record<string, unknown>, valid: readonly string[], at: (string | number)[]): RuleIssue[] {
  if (valid.includes(node.cmp as string)) return [];
  const path = [...at, 'cmp'].join('.');
  const list = valid.join(', ');
  if (node.cmp === undefined) return [{ path, message: `required: one of ${list}` }];
  const what = valid.length < COMPARISONS.length ? ` for ${node.op}` : '';
  return [{ path, message: `${JSON.stringify(node.cmp)} is not a comparison${what}; one of ${list}` }];
}

function cmpIssues(node: Record<string, unknown>, at: (string | number)[]): RuleIssue[] {
  const issues: RuleIssue[] = [];
  if (COMPARING_OPS.has(node.op as string)) issues.push(...cmpIssue(node, COMPARISONS, at));
  if (node.op === 'aggregate') issues.push(...cmpIssue(node, AGGREGATE_COMPARISONS, at));
  if (FILTERING_OPS.has(node.op as string) && Array.isArray(node.where)) {
    node.where.forEach((f, i) => {
      if (typeof f === 'object' && f !== null)
        issues.push(...cmpIssue(f as Record<string, unknown>, COMPARISONS, [...at, 'where', i]));
    });
  }
  return issues;
}

const LEAF_SCHEMAS: Record<string, z.ZodType> = Object.fromEntries(
  (
    [
      'trait',
      'trait_index',
      'computed',
      'account',
      'performed',
      'aggregate',
      'occurrence',
      'has_tag',
      'in_audience',
      'consent',
      'subscription',
    ] as const
  ).map((op) => [op, z.lazy(() => ruleSchema).refine((r) => r.op === op)]),
);
const OPS = ['and', 'or', 'not', ...Object.keys(LEAF_SCHEMAS)];

/**
 * What a rule is, for messages about a missing or malformed one.
 *
 * @example
 * throw new Error(`rule: required: ${RULE_HINT}`);
 */
export const RULE_HINT = `a rule object with an "op": one of ${OPS.join(', ')}`;

// Of a union's failures, report the alternative that got furthest (fewest issues, matching `cmp`).
function nearestIssues(error: z.ZodError, node: unknown, at: (string | number)[]): RuleIssue[] {
  const flat: RuleIssue[] = [];
  const visit = (issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
    const union = issues.find((i) => i.code === 'invalid_union') as z.core.$ZodIssueInvalidUnion | undefined;
    if (union && missing(node, [...prefix, ...union.path])) {
      // A missing value of several types (a comparison's value): name them all, not the nearest one's.
      const path = [...at, ...prefix, ...union.path].map(String).join('.');
      const types = union.errors.flatMap((e) => (e[0]?.code === 'invalid_type' ? [e[0].expected] : []));
      const words = [...new Set(types)].map(typeInWords);
      const list = words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0];
      flat.push({ path, message: list ? `required: ${list}` : 'required' });
      return;
    }
    if (union?.errors.length) {
      const best = [...union.errors].sort((a, b) => score(a) - score(b))[0]!;
      visit(best, [...prefix, ...union.path]);
      return;
    }
    for (const i of issues) {
      const path = [...prefix, ...i.path];
      flat.push({ path: [...at, ...path].map(String).join('.'), message: issueMessage({ ...i, path }, node) });
    }
  };
  visit(error.issues, []);
  return flat.length ? flat : [{ path: at.join('.'), message: 'invalid rule' }];
}

function missing(root: unknown, path: readonly PropertyKey[]): boolean {
  let v = root;
  for (const key of path)
    v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  return v === undefined;
}

// Alternatives that fail on the discriminating fields (op, cmp) are the least likely intended.
function score(issues: readonly z.core.$ZodIssue[]): number {
  let s = issues.length;
  for (const i of issues) {
    const last = i.path[i.path.length - 1];
    if (last === 'op' || last === 'cmp') s += 100;
    if (i.code === 'unrecognized_keys') s += 10;
  }
  return s;
}

function leafIssues(r: Exclude<Rule, { op: 'and' | 'or' | 'not' }>, at: (string | number)[]): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const add = (field: string, message: string) => issues.push({ path: [...at, field].join('.'), message });
  if ('cmp' in r) issues.push(...comparisonIssues(r, at, r.op === 'aggregate'));
  if ('where' in r && r.where)
    for (const [i, f] of r.where.entries()) issues.push(...comparisonIssues(f, [...at, 'where', i], false));
  if (r.op === 'performed' && r.min !== undefined && r.max !== undefined && r.min > r.max)
    add('max', 'max is smaller than min');
  if (r.op === 'performed' && r.max === undefined && r.min === 0) add('min', 'min 0 without max matches everybody');
  if ((r.op === 'performed' || r.op === 'aggregate') && r.within && 'from' in r.within) {
    if (!(parseIsoDate(r.within.from)! < parseIsoDate(r.within.to)!))
      add('within', 'from must be a valid date before to');
  }
  if (r.op === 'aggregate' && r.fn !== 'count' && !r.property) add('property', `${r.fn} needs a property`);
  if (r.op === 'occurrence' && !r.before && !r.after) add('before', 'give before, after or both');
  if (r.op === 'occurrence')
    for (const side of ['before', 'after'] as const) {
      const ref = r[side];
      if (ref && 'date' in ref && parseIsoDate(ref.date) === undefined) add(side, 'not a valid date');
    }
  return issues;
}

/**
 * What zod cannot check in one comparison (regex subset, dates that exist, bounds in order), at `at`:
 * `validateRule` runs it on every leaf and property filter, event filters on every condition.
 *
 * @example
 * comparisonIssues({ cmp: '>', value: '2026-02-30' }, ['where', 0], false); // [{ path: 'where.0.value', ... }]
 */
export function comparisonIssues(
  c: { cmp: string; value?: unknown },
  at: (string | number)[],
  numericOnly: boolean,
): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const add = (message: string) => issues.push({ path: [...at, 'value'].join('.'), message });
  const v = c.value;
  if (c.cmp === 'regex' && typeof v === 'string') {
    if (v.length > RULE_LIMITS.regexLength) add(`pattern longer than ${RULE_LIMITS.regexLength}`);
    else if (/\(\?[=!<]|\\[1-9]|\\[bBdDsSwW]/.test(v))
      add('lookaround, backreferences and \\d \\w \\s \\b classes are not supported; use [0-9], [A-Za-z_] ...');
    else {
      try {
        new RegExp(v);
      } catch (err) {
        add(`not a valid pattern: ${(err as Error).message}`);
      }
    }
  }
  if (['<', '<=', '>', '>='].includes(c.cmp) && typeof v === 'boolean') add('booleans cannot be ordered');
  if (c.cmp === 'between' && Array.isArray(v)) {
    const [a, b] = v as unknown[];
    if (typeof a !== typeof b) add('both bounds must have the same type');
    else if (typeof a === 'boolean') add('booleans cannot be ordered');
    else if (typeof a === 'number' && (a as number) > (b as number)) add('the lower bound is above the upper one');
    else if (typeof a === 'string' && isDateOperand(a) !== isDateOperand(b as string))
      add('both bounds must be dates, or neither');
  }
  for (const d of [v, ...(Array.isArray(v) ? v : [])])
    if (typeof d === 'string' && isDateOperand(d) && ['<', '<=', '>', '>=', 'between'].includes(c.cmp))
      if (parseIsoDate(d) === undefined) add(`${d} is not a valid date`);
  if (numericOnly && typeof v !== 'number' && !Array.isArray(v)) add('an aggregate compares numbers');
  return issues;
}

/** Whether an ordering operand is a date (compared as a date, not as text). */
export function isDateOperand(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}/.test(v);
}

/**
 * An ISO date string as `Date.parse` reads it the way the SQL side does: a date alone is midnight
 * UTC, a time without zone is UTC.
 *
 * @example
 * normalizeDate('2026-01-02'); // '2026-01-02T00:00:00Z'
 */
export function normalizeDate(v: string): string {
  if (v.length === 10) return `${v}T00:00:00Z`;
  const t = v.replace(' ', 'T');
  return /(Z|[+-]\d{2}(:?\d{2})?)$/.test(t) ? t : `${t}Z`;
}

/**
 * Reads a date the way rules do (README, "Value forms"): `YYYY-MM-DD`, optionally `T` or a space,
 * `HH:MM[:SS[.fraction]]` and a zone (`Z`, `±HH`, `±HH:MM`, `±HHMM`, hours up to 15). A date alone
 * is midnight UTC, a time without zone UTC. Impossible dates (2026-02-30, year 0000) are undefined.
 *
 * @example
 * parseIsoDate('2026-02-18 15:01:00+0100'); // Date.UTC(2026, 1, 18, 14, 1)
 */
export function parseIsoDate(v: string): number | undefined {
  const m = ISO_DATE.exec(v);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [h, mi, s] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const daysInMonth = new Date(Date.UTC(2000, mo, 0)).getUTCDate() - (mo === 2 && !isLeap(y) ? 1 : 0);
  if (y === 0 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) return undefined;
  let offset = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = zone.length > 3 ? Number(zone.slice(-2)) : 0;
    if (zh > 15 || zm > 59) return undefined;
    offset = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm) * 60_000;
  }
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, ms);
  return date.getTime() - offset;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
