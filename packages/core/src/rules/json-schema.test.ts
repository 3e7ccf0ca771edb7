import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { r } from './builder.ts';
import { ruleJsonSchema } from './json-schema.ts';
import { ruleSchema } from './schema.ts';

const ajv = new Ajv2020({ strict: true, allErrors: false });
const matches = ajv.compile(ruleJsonSchema());

const EVERY_OPERATOR = [
  r.trait('plan').eq('pro'),
  r.trait('age').between(18, 30),
  r.trait('plan').in('pro', 'team'),
  r.trait('tags').contains('vip'),
  r.trait('name').startsWith('A'),
  r.trait('name').matches('^A[a-z]+$'),
  r.trait('email').exists(),
  r.trait('nickname').isEmpty(),
  r.trait('seen').withinLast(7),
  r.trait('renewal').withinNext(30),
  r.trait('created').olderThan(365),
  r.trait('birthday').anniversaryWithin(7),
  { op: 'trait_index', trait: 'email', in: ['A'.repeat(43)] },
  r.computed('rfm.segment').in('high value', 'potential'),
  r.account('plan').eq('enterprise'),
  r.performed('Order Completed', { min: 2, max: 5, within: r.last(90, 'days'), where: [r.property('total').gte(10)] }),
  r.aggregate('sum', 'Order Completed', { property: 'total', within: r.between('2026-01-01', '2026-07-01') }).gte(1000),
  r.aggregate('count', 'Viewed').between(1, 3),
  r.occurrence('first', 'Signed Up', { before: { daysAgo: 7 }, after: { date: '2025-01-01' } }),
  r.hasTag('vip'),
  r.inAudience('buyers'),
  r.consent('marketing', 'granted'),
  r.subscription('email', 'unsubscribed', 'newsletter'),
  r.not(r.or(r.trait('x').exists(), r.and(r.trait('y').isEmpty(), r.hasTag('z')))),
];

describe('ruleJsonSchema', () => {
  it('is a valid 2020-12 schema that accepts every operator and comparison the language has', () => {
    for (const rule of EVERY_OPERATOR) expect(matches(rule), JSON.stringify(matches.errors)).toBe(true);
    const ops = new Set(EVERY_OPERATOR.map((rule) => rule.op));
    // Every leaf and combinator the zod schema knows is exercised above (a new operator shows up here).
    const known = JSON.stringify(ruleJsonSchema()).match(/"op":\{"type":"string","const":"[a-z_]+"/g) ?? [];
    expect(new Set(known.map((k) => k.split('"').at(-2)))).toEqual(new Set([...ops, 'and', 'or']));
  });

  it('refuses what the language refuses: unknown operators, comparisons and fields, empty groups', () => {
    for (const bad of [
      { op: 'trait', trait: 'plan', cmp: 'like', value: 'x' },
      { op: 'nope' },
      { op: 'and', rules: [] },
      { op: 'trait', trait: 'plan', cmp: '=', value: 'pro', extra: 1 },
      { op: 'performed', event: 'x', within: { last: 3, unit: 'weeks' } },
      { op: 'performed', event: 'x', within: { from: 'yesterday', to: '2026-01-01' } },
      { op: 'aggregate', fn: 'sum', event: 'x', property: 'total', cmp: '=', value: 'ten' },
      { op: 'not', rule: { op: 'has_tag', tag: 'Not A Key' } },
    ])
      expect(matches(bad), JSON.stringify(bad)).toBe(false);
  });

  it('embeds under an address: the recursion points there and no $schema or $id is left', () => {
    const embedded = ruleJsonSchema({ ref: '#/components/schemas/Rule' });
    const text = JSON.stringify(embedded);
    expect(text).toContain('"$ref":"#/components/schemas/Rule"');
    expect(text).not.toContain('"$ref":"#"');
    expect(embedded.$schema).toBeUndefined();
    expect(embedded.$id).toBeUndefined();
    // As in an OpenAPI description: a document whose components hold it (strict off: `components` is
    // no JSON Schema keyword).
    const loose = new Ajv2020({ strict: false });
    loose.addSchema({ $id: 'https://cairn.invalid/openapi.json', components: { schemas: { Rule: embedded } } });
    const wrapped = loose.getSchema('https://cairn.invalid/openapi.json#/components/schemas/Rule')!;
    expect(wrapped(EVERY_OPERATOR.at(-1))).toBe(true);
    expect(wrapped({ op: 'not', rule: { op: 'or', rules: [] } })).toBe(false);
  });

  it('agrees with the zod schema on generated trees (dates aside, which zod also checks exist)', () => {
    // Near-misses around each shape: wrong cmp, wrong value type, out-of-range numbers, extra fields.
    const scalar = fc.oneof(fc.constantFrom('pro', '2026-01-01', 'a.b', ''), fc.integer(), fc.boolean());
    const comparison = fc.oneof(
      fc.record({ cmp: fc.constantFrom('=', '<', '~'), value: scalar }),
      fc.record({ cmp: fc.constant('between'), value: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
      fc.record({ cmp: fc.constant('in'), value: fc.array(scalar, { maxLength: 2 }) }),
      fc.record({ cmp: fc.constantFrom('contains', 'regex'), value: scalar }),
      fc.record({ cmp: fc.constantFrom('exists', 'is_empty') }),
      fc.record({ cmp: fc.constant('within_last'), days: fc.integer({ min: -1, max: 40_000 }) }),
    );
    const opt = { requiredKeys: [] as never[] };
    const window = fc.oneof(
      fc.record({ last: fc.integer({ min: 0, max: 3 }), unit: fc.constantFrom('days', 'weeks') }),
      fc.record({ from: fc.constantFrom('2026-01-01', 'soon'), to: fc.constant('2026-02-01') }),
    );
    const extra = fc.record({ extra: fc.constant(1) }, opt);
    const withExtra = (a: fc.Arbitrary<object>) =>
      fc
        .tuple(a, fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: extra }))
        .map(([x, y]) => ({ ...x, ...y }));
    const field = withExtra(
      fc.oneof(
        fc
          .tuple(
            fc.record({
              op: fc.constantFrom('trait', 'computed', 'account'),
              trait: fc.constantFrom('plan', 'a.b', ''),
            }),
            comparison,
          )
          .map(([a, b]) => ({ ...a, ...b })),
        fc.record(
          {
            op: fc.constant('performed'),
            event: fc.constantFrom('Order', ''),
            within: window,
            min: fc.integer({ min: -1, max: 3 }),
            where: fc.array(
              fc.tuple(fc.record({ property: fc.constantFrom('total', 'a..b') }), comparison).map(([a, b]) => ({
                ...a,
                ...b,
              })),
              { maxLength: 2 },
            ),
          },
          { requiredKeys: ['op', 'event'] },
        ),
        fc
          .tuple(
            fc.record(
              {
                op: fc.constant('aggregate'),
                fn: fc.constantFrom('count', 'sum', 'median'),
                event: fc.constant('Order'),
              },
              { requiredKeys: ['op', 'fn', 'event'] },
            ),
            comparison,
          )
          .map(([a, b]) => ({ ...a, ...b })),
        fc.record({
          op: fc.constant('occurrence'),
          which: fc.constantFrom('first', 'last', 'middle'),
          event: fc.constant('Signed Up'),
          before: fc.oneof(
            fc.record({ daysAgo: fc.integer({ min: -1, max: 3 }) }),
            fc.record({ date: fc.constantFrom('2026-01-01', 'then') }),
          ),
        }),
        fc.record({ op: fc.constantFrom('has_tag', 'in_audience'), tag: fc.constantFrom('vip', 'VIP') }),
        fc.record({
          op: fc.constant('consent'),
          purpose: fc.constant('ads'),
          state: fc.constantFrom('granted', 'yes'),
        }),
        fc.record({ op: fc.constant('x') }),
      ),
    );
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        field,
        fc.record({ op: fc.constantFrom('and', 'or'), rules: fc.array(tie('node'), { maxLength: 3 }) }),
        fc.record({ op: fc.constant('not'), rule: tie('node') }),
      ),
    })).node;
    let accepted = 0;
    fc.assert(
      fc.property(tree, (rule) => {
        const byZod = ruleSchema.safeParse(rule).success;
        if (byZod) accepted++;
        expect(matches(rule), JSON.stringify(rule)).toBe(byZod);
      }),
      { numRuns: 800 },
    );
    // The generator reaches accepted trees too, so agreement is not only on refusals.
    expect(accepted).toBeGreaterThan(30);
  });
});
