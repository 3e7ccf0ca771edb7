import { describe, expect, it } from 'vitest';
import type { FlowDefinition, FlowNode } from './ast.ts';
import { advance, enter, MAX_NODES_PER_STEP, resolveZone } from './engine.ts';
import type { ProfileFacts } from './facts.ts';
import type { RunState, StepInput } from './state.ts';
import { validateFlow } from './validate.ts';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const person = (traits: ProfileFacts['traits'] = {}, more: Partial<ProfileFacts> = {}): ProfileFacts => ({
  id: 'p1',
  traits,
  audiences: [],
  tags: [],
  ...more,
});

function def(nodes: FlowNode[], edges: FlowDefinition['edges'], extra: Partial<FlowDefinition> = {}): FlowDefinition {
  const d: FlowDefinition = {
    version: 1,
    name: 'test',
    trigger: { type: 'event', event: 'Signed Up' },
    entry: { reentry: 'once' },
    nodes,
    edges,
    ...extra,
  };
  const v = validateFlow(d);
  if (!v.ok) throw new Error(JSON.stringify(v.issues));
  return d;
}

const chain = (...ids: string[]) => ids.slice(1).map((to, i) => ({ from: ids[i]!, to, on: 'next' }));

/** Enters a run and feeds it inputs, keeping every step's result. */
function runner(
  flow: FlowDefinition,
  profile: ProfileFacts,
  options: { event?: Record<string, unknown>; data?: Record<string, never> } = {},
) {
  let state: RunState = enter(flow, { runId: 'r1', flowId: 'f1', profileId: profile.id, now: T0, ...options });
  const steps: ReturnType<typeof advance>[] = [];
  const feed = (input: StepInput, now: number, facts = profile) => {
    const r = advance(flow, state, input, { now, profile: facts });
    state = r.state;
    steps.push(r);
    return r;
  };
  feed({ type: 'due' }, T0);
  return {
    feed,
    steps,
    get state() {
      return state;
    },
  };
}

describe('advance: wait and send', () => {
  const flow = def(
    [
      { id: 'wait', type: 'wait', duration: { hours: 24 } },
      {
        id: 'email',
        type: 'send',
        destination: 'email',
        message: {
          subject: 'Hi {{ traits.first_name | default: "there" }}',
          body: 'Still want the {{ event.properties.product }}? {{ traits.nick }}',
        },
      },
    ],
    chain('wait', 'email'),
    { trigger: { type: 'event', event: 'Added To Cart' } },
  );

  it('waits the duration, then sends the rendered message with a stable key and ends', () => {
    const event = {
      type: 'track',
      event: 'Added To Cart',
      properties: { product: 'Lamp', secret: 'x' },
      context: { ip: '1.2.3.4' },
    };
    const run = runner(flow, person({ first_name: 'Ada' }), { event });
    // The run row keeps only the event fields the flow reads.
    expect(run.state.event).toEqual({ properties: { product: 'Lamp' } });
    expect(run.state).toMatchObject({ status: 'waiting', node: 'wait', due: T0 + DAY });
    expect(run.steps[0]!.journal.map((j) => [j.type, j.outcome])).toEqual([
      ['enter', 'entered'],
      ['wait', 'waiting'],
    ]);
    // An early tick changes nothing.
    const early = run.feed({ type: 'due' }, T0 + DAY - 1);
    expect(early).toEqual({ state: run.state, effects: [], journal: [] });
    const done = run.feed({ type: 'due' }, T0 + DAY);
    expect(done.effects).toEqual([
      {
        type: 'send',
        key: 'flow:r1:email:0',
        node: 'email',
        destination: 'email',
        message: { subject: 'Hi Ada', body: 'Still want the Lamp? ' },
      },
    ]);
    expect(done.journal.find((j) => j.node === 'email')?.reason).toBe('send through email; no value for traits.nick');
    expect(run.state).toMatchObject({ status: 'completed', reason: 'reached the end of the path', endedAt: T0 + DAY });
    // A repeated tick on an ended run does nothing.
    expect(run.feed({ type: 'due' }, T0 + 2 * DAY).effects).toEqual([]);
  });

  it('is pure: the same state and input give the same effects and keys (a replay after a crash)', () => {
    const run = runner(flow, person());
    const waiting = run.state;
    const a = advance(flow, waiting, { type: 'due' }, { now: T0 + DAY, profile: person() });
    const b = advance(flow, waiting, { type: 'due' }, { now: T0 + DAY, profile: person() });
    expect(a).toEqual(b);
    expect(waiting.status).toBe('waiting'); // the input state is not changed
  });
});

describe('advance: loops count iterations into the key', () => {
  it('a weekly reminder loop sends with iteration 0, 1, 2 until the tag is set', () => {
    const flow = def(
      [
        { id: 'remind', type: 'send', destination: 'email', message: { body: 'Finish your profile' } },
        { id: 'week', type: 'wait', duration: { days: 7 } },
        { id: 'done', type: 'branch', cases: [{ rule: { op: 'has_tag', tag: 'complete' } }] },
        { id: 'x', type: 'exit' },
      ],
      [
        ...chain('remind', 'week', 'done'),
        { from: 'done', to: 'x', on: 'case:0' },
        { from: 'done', to: 'remind', on: 'else' },
      ],
    );
    const run = runner(flow, person());
    run.feed({ type: 'due' }, T0 + 7 * DAY);
    run.feed({ type: 'due' }, T0 + 14 * DAY, person({}, { tags: ['complete'] }));
    const keys = run.steps.flatMap((s) => s.effects.map((e) => e.key));
    expect(keys).toEqual(['flow:r1:remind:0', 'flow:r1:remind:1']);
    expect(run.state.status).toBe('completed');
    expect(run.state.visits).toEqual({ remind: 2, week: 2, done: 2, x: 1 });
  });

  it('fails a run that goes round more than the limit without waiting (a date already passed)', () => {
    const flow = def(
      [
        { id: 'until', type: 'wait_until', until: { trait: 'renewal' } },
        { id: 'ping', type: 'update_profile', addTags: ['pinged'] },
      ],
      [...chain('until', 'ping'), { from: 'ping', to: 'until', on: 'next' }],
    );
    const run = runner(flow, person({ renewal: '2020-01-01' }));
    expect(run.state.status).toBe('failed');
    expect(run.state.reason).toMatch(`more than ${MAX_NODES_PER_STEP} nodes in one step`);
  });
});

describe('advance: wait_until a date trait', () => {
  const flow = def(
    [
      { id: 'until', type: 'wait_until', until: { trait: 'expires_at', offsetDays: -3, time: '09:00' } },
      { id: 'remind', type: 'send', destination: 'email', message: { body: 'Expires soon' } },
      { id: 'nodate', type: 'update_profile', addTags: ['no_expiry'] },
    ],
    [...chain('until', 'remind'), { from: 'until', to: 'nodate', on: 'missing' }],
    { timezone: 'Europe/Berlin' },
  );

  it('waits until the date − 3 days at 09:00 in the person zone', () => {
    const run = runner(flow, person({ expires_at: '2026-06-10' }));
    expect(run.state.due).toBe(Date.parse('2026-06-07T07:00:00Z'));
    expect(run.steps[0]!.journal.at(-1)?.reason).toBe(
      'expires_at -3 days at 09:00: until 2026-06-07T09:00:00.000+02:00 (Europe/Berlin, from flow)',
    );
  });

  it('takes the missing edge when the trait is no date, and goes on at once when the moment passed', () => {
    const missing = runner(flow, person({ expires_at: 'soon' }));
    expect(missing.steps[0]!.effects.map((e) => e.type)).toEqual(['update_profile']);
    expect(missing.steps[0]!.journal[1]).toMatchObject({ node: 'until', outcome: 'missing', to: 'nodate' });
    const passed = runner(flow, person({ expires_at: '2026-03-03' }));
    expect(passed.steps[0]!.effects.map((e) => e.type)).toEqual(['send']);
  });
  it('re-plans when the date moves: later keeps waiting, earlier is sooner, a changed date seen at due is honoured', () => {
    const run = runner(flow, person({ expires_at: '2026-06-10' }));
    const moved = run.feed({ type: 'replan' }, T0 + DAY, person({ expires_at: '2026-06-05' }));
    expect(run.state.due).toBe(Date.parse('2026-06-02T07:00:00Z'));
    expect(moved.journal[0]?.reason).toContain('until 2026-06-02T09:00:00.000+02:00');
    // The same date again changes nothing.
    expect(run.feed({ type: 'replan' }, T0 + DAY, person({ expires_at: '2026-06-05' })).journal).toEqual([]);
    // At the due time the date had moved later without a replan: the run waits on.
    run.feed({ type: 'due' }, Date.parse('2026-06-02T07:00:00Z'), person({ expires_at: '2026-07-01' }));
    expect(run.state).toMatchObject({ status: 'waiting', node: 'until', due: Date.parse('2026-06-28T07:00:00Z') });
    expect(run.state.visits.until).toBe(1);
    run.feed({ type: 'due' }, Date.parse('2026-06-28T07:00:00Z'), person({ expires_at: '2026-07-01' }));
    expect(run.steps.at(-1)!.effects.map((e) => e.key)).toEqual(['flow:r1:remind:0']);
  });
});

describe('advance: wait_for_event', () => {
  const flow = def(
    [
      {
        id: 'issue',
        type: 'action',
        destination: 'shop',
        action: 'issue_coupon',
        input: { value: 10 },
        keep: { coupon: 'code' },
      },
      {
        id: 'used',
        type: 'wait_for_event',
        event: { event: 'Coupon Redeemed' },
        match: [{ field: 'properties.coupon', run: 'coupon' }],
        keep: { order: 'properties.order_id' },
        timeout: { days: 3 },
      },
      { id: 'thanks', type: 'send', destination: 'email', message: { body: 'Thanks for order {{ run.order }}' } },
      { id: 'sms', type: 'send', destination: 'sms', message: { body: 'Your code {{ run.coupon }} expires soon' } },
    ],
    [
      { from: 'issue', to: 'used', on: 'next' },
      { from: 'used', to: 'thanks', on: 'matched' },
      { from: 'used', to: 'sms', on: 'timeout' },
    ],
  );
  const issued = () => {
    const run = runner(flow, person());
    expect(run.state).toMatchObject({
      status: 'awaiting_effect',
      awaiting: { key: 'flow:r1:issue:0', type: 'action' },
    });
    run.feed({ type: 'effect_result', key: 'flow:r1:issue:0', ok: true, output: { code: 'SAVE10' } }, T0 + 1000);
    return run;
  };

  it('listens for the event by name, and a matching one (same coupon) takes the matched edge', () => {
    const run = issued();
    expect(run.state).toMatchObject({
      status: 'waiting',
      node: 'used',
      due: T0 + 1000 + 3 * DAY,
      listen: ['Coupon Redeemed'],
    });
    const other = run.feed(
      { type: 'event', event: { type: 'track', event: 'Coupon Redeemed', properties: { coupon: 'OTHER' } } },
      T0 + DAY,
    );
    expect(other.effects).toEqual([]);
    expect(run.state.node).toBe('used');
    const r = run.feed(
      {
        type: 'event',
        event: { type: 'track', event: 'Coupon Redeemed', properties: { coupon: 'save10', order_id: 'o-7' } },
      },
      T0 + 2 * DAY,
    );
    expect(r.journal[0]).toMatchObject({ node: 'used', outcome: 'matched', to: 'thanks', values: { order: 'o-7' } });
    expect(r.journal[0]!.reason).toBe('event "Coupon Redeemed" arrived with properties.coupon = run.coupon ("SAVE10")');
    expect(r.effects).toEqual([
      {
        type: 'send',
        key: 'flow:r1:thanks:0',
        node: 'thanks',
        destination: 'email',
        message: { body: 'Thanks for order o-7' },
      },
    ]);
    expect(run.state.listen).toBeUndefined();
  });

  it('times out into the SMS, and an event after the timeout is too late', () => {
    const run = issued();
    const late = run.feed(
      { type: 'event', event: { type: 'track', event: 'Coupon Redeemed', properties: { coupon: 'SAVE10' } } },
      T0 + 1000 + 3 * DAY,
    );
    expect(late.journal[0]).toMatchObject({ node: 'used', outcome: 'timeout', to: 'sms' });
    expect(late.effects.map((e) => e.type === 'send' && e.message.body)).toEqual(['Your code SAVE10 expires soon']);
  });

  it('ignores a result for another key, and a failed action without a failed edge fails the run', () => {
    const run = runner(flow, person());
    expect(run.feed({ type: 'effect_result', key: 'flow:r1:issue:9', ok: true }, T0).effects).toEqual([]);
    expect(run.state.status).toBe('awaiting_effect');
    run.feed({ type: 'effect_result', key: 'flow:r1:issue:0', ok: false, error: 'shop down' }, T0 + 1);
    expect(run.state).toMatchObject({ status: 'failed', reason: 'issue: failed: shop down' });
  });
});

describe('advance: branch, split, update_profile, webhook, exit', () => {
  const flow = def(
    [
      {
        id: 'tag',
        type: 'update_profile',
        set: { stage: 'trial', last_code: '{{ event.properties.code }}' },
        addTags: ['trial'],
      },
      {
        id: 'tier',
        type: 'branch',
        cases: [
          {
            name: 'vip',
            rule: {
              op: 'and',
              rules: [
                { op: 'in_audience', audience: 'vip' },
                { op: 'has_tag', tag: 'trial' },
              ],
            },
          },
          { name: 'big cart', data: [{ field: 'event.properties.total', cmp: '>=', value: 100 }] },
        ],
      },
      {
        id: 'crm',
        type: 'webhook',
        url: 'https://crm.example/p/{{ profile.id }}',
        method: 'POST',
        body: '{"stage":"{{ traits.stage }}"}',
        keep: { owner: 'data.owner' },
      },
      {
        id: 'notify',
        type: 'send',
        destination: 'slack',
        message: { body: 'VIP {{ traits.name }} owned by {{ run.owner }}' },
      },
      { id: 'big', type: 'send', destination: 'email', message: { body: 'Big cart' } },
      { id: 'bye', type: 'exit' },
    ],
    [
      { from: 'tag', to: 'tier', on: 'next' },
      { from: 'tier', to: 'crm', on: 'case:0' },
      { from: 'tier', to: 'big', on: 'case:1' },
      { from: 'tier', to: 'bye', on: 'else' },
      { from: 'crm', to: 'notify', on: 'next' },
      { from: 'crm', to: 'bye', on: 'failed' },
    ],
    { trigger: { type: 'event', event: 'Checkout Started' } },
  );
  const event = (total: number) => ({ type: 'track', event: 'Checkout Started', properties: { total, code: 'C1' } });

  it('a branch sees the update of the same step, says why, and the webhook result feeds the next send', () => {
    const run = runner(flow, person({ name: 'Ada' }, { audiences: ['vip'] }), { event: event(20) });
    const first = run.steps[0]!;
    expect(first.effects[0]).toEqual({
      type: 'update_profile',
      key: 'flow:r1:tag:0',
      node: 'tag',
      set: { stage: 'trial', last_code: 'C1' },
      unset: [],
      addTags: ['trial'],
      removeTags: [],
    });
    const branch = first.journal.find((j) => j.node === 'tier')!;
    expect(branch).toMatchObject({ outcome: 'case:0', to: 'crm' });
    expect(branch.reason).toBe('case 0 "vip": is in audience vip: yes; has tag trial: yes');
    expect(first.effects[1]).toEqual({
      type: 'webhook',
      key: 'flow:r1:crm:0',
      node: 'crm',
      url: 'https://crm.example/p/p1',
      method: 'POST',
      headers: {},
      body: '{"stage":"trial"}',
    });
    const done = run.feed(
      { type: 'effect_result', key: 'flow:r1:crm:0', ok: true, output: { data: { owner: 'Bo' } } },
      T0 + 5,
    );
    expect(done.effects).toEqual([
      {
        type: 'send',
        key: 'flow:r1:notify:0',
        node: 'notify',
        destination: 'slack',
        message: { body: 'VIP Ada owned by Bo' },
      },
    ]);
    expect(run.state.data).toEqual({ owner: 'Bo' });
  });

  it('takes the data case on the trigger event, else exits with the reasons of every case', () => {
    const big = runner(flow, person(), { event: event(150) });
    expect(big.steps[0]!.journal.find((j) => j.node === 'tier')).toMatchObject({
      outcome: 'case:1',
      reason: 'case 1 "big cart": event.properties.total is at least 100: yes (150)',
    });
    const small = runner(flow, person(), { event: event(20) });
    const tier = small.steps[0]!.journal.find((j) => j.node === 'tier')!;
    expect(tier.outcome).toBe('else');
    expect(tier.reason).toContain('is in audience vip: no');
    expect(tier.reason).toContain('event.properties.total is at least 100: no (20)');
    expect(small.state).toMatchObject({ status: 'completed', node: 'bye', reason: 'reached an exit' });
  });

  it('a failed webhook takes its failed edge', () => {
    const run = runner(flow, person({}, { audiences: ['vip'] }), { event: event(1) });
    run.feed({ type: 'effect_result', key: 'flow:r1:crm:0', ok: false, error: 'HTTP 500' }, T0 + 5);
    expect(run.steps[1]!.journal[0]).toMatchObject({
      node: 'crm',
      outcome: 'failed',
      to: 'bye',
      reason: 'failed: HTTP 500',
    });
    expect(run.state.status).toBe('completed');
  });

  it('a split sends the same person down the same path in every run', () => {
    const ab = def(
      [
        {
          id: 'ab',
          type: 'split',
          paths: [
            { percent: 50, name: 'A' },
            { percent: 50, name: 'B' },
          ],
        },
        { id: 'a', type: 'exit' },
        { id: 'b', type: 'exit' },
      ],
      [
        { from: 'ab', to: 'a', on: 'path:0' },
        { from: 'ab', to: 'b', on: 'path:1' },
      ],
    );
    const paths = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'].map((id) => {
      const one = runner(ab, person({}, { id }));
      const two = runner(ab, person({}, { id }));
      expect(two.state.node).toBe(one.state.node);
      return one.state.node;
    });
    expect(new Set(paths)).toEqual(new Set(['a', 'b']));
  });
});

describe('advance: goal and exit condition', () => {
  const flow = def(
    [
      { id: 'wait', type: 'wait', duration: { hours: 24 } },
      { id: 'email', type: 'send', destination: 'email', message: { body: 'Come back' } },
    ],
    chain('wait', 'email'),
    {
      trigger: { type: 'event', event: 'Added To Cart' },
      goal: { event: { event: 'Order Completed' }, withinSeconds: 3 * 86_400, exit: true },
      exit: { rule: { op: 'trait', trait: 'unsubscribed_all', cmp: '=', value: true } },
    },
  );
  const order = (at: number) => ({ type: 'track', event: 'Order Completed', timestamp: new Date(at).toISOString() });

  it('listens for the goal, and an order within the window ends the run as converted before the send', () => {
    const run = runner(flow, person());
    expect(run.state.listen).toEqual(['Order Completed']);
    const r = run.feed({ type: 'event', event: order(T0 + 5 * HOUR) }, T0 + 5 * HOUR);
    expect(r.journal.map((j) => [j.type, j.outcome])).toEqual([
      ['goal', 'converted'],
      ['end', 'exited'],
    ]);
    expect(run.state).toMatchObject({ status: 'exited', reason: 'goal reached', convertedAt: T0 + 5 * HOUR });
    expect(run.feed({ type: 'due' }, T0 + DAY).effects).toEqual([]);
  });

  it('an order dated before entry is no conversion', () => {
    const run = runner(flow, person());
    run.feed({ type: 'event', event: order(T0 - HOUR) }, T0 + HOUR);
    expect(run.state.status).toBe('waiting');
  });

  it('the exit condition is checked before the send and ends the run instead', () => {
    const run = runner(flow, person());
    const r = run.feed({ type: 'due' }, T0 + DAY, person({ unsubscribed_all: true }));
    expect(r.effects).toEqual([]);
    expect(run.state).toMatchObject({ status: 'exited', node: 'email' });
    expect(run.state.reason).toBe('exit condition holds before the send: unsubscribed_all is true: yes (true)');
  });
});

describe('resolveZone', () => {
  const flow = def([{ id: 'x', type: 'exit' }], [], { timezone: 'Europe/Paris' });
  it('takes the timezone trait, else the latest event context, else the flow default', () => {
    const events = [
      { type: 'track', event: 'a', timestamp: '2026-01-02T00:00:00Z', context: { timezone: 'Asia/Tokyo' } },
      { type: 'track', event: 'b', timestamp: '2026-01-01T00:00:00Z', context: { timezone: 'America/Chicago' } },
    ];
    expect(resolveZone(flow, person({ timezone: 'America/New_York' }, { events }))).toEqual({
      zone: 'America/New_York',
      source: 'trait',
    });
    expect(resolveZone(flow, person({ timezone: 'Not/AZone' }, { events }))).toEqual({
      zone: 'Asia/Tokyo',
      source: 'events',
    });
    expect(resolveZone(flow, person())).toEqual({ zone: 'Europe/Paris', source: 'flow' });
  });
});
