import { describe, expect, it } from 'vitest';
import { r } from '../rules/builder.ts';
import type { FlowDefinition } from './ast.ts';
import { decideData, decideRule, factsNeeded, type ProfileFacts } from './facts.ts';

const NOW = Date.parse('2026-03-02T12:00:00Z');
const DAY = 86_400_000;
const order = (daysAgo: number, total: unknown) => ({
  type: 'track',
  event: 'Order Completed',
  timestamp: new Date(NOW - daysAgo * DAY).toISOString(),
  properties: { total },
});

const facts: ProfileFacts = {
  id: 'p1',
  traits: { plan: 'Pro', age: '42', birthday: '1990-03-05', tags: ['a', 'VIP'] },
  computed: { rfm: { segment: 'churn_risk' } },
  audiences: ['buyers'],
  tags: ['lead'],
  events: [
    order(1, 100),
    order(10, '0.30000000000000001'),
    order(40, 'n/a'),
    { type: 'page', name: 'Pricing', timestamp: new Date(NOW).toISOString() },
  ],
  consent: { marketing: 'granted' },
  subscriptions: { email: { contact: true, unsubscribed: ['newsletter'] }, sms: { contact: false, unsubscribed: [] } },
  accounts: [{ tier: 'enterprise' }, { tier: 'free' }],
};

describe('decideRule on one profile in memory', () => {
  it.each([
    [r.trait('plan').eq('pro'), true, 'Pro'],
    [r.trait('age').gte(18), true, '42'],
    [r.trait('tags').contains('vip'), true, ['a', 'VIP']],
    [r.trait('birthday').anniversaryWithin(7), true, '1990-03-05'],
    [r.trait('missing').exists(), false, undefined],
    [r.computed('rfm.segment').eq('churn_risk'), true, 'churn_risk'],
    [r.account('tier').eq('enterprise'), true, ['enterprise', 'free']],
    [r.performed('Order Completed', { within: r.last(30, 'days') }), true, 2],
    [r.performed('Order Completed', { max: 0 }), false, 3],
    [r.performed('Order Completed', { where: [r.property('total').gt(0.3)] }), true, 2],
    [r.aggregate('sum', 'Order Completed', { property: 'total' }).gt(100.3), true, 100.3],
    [r.aggregate('avg', 'Order Completed', { property: 'total' }).eq(50.15), false, 50.15],
    [r.aggregate('max', 'Order Completed', { property: 'total' }).eq(100), true, 100],
    [r.aggregate('count', 'Order Completed').eq(3), true, 3],
    [
      r.occurrence('first', 'Order Completed', { before: { daysAgo: 30 } }),
      true,
      new Date(NOW - 40 * DAY).toISOString(),
    ],
    [r.performed('Pricing', { type: 'page' }), true, 1],
    [r.consent('marketing', 'granted'), true, 'granted'],
    [r.consent('ads', 'unknown'), true, 'unknown'],
    [r.subscription('email', 'unsubscribed', 'newsletter'), true, 'unsubscribed'],
    [r.subscription('email', 'subscribed'), true, 'subscribed'],
    [r.subscription('sms', 'subscribed'), false, 'no contact point'],
  ])('%j', (rule, result, value) => {
    const d = decideRule(rule, facts, NOW);
    expect(d.result).toBe(result);
    expect(d.leaves[0]?.value).toEqual(value);
  });

  it('exact decimals: 0.30000000000000001 is above 0.3, and avg is compared without division', () => {
    const gt = decideRule(
      r.performed('Order Completed', { where: [r.property('total').gt(0.3)], within: r.last(20, 'days') }),
      facts,
      NOW,
    );
    expect(gt.leaves[0]?.value).toBe(2);
    // (100 + 0.30000000000000001) / 2 is a hair above 50.15.
    expect(decideRule(r.aggregate('avg', 'Order Completed', { property: 'total' }).gt(50.15), facts, NOW).result).toBe(
      true,
    );
  });

  it('combines leaves and keeps each one read', () => {
    const d = decideRule(r.and(r.inAudience('buyers'), r.not(r.hasTag('lead'))), facts, NOW);
    expect(d.result).toBe(false);
    expect(d.leaves.map((l) => [l.says, l.result])).toEqual([
      ['is in audience buyers', true],
      ['has tag lead', true],
    ]);
  });
});

describe('decideData', () => {
  it('reads run data and the trigger event', () => {
    const d = decideData(
      [{ field: 'run.score', cmp: '>', value: 3 }, { not: { field: 'event.properties.coupon', cmp: 'exists' } }],
      { run: { score: 5 }, event: { properties: {} } },
      NOW,
    );
    expect(d).toEqual({
      result: true,
      leaves: [
        { says: 'run.score is more than 3', value: 5, result: true },
        { says: 'not event.properties.coupon is set', result: true },
      ],
    });
  });
});

describe('factsNeeded', () => {
  it('lists what the flow rules read beyond traits, audiences and tags', () => {
    const def = {
      entry: { reentry: 'once', rule: r.performed('Order Completed') },
      exit: { rule: r.subscription('email', 'unsubscribed') },
      nodes: [
        { id: 'b', type: 'branch', cases: [{ rule: r.and(r.account('tier').exists(), r.consent('ads', 'granted')) }] },
      ],
    } as unknown as FlowDefinition;
    expect(factsNeeded(def)).toEqual({
      events: ['Order Completed'],
      consent: true,
      subscriptions: true,
      accounts: true,
    });
  });
});
