import { describe, expect, it } from 'vitest';
import { r } from '../rules/builder.ts';
import { flow } from './builder.ts';
import type { ProfileFacts } from './facts.ts';
import { simulate } from './simulate.ts';

const START = Date.parse('2026-03-02T09:00:00Z'); // a Monday
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

const person = (traits: ProfileFacts['traits'] = {}, more: Partial<ProfileFacts> = {}): ProfileFacts => ({
  id: 'p1',
  traits,
  audiences: [],
  tags: [],
  ...more,
});
const track = (event: string, properties: Record<string, unknown> = {}) => ({ type: 'track', event, properties });

describe('simulate: cart abandoned 24 h, the order as goal exit', () => {
  const cart = flow('Cart abandoned')
    .trigger.event('Added To Cart')
    .goal({ event: 'Order Completed' }, { days: 3 }, { exit: true })
    .wait({ hours: 24 }, { id: 'wait_24h' })
    .send(
      'email',
      { subject: 'Forgot your {{ event.properties.product }}?', body: 'Hi {{ traits.first_name }}' },
      { id: 'reminder' },
    )
    .build();

  it('sends the reminder 24 hours after the cart when no order comes', () => {
    const sim = simulate(cart, {
      profile: person({ first_name: 'Ada' }),
      start: START,
      horizon: { days: 7 },
      script: [{ at: START + HOUR, event: track('Added To Cart', { product: 'Lamp' }) }],
    });
    expect(sim.entered).toMatchObject({ at: START + HOUR });
    expect(sim.path).toEqual(['wait_24h', 'reminder']);
    expect(sim.messages).toEqual([
      {
        at: START + 25 * HOUR,
        node: 'reminder',
        destination: 'email',
        subject: 'Forgot your Lamp?',
        body: 'Hi Ada',
        key: 'flow:simulation:reminder:0',
      },
    ]);
    expect(sim.end).toMatchObject({ status: 'completed', at: START + 25 * HOUR });
  });

  it('an order within the window ends the run before the reminder', () => {
    const sim = simulate(cart, {
      profile: person(),
      start: START,
      horizon: { days: 7 },
      script: [
        { at: START + HOUR, event: track('Added To Cart', { product: 'Lamp' }) },
        { at: START + 5 * HOUR, event: track('Order Completed') },
      ],
    });
    expect(sim.messages).toEqual([]);
    expect(sim.end).toMatchObject({ status: 'exited', reason: 'goal reached', at: START + 5 * HOUR });
    expect(sim.steps.map((s) => `${iso(s.at)} ${s.type} ${s.outcome}`)).toEqual([
      '2026-03-02T10:00:00.000Z enter entered',
      '2026-03-02T10:00:00.000Z wait waiting',
      '2026-03-02T14:00:00.000Z goal converted',
      '2026-03-02T14:00:00.000Z end exited',
    ]);
  });
});

describe('simulate: coupon unused after 3 days → SMS', () => {
  const coupon = flow('Coupon reminder')
    .trigger.event('Signed Up')
    .action('shop', 'issue_coupon', { percent: 10 }, { id: 'issue', keep: { coupon: 'code' } })
    .send('email', { subject: 'Welcome', body: 'Your code: {{ run.coupon }}' }, { id: 'welcome' })
    .waitForEvent(
      { event: 'Coupon Redeemed' },
      { days: 3 },
      {
        matched: (p) => p.exit({ id: 'used' }),
        timeout: (p) => p.send('sms', { body: '{{ run.coupon }} expires soon' }, { id: 'sms' }),
      },
      { id: 'wait_redeem', match: [{ field: 'properties.coupon', run: 'coupon' }] },
    )
    .build();
  const options = (script: { at: number; event: Record<string, unknown> }[]) => ({
    profile: person({ phone: '+4915100000' }),
    start: START,
    horizon: { days: 10 },
    script: [{ at: START, event: track('Signed Up') }, ...script],
    results: () => ({ ok: true as const, output: { code: 'SAVE10' } }),
  });

  it('sends the SMS when the coupon is still unused after 3 days (another coupon does not count)', () => {
    const sim = simulate(coupon, options([{ at: START + DAY, event: track('Coupon Redeemed', { coupon: 'OTHER' }) }]));
    expect(sim.messages.map((m) => [iso(m.at), m.destination, m.body])).toEqual([
      ['2026-03-02T09:00:00.000Z', 'email', 'Your code: SAVE10'],
      ['2026-03-05T09:00:00.000Z', 'sms', 'SAVE10 expires soon'],
    ]);
    expect(sim.effects.map((e) => e.effect.type)).toEqual(['action', 'send', 'send']);
    expect(sim.path).toEqual(['issue', 'welcome', 'wait_redeem', 'sms']);
  });

  it('no SMS when the coupon is redeemed on day 2', () => {
    const sim = simulate(
      coupon,
      options([{ at: START + 2 * DAY, event: track('Coupon Redeemed', { coupon: 'SAVE10' }) }]),
    );
    expect(sim.messages.map((m) => m.destination)).toEqual(['email']);
    expect(sim.path).toEqual(['issue', 'welcome', 'wait_redeem', 'used']);
    expect(sim.end).toMatchObject({ status: 'completed', at: START + 2 * DAY });
  });
});

describe('simulate: VIP birthday − 7 days at local 10:00 in two zones', () => {
  const birthday = flow('VIP birthday')
    .trigger.dateTrait('birthday', { offsetDays: -7, time: '10:00', repeat: 'yearly' })
    .entry({ rule: r.inAudience('vip'), reentry: { afterDays: 300 } })
    .send(
      'email',
      { subject: 'A gift for you, {{ traits.first_name }}', body: 'Happy birthday next week!' },
      { id: 'gift' },
    )
    .build();

  it.each([
    ['Europe/Berlin', '2026-06-08T08:00:00.000Z'],
    ['America/New_York', '2026-06-08T14:00:00.000Z'],
  ])('%s', (zone, expected) => {
    const sim = simulate(birthday, {
      profile: person({ birthday: '1990-06-15', timezone: zone, first_name: 'Ada' }, { audiences: ['vip'] }),
      start: START,
      horizon: { days: 180 },
    });
    expect(sim.entered?.reason).toContain(`birthday "1990-06-15" -7 days at 10:00 ${zone}`);
    expect(sim.messages.map((m) => [iso(m.at), m.subject])).toEqual([[expected, 'A gift for you, Ada']]);
  });

  it('a person outside the VIP audience is refused with the reason', () => {
    const sim = simulate(birthday, {
      profile: person({ birthday: '1990-06-15', timezone: 'Europe/Berlin' }),
      start: START,
      horizon: { days: 180 },
    });
    expect(sim.entered).toBeUndefined();
    expect(sim.refused).toEqual([
      {
        at: Date.parse('2026-06-08T08:00:00Z'),
        reason: expect.stringContaining('entry rule does not hold: is in audience vip: no'),
      },
    ]);
    expect(sim.messages).toEqual([]);
  });
});

describe('simulate: registered but no first order', () => {
  const noOrder = flow('No first order')
    .trigger.event('Signed Up')
    .wait({ days: 1 }, { id: 'd1' })
    .branch([{ name: 'ordered', rule: r.performed('Order Completed'), path: (p) => p.exit({ id: 'ordered' }) }], (p) =>
      p
        .send('email', { body: 'Your first-order coupon' }, { id: 'coupon' })
        .wait({ days: 2 }, { id: 'd3' })
        .branch([{ name: 'ordered', rule: r.performed('Order Completed'), path: (q) => q.goto('ordered') }], (q) =>
          q
            .send('sms', { body: 'Your coupon expires tomorrow' }, { id: 'expiry' })
            .wait({ days: 4 }, { id: 'd7' })
            .branch([{ name: 'ordered', rule: r.performed('Order Completed'), path: (s) => s.goto('ordered') }], (s) =>
              s.updateProfile({ addTags: ['needs_manual_followup'] }, { id: 'followup' }),
            ),
        ),
    )
    .build();

  it('D1 coupon, D3 expiry reminder, D7 tag for manual follow-up', () => {
    const sim = simulate(noOrder, {
      profile: person(),
      start: START,
      horizon: { days: 10 },
      script: [{ at: START, event: track('Signed Up') }],
    });
    expect(sim.messages.map((m) => [(m.at - START) / DAY, m.destination])).toEqual([
      [1, 'email'],
      [3, 'sms'],
    ]);
    expect(sim.effects.at(-1)).toMatchObject({
      at: START + 7 * DAY,
      effect: { type: 'update_profile', addTags: ['needs_manual_followup'] },
    });
  });

  it('an order on day 2 stops the flow at the D3 check, with the count that decided it', () => {
    const sim = simulate(noOrder, {
      profile: person(),
      start: START,
      horizon: { days: 10 },
      script: [
        { at: START, event: track('Signed Up') },
        { at: START + 2 * DAY, event: track('Order Completed', { total: 40 }) },
      ],
    });
    expect(sim.messages.map((m) => m.destination)).toEqual(['email']);
    const d3 = sim.steps.filter((s) => s.type === 'branch')[1]!;
    expect(d3).toMatchObject({
      outcome: 'case:0',
      to: 'ordered',
      reason: 'case 0 "ordered": performed "Order Completed": yes (1)',
    });
  });
});

describe('simulate: more seed flows', () => {
  it('new-user activation: D1 email coupon, D3 SMS guide, D7 coupon', () => {
    const activation = flow('Activation')
      .trigger.event('Signed Up')
      .wait({ days: 1 })
      .send('email', { body: 'Welcome coupon' })
      .wait({ days: 2 })
      .send('sms', { body: 'How to get started' })
      .wait({ days: 4 })
      .send('email', { body: 'A second coupon' })
      .build();
    const sim = simulate(activation, {
      profile: person(),
      start: START,
      horizon: { days: 30 },
      script: [{ at: START, event: track('Signed Up') }],
    });
    expect(sim.messages.map((m) => [(m.at - START) / DAY, m.destination, m.body])).toEqual([
      [1, 'email', 'Welcome coupon'],
      [3, 'sms', 'How to get started'],
      [7, 'email', 'A second coupon'],
    ]);
  });

  it('dormant high spender: entry on average order ≥ 600, email, D7 SMS unless an order comes', () => {
    const dormant = flow('Dormant high spender')
      .trigger.audienceEntered('dormant_60d')
      .entry({ rule: r.aggregate('avg', 'Order Completed', { property: 'total' }).gte(600) })
      .send('email', { body: 'We miss you' })
      .waitForEvent(
        { event: 'Order Completed' },
        { days: 7 },
        { matched: (p) => p.exit(), timeout: (p) => p.send('sms', { body: 'Still here for you' }) },
      )
      .build();
    const history = [
      { type: 'track', event: 'Order Completed', timestamp: '2025-10-01T00:00:00Z', properties: { total: 500 } },
      { type: 'track', event: 'Order Completed', timestamp: '2025-11-01T00:00:00Z', properties: { total: '700.5' } },
    ];
    const run = (events: typeof history) =>
      simulate(dormant, {
        profile: person({}, { events }),
        start: START,
        horizon: { days: 30 },
        script: [{ at: START + HOUR, audiences: ['dormant_60d'] }],
      });
    const spender = run(history);
    expect(spender.entered?.reason).toContain('avg of total over "Order Completed" is at least 600: yes (600.25)');
    expect(spender.messages.map((m) => [(m.at - START) / HOUR, m.destination])).toEqual([
      [1, 'email'],
      [1 + 7 * 24, 'sms'],
    ]);
    const small = run([history[0]!]);
    expect(small.entered).toBeUndefined();
    expect(small.refused[0]?.reason).toContain('(500)');
  });

  it('every Monday 09:00 to an audience', () => {
    const weekly = flow('Weekly digest')
      .trigger.schedule('0 9 * * 1', 'Europe/Berlin', 'newsletter')
      .send('email', { body: 'This week' })
      .build();
    const sim = simulate(weekly, {
      profile: person({}, { audiences: ['newsletter'] }),
      start: Date.parse('2026-03-25T00:00:00Z'),
      horizon: { days: 14 },
    });
    expect(sim.messages.map((m) => iso(m.at))).toEqual(['2026-03-30T07:00:00.000Z']);
  });

  it('a country holiday with an offset, in the flow zone', () => {
    const holiday = flow('Unity day', { timezone: 'Europe/Berlin' })
      .trigger.calendar({ country: 'DE' }, { offsetDays: -3, time: '09:00' })
      .send('email', { body: 'Long weekend ahead' })
      .build();
    const sim = simulate(holiday, {
      profile: person(),
      start: Date.parse('2026-09-01T00:00:00Z'),
      horizon: { days: 60 },
    });
    expect(sim.entered?.reason).toContain('Tag der Deutschen Einheit 2026-10-03 -3 days at 09:00 Europe/Berlin');
    expect(sim.messages.map((m) => iso(m.at))).toEqual(['2026-09-30T07:00:00.000Z']);
  });

  it('membership expiry − 3 days: a renewal date moved earlier is re-planned', () => {
    const expiry = flow('Expiry reminder', { timezone: 'Europe/Berlin' })
      .trigger.api()
      .waitUntilTrait('expires_at', { offsetDays: -3, time: '09:00' }, { id: 'before_expiry' })
      .send('email', { body: 'Your membership ends on {{ traits.expires_at }}' })
      .build();
    const sim = simulate(expiry, {
      profile: person({ expires_at: '2026-04-30' }),
      start: START,
      horizon: { days: 90 },
      script: [{ at: START + DAY, traits: { expires_at: '2026-03-20' } }],
    });
    expect(sim.messages.map((m) => [iso(m.at), m.body])).toEqual([
      ['2026-03-17T08:00:00.000Z', 'Your membership ends on 2026-03-20'],
    ]);
  });
});
