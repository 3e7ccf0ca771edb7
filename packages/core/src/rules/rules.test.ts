import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeIssues } from '../issues.ts';
import { r } from './builder.ts';
import { compileRule, describeRule, ruleDependencies, ruleEdges } from './compile.ts';
import { computedTraitSchema, describeComputedTrait } from './computed.ts';
import { AGGREGATE_COMPARISONS, COMPARISONS, RULE_HINT, validateRule } from './schema.ts';
import { ident, join, sql } from './sql.ts';

const now = new Date('2026-11-22T12:00:00Z');

describe('SQL fragments', () => {
  it('never splices values into the text; nested fragments renumber their parameters', () => {
    const inner = sql`b = ${"'; DROP TABLE x; --"}`;
    const { text, values } =
      sql`SELECT ${1}::int WHERE ${inner} AND ${join([sql`${2}`, sql`${3}`], sql` + `)} AS ${ident('n1')}`.render();
    expect(text).toBe('SELECT $1::int WHERE b = $2 AND $3 + $4 AS n1');
    expect(values).toEqual([1, "'; DROP TABLE x; --", 2, 3]);
    expect(() => ident('n1; DROP')).toThrow(/not a safe identifier/);
  });
});

describe('validateRule', () => {
  it('accepts every operator the builder makes', () => {
    const rules = [
      r.trait('plan').eq('pro'),
      r.trait('age').between(18, 30),
      r.trait('tags').contains('vip'),
      r.trait('name').matches('^A[a-z]+$'),
      r.trait('birthday').anniversaryWithin(7),
      r.computed('rfm.segment').in('high value', 'potential'),
      r.account('plan').eq('enterprise'),
      r.performed('Order Completed', {
        min: 2,
        max: 5,
        within: r.last(90, 'days'),
        where: [r.property('total').gte(10)],
      }),
      r
        .aggregate('sum', 'Order Completed', { property: 'total', within: r.between('2026-01-01', '2026-07-01') })
        .gte(1000),
      r.occurrence('first', 'Signed Up', { before: { daysAgo: 7 }, after: { date: '2025-01-01' } }),
      r.hasTag('vip'),
      r.inAudience('buyers'),
      r.consent('marketing', 'granted'),
      r.subscription('email', 'unsubscribed', 'newsletter'),
      r.not(r.or(r.trait('x').exists(), r.trait('y').isEmpty())),
    ];
    for (const rule of rules) expect(validateRule(rule)).toEqual({ ok: true, rule });
  });

  it('names the field at fault, not a wall of union alternatives', () => {
    const check = (rule: unknown) => (validateRule(rule) as { issues: { path: string; message: string }[] }).issues;
    expect(check({ op: 'trait', trait: 'age', cmp: '>=', value: true })).toEqual([
      { path: 'value', message: 'booleans cannot be ordered' },
    ]);
    expect(
      check({ op: 'and', rules: [{ op: 'performed', event: 'x', within: { last: 0, unit: 'days' } }] })[0],
    ).toMatchObject({
      path: 'rules.0.within.last',
    });
    expect(check({ op: 'or', rules: [] })[0]!.path).toBe('rules');
    expect(check({ op: 'nope' })[0]!.message).toMatch(/unknown op "nope"; one of and, or, not, trait/);
    expect(check({ op: 'trait', trait: 'x', cmp: 'regex', value: '(a' })[0]!.message).toMatch(/not a valid pattern/);
    expect(check({ op: 'trait', trait: 'x', cmp: 'regex', value: '(?=a)' })[0]!.message).toMatch(/lookaround/);
    expect(check({ op: 'performed', event: 'x', min: 3, max: 1 })[0]).toEqual({
      path: 'max',
      message: 'max is smaller than min',
    });
    expect(check({ op: 'aggregate', fn: 'sum', event: 'x', cmp: '>', value: 1 })[0]!.path).toBe('property');
    expect(check({ op: 'trait', trait: 'd', cmp: 'between', value: ['2026-01-01', 5] })[0]!.message).toMatch(
      /same type/,
    );
    expect(check({ op: 'has_tag', tag: 'Bad Key' })[0]!.path).toBe('tag');
    let deep: unknown = r.trait('x').exists();
    for (let i = 0; i < 20; i++) deep = { op: 'not', rule: deep };
    expect(check(deep).some((i) => /nested deeper/.test(i.message))).toBe(true);
  });
});

describe('validation messages name what is valid', () => {
  const first = (rule: unknown) => (validateRule(rule) as { issues: { path: string; message: string }[] }).issues[0];
  const ALL =
    '=, !=, <, <=, >, >=, between, in, contains, starts_with, regex, exists, is_empty, ' +
    'within_last, within_next, older_than, anniversary_within';
  const OPS =
    'and, or, not, trait, trait_index, computed, account, performed, aggregate, occurrence, has_tag, in_audience, consent, subscription';

  it('a wrong or missing comparison lists every comparison the node takes', () => {
    expect(COMPARISONS.join(', ')).toBe(ALL);
    expect(first({ op: 'trait', trait: 'plan', cmp: 'equals', value: 'pro' })).toEqual({
      path: 'cmp',
      message: `"equals" is not a comparison; one of ${ALL}`,
    });
    expect(first({ op: 'computed', trait: 'orders', value: 3 })).toEqual({
      path: 'cmp',
      message: `required: one of ${ALL}`,
    });
    expect(first({ op: 'aggregate', fn: 'count', event: 'x', cmp: 'contains', value: 3 })).toEqual({
      path: 'cmp',
      message: `"contains" is not a comparison for aggregate; one of ${AGGREGATE_COMPARISONS.join(', ')}`,
    });
    expect(AGGREGATE_COMPARISONS).toEqual(['=', '!=', '<', '<=', '>', '>=', 'between']);
    expect(first({ op: 'performed', event: 'x', where: [{ property: 'total', cmp: 'gt', value: 1 }] })).toEqual({
      path: 'where.0.cmp',
      message: `"gt" is not a comparison; one of ${ALL}`,
    });
  });

  it('a missing rule, op or field says it is required and what it takes', () => {
    expect(first({ op: 'not' })).toEqual({ path: 'rule', message: `required: ${RULE_HINT}` });
    expect(RULE_HINT).toBe(`a rule object with an "op": one of ${OPS}`);
    expect(first({ trait: 'plan' })).toEqual({ path: 'op', message: `required: one of ${OPS}` });
    expect(first({ op: 'trait', trait: 'plan', cmp: '=' })).toEqual({
      path: 'value',
      message: 'required: a string, a number or a boolean',
    });
    expect(first({ op: 'trait', trait: 'plan', cmp: 'between', value: [1] })).toEqual({
      path: 'value',
      message: 'expected two bounds: [low, high]',
    });
    expect(first({ op: 'performed' })).toEqual({ path: 'event', message: 'required: a string' });
    expect(first({ op: 'consent', purpose: 'ads', state: 'maybe' })).toEqual({
      path: 'state',
      message: '"maybe" is not valid; one of granted, denied, unknown',
    });
    expect(first({ op: 'trait', trait: 'x', cmp: 'within_last', days: '7' })).toEqual({
      path: 'days',
      message: 'expected a number, got the string "7"',
    });
    expect(first({ op: 'trait', trait: 'x', cmp: 'exists', value: 1 })).toEqual({
      path: '',
      message: 'unknown field value',
    });
  });

  it('describeIssues words any zod error the same way, and keeps messages a schema wrote itself', () => {
    const schema = z.object({
      kind: z.enum(['a', 'b c']),
      n: z.number(),
      rule: z.unknown(),
      key: z.string().regex(/^k/, 'starts with k'),
    });
    const input = { kind: 'x', n: 'one', key: 'z' };
    expect(describeIssues(schema.safeParse(input).error!, input, { rule: RULE_HINT })).toEqual([
      { path: 'kind', message: '"x" is not valid; one of "a", "b c"' },
      { path: 'n', message: 'expected a number, got the string "one"' },
      { path: 'rule', message: `required: ${RULE_HINT}` },
      { path: 'key', message: 'starts with k' },
    ]);
    expect(describeIssues(schema.safeParse({}).error!, {})[0]).toEqual({
      path: 'kind',
      message: 'required: one of "a", "b c"',
    });
  });
});

describe('compileRule', () => {
  it('compiles one statement for a scope, with one relation per leaf and bound values', () => {
    const rule = r.and(
      r.trait('plan').eq('gold-xyz'),
      r.not(r.performed('Order Completed', { within: r.last(24, 'hours') })),
    );
    const c = compileRule(rule, { now });
    const all = c.members().render();
    expect(all.text).toMatch(/^WITH scope AS MATERIALIZED/);
    expect(all.text).not.toContain('gold-xyz');
    expect(all.values).toContain('gold-xyz');
    expect(all.values).toContain('2026-11-21T12:00:00.000Z');
    const some = c.members(['00000000-0000-0000-0000-000000000001']).render();
    expect(some.text).toContain('p.id = ANY($1::uuid[])');
    expect(c.nodes.map((n) => n.path)).toEqual(['', 'rules.0', 'rules.1', 'rules.1.rule']);
    expect(c.explain('00000000-0000-0000-0000-000000000001').render().text).toMatch(/AS n3, to_jsonb\(.*\) AS v3/s);
  });

  it('knows what a rule reads and which time edges move it', () => {
    const rule = r.and(
      r.performed('Added to Cart', { within: r.last(24, 'hours') }),
      r.inAudience('vip'),
      r.computed('rfm.segment').eq('potential'),
      r.trait('signed_up_at').olderThan(7),
    );
    const deps = ruleDependencies(rule);
    expect([...deps.events]).toEqual(['Added to Cart']);
    expect([...deps.audiences]).toEqual(['vip']);
    expect([...deps.computed]).toEqual(['rfm']);
    expect([...deps.traits]).toEqual(['signed_up_at']);
    expect(deps.timeBound).toBe(true);
    const edges = ruleEdges(rule, new Date(now.getTime() - 30_000), now)!.render();
    // The cart window's trailing edge moved by 30 s: events between 24 h 30 s and 24 h ago.
    expect(edges.values).toContain('2026-11-21T11:59:30.000Z');
    expect(edges.values).toContain('2026-11-21T12:00:00.000Z');
    expect(ruleEdges(r.trait('plan').eq('pro'), now, now)).toBeNull();
  });

  it('describes rules in words', () => {
    expect(
      describeRule(
        r.and(
          r.not(r.performed('Order Completed', { within: r.last(90, 'days') })),
          r.aggregate('avg', 'Order Completed', { property: 'total' }).gte(500),
          r.or(r.hasTag('vip'), r.consent('marketing', 'granted')),
        ),
      ),
    ).toBe(
      'not (performed "Order Completed" in the last 90 days) and avg of total over "Order Completed" is at least 500 and (has tag vip or granted consent to marketing)',
    );
    expect(describeRule(r.performed('Login', { max: 0, within: r.last(1, 'days') }))).toBe(
      'never performed "Login" in the last 1 day',
    );
  });
});

describe('computed trait definitions', () => {
  it('validates and describes', () => {
    expect(computedTraitSchema.safeParse({ kind: 'rfm' }).success).toBe(true);
    expect(computedTraitSchema.safeParse({ kind: 'aggregate', fn: 'sum', event: 'x' }).success).toBe(false);
    expect(
      describeComputedTrait({
        kind: 'aggregate',
        fn: 'most_frequent',
        event: 'Product Viewed',
        property: 'category',
        within: { last: 90, unit: 'days' },
      }),
    ).toBe('most frequent of category over "Product Viewed" in the last 90 days');
  });
});
