import { describe, expect, it } from 'vitest';
import type { FlowDefinition } from './ast.ts';
import { advance, enter } from './engine.ts';
import type { ProfileFacts } from './facts.ts';
import { pointsBalance } from './points.ts';
import { validateFlow } from './validate.ts';

const NOW = Date.parse('2026-03-02T09:00:00Z');
const DAY = 86_400_000;
const person = (computed: ProfileFacts['computed'] = {}): ProfileFacts => ({
  id: 'p1',
  traits: { first_name: 'Ada' },
  computed,
  audiences: [],
  tags: [],
});

function valid(def: object, context = {}): FlowDefinition {
  const v = validateFlow(def, context);
  if (!v.ok) throw new Error(JSON.stringify(v.issues));
  return v.flow;
}

const couponFlow = (empty: boolean) =>
  valid({
    version: 1,
    name: 'Coupon',
    trigger: { type: 'event', event: 'Signed Up' },
    entry: { reentry: 'once' },
    nodes: [
      { id: 'give', type: 'issue_coupon', pool: 'spring' },
      { id: 'mail', type: 'send', destination: 'email', message: { body: 'Code {{ run.coupon }}' } },
      ...(empty ? [{ id: 'sorry', type: 'send', destination: 'email', message: { body: 'none left' } }] : []),
    ],
    edges: [{ from: 'give', to: 'mail', on: 'next' }, ...(empty ? [{ from: 'give', to: 'sorry', on: 'empty' }] : [])],
  });

describe('issue_coupon', () => {
  it('awaits a code under the visit key, keeps it and uses it in the message', () => {
    const def = couponFlow(true);
    const state = enter(def, { runId: 'r1', flowId: 'f1', profileId: 'p1', now: NOW });
    const first = advance(def, state, { type: 'due' }, { now: NOW, profile: person() });
    expect(first.state.status).toBe('awaiting_effect');
    expect(first.effects).toEqual([{ type: 'issue_coupon', key: 'flow:r1:give:0', node: 'give', pool: 'spring' }]);
    const output = { code: 'SPRING-1', expiresAt: '2026-03-09T09:00:00.000Z' };
    const done = advance(
      def,
      first.state,
      { type: 'effect_result', key: 'flow:r1:give:0', ok: true, output },
      { now: NOW, profile: person() },
    );
    expect(done.state.data).toEqual({ coupon: 'SPRING-1', coupon_expires_at: output.expiresAt });
    expect(done.effects).toMatchObject([{ type: 'send', message: { body: 'Code SPRING-1' } }]);
    // The same step replayed asks for the same key: the runner hands back the same code.
    expect(advance(def, state, { type: 'due' }, { now: NOW, profile: person() }).effects[0]!.key).toBe(
      'flow:r1:give:0',
    );
  });

  it('takes empty when the pool has no code, and exits without an empty edge', () => {
    for (const withEdge of [true, false]) {
      const def = couponFlow(withEdge);
      const state = enter(def, { runId: 'r1', flowId: 'f1', profileId: 'p1', now: NOW });
      const first = advance(def, state, { type: 'due' }, { now: NOW, profile: person() });
      const done = advance(
        def,
        first.state,
        { type: 'effect_result', key: 'flow:r1:give:0', ok: true, output: { code: null } },
        { now: NOW, profile: person() },
      );
      if (withEdge) expect(done.effects).toMatchObject([{ type: 'send', message: { body: 'none left' } }]);
      else expect(done.state).toMatchObject({ status: 'exited' });
      expect(done.journal[0]).toMatchObject({ node: 'give', outcome: withEdge ? 'empty' : 'exited' });
    }
  });

  it('refuses an unknown pool and knows run.coupon is set', () => {
    const v = validateFlow(couponFlow(false), { couponPools: ['autumn'] });
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.issues.map((i) => i.message)).toEqual(['unknown coupon pool "spring"']);
    expect(validateFlow(couponFlow(false), { couponPools: ['spring'] }).ok).toBe(true);
  });
});

describe('points', () => {
  const def = valid({
    version: 1,
    name: 'Points',
    trigger: { type: 'event', event: 'Order Completed' },
    entry: { reentry: 'every_time' },
    nodes: [
      { id: 'earn', type: 'points', delta: '{{ event.properties.points }}', reason: 'order', expiresInDays: 30 },
      {
        id: 'rich',
        type: 'branch',
        cases: [{ rule: { op: 'computed', trait: 'points_balance', cmp: '>=', value: 100 } }],
      },
      { id: 'gold', type: 'send', destination: 'email', message: { body: '{{ computed.points_balance }} points' } },
      { id: 'spend', type: 'points', delta: -500, reason: 'voucher' },
    ],
    edges: [
      { from: 'earn', to: 'rich', on: 'next' },
      { from: 'rich', to: 'gold', on: 'case:0' },
      { from: 'rich', to: 'spend', on: 'else' },
    ],
  });
  const run = (points: unknown, balance: number) => {
    const event = { type: 'track', event: 'Order Completed', properties: { points } };
    const state = enter(def, { runId: 'r1', flowId: 'f1', profileId: 'p1', now: NOW, event });
    return advance(def, state, { type: 'due' }, { now: NOW, profile: person({ points_balance: balance }) });
  };

  it('adds the rendered delta with its expiry, and the branch and template see the new balance', () => {
    const r = run(40, 70);
    expect(r.effects).toEqual([
      { type: 'points', key: 'flow:r1:earn:0', node: 'earn', delta: 40, reason: 'order', expiresAt: NOW + 30 * DAY },
      { type: 'send', key: 'flow:r1:gold:0', node: 'gold', destination: 'email', message: { body: '110 points' } },
    ]);
  });

  it('takes insufficient for a subtraction below 0 (exits without an edge) and failed for a bad delta', () => {
    const low = run(10, 20);
    expect(low.effects.map((e) => e.type)).toEqual(['points']);
    expect(low.state).toMatchObject({ status: 'exited' });
    expect(low.journal.at(-1)).toMatchObject({ node: 'spend', outcome: 'exited' });
    const bad = run('lots', 20);
    expect(bad.effects).toEqual([]);
    expect(bad.state).toMatchObject({ status: 'failed' });
  });
});

describe('pointsBalance', () => {
  it('stops counting expired credits, spends the soonest-expiring first, carries a deficit', () => {
    const ledger = [
      { delta: 100, at: 0, expiresAt: 10 * DAY },
      { delta: 50, at: 1 },
      { delta: -120, at: 2 },
    ];
    expect(pointsBalance(ledger, DAY).balance).toBe(30);
    // The expiring 100 were spent first: nothing left of them to expire.
    expect(pointsBalance(ledger, 11 * DAY).balance).toBe(30);
    const unspent = [
      { delta: 100, at: 0, expiresAt: 10 * DAY },
      { delta: 50, at: 1 },
      { delta: -20, at: 2 },
    ];
    expect(pointsBalance(unspent, DAY)).toEqual({ balance: 130, expiring: [{ amount: 80, at: 10 * DAY }] });
    expect(pointsBalance(unspent, 10 * DAY).balance).toBe(50);
    expect(
      pointsBalance(
        [
          { delta: -30, at: 0 },
          { delta: 50, at: 1, expiresAt: 5 },
        ],
        2,
      ).balance,
    ).toBe(20);
    expect(pointsBalance([{ delta: 10, at: 5 }], 4).balance).toBe(0);
  });
});
