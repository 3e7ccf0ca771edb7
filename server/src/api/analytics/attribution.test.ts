import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { checkAttribution } from './attribution.oracle.ts';

// Hand-made people in 2025 (May is the range attributed):
// - P, two devices: on the phone (anonymous ph-1) a page from the `spring` newsletter on 05-02 10:00 (and
//   a product view in the same page load, same campaign: one touch); on the laptop (lp-1) a page with no
//   campaign on 05-05 10:00 (a direct session start), sign-in as u-merge, a click in flow-A's `winback`
//   message on 05-06 10:00 (and a link scanner's click an hour later: not a touch), the phone signs in as
//   u-merge on 05-06 12:00 (stage 2 merges the devices), the order (revenue 120) on the laptop 05-07 10:00.
// - Q: a page from `old` (google / cpc) on 03-01, an order (no revenue, total 30) on 05-10: nothing in 30 days.
// - R: a page from `summer` (facebook / social) on 05-20 10:00 and, at the same instant, a click in flow-B
//   (no campaign); orders on 05-21 10:00 (50) and 05-22 10:00 (70) — the second one reuses the touches of
//   the first and also sees the first order itself, a direct session start.
const camp = (name: string, source: string, medium: string) => ({ campaign: { name, source, medium } });
const HAND_MADE: object[] = [
  {
    anonymousId: 'ph-1',
    type: 'page',
    name: 'Home',
    timestamp: '2025-05-02T10:00:00Z',
    context: camp('spring', 'newsletter', 'email'),
  },
  {
    anonymousId: 'ph-1',
    type: 'track',
    event: 'Product Viewed',
    timestamp: '2025-05-02T10:01:00Z',
    context: camp('spring', 'newsletter', 'email'),
  },
  { anonymousId: 'lp-1', type: 'page', name: 'Home', timestamp: '2025-05-05T10:00:00Z' },
  { anonymousId: 'lp-1', userId: 'u-merge', type: 'identify', timestamp: '2025-05-05T10:05:00Z' },
  {
    userId: 'u-merge',
    type: 'track',
    event: 'Link Clicked',
    timestamp: '2025-05-06T10:00:00Z',
    properties: { flowId: 'flow-A', nodeId: 'mail', campaign: 'winback', machine: false },
  },
  {
    userId: 'u-merge',
    type: 'track',
    event: 'Link Clicked',
    timestamp: '2025-05-06T11:00:00Z',
    properties: { flowId: 'flow-A', nodeId: 'mail', campaign: 'scanner', machine: true, machineReason: 'scanner' },
  },
  { anonymousId: 'ph-1', userId: 'u-merge', type: 'identify', timestamp: '2025-05-06T12:00:00Z' },
  {
    userId: 'u-merge',
    type: 'track',
    event: 'Order Completed',
    timestamp: '2025-05-07T10:00:00Z',
    properties: { revenue: 120, total: 999 },
  },
  {
    anonymousId: 'q-1',
    type: 'page',
    name: 'Home',
    timestamp: '2025-03-01T10:00:00Z',
    context: camp('old', 'google', 'cpc'),
  },
  {
    anonymousId: 'q-1',
    type: 'track',
    event: 'Order Completed',
    timestamp: '2025-05-10T10:00:00Z',
    properties: { total: 30 },
  },
  {
    anonymousId: 'r-1',
    type: 'page',
    name: 'Home',
    timestamp: '2025-05-20T10:00:00Z',
    context: camp('summer', 'facebook', 'social'),
  },
  {
    anonymousId: 'r-1',
    type: 'track',
    event: 'Link Clicked',
    timestamp: '2025-05-20T10:00:00Z',
    properties: { flowId: 'flow-B', nodeId: 'sms' },
  },
  {
    anonymousId: 'r-1',
    type: 'track',
    event: 'Order Completed',
    timestamp: '2025-05-21T10:00:00Z',
    properties: { revenue: 50 },
  },
  {
    anonymousId: 'r-1',
    type: 'track',
    event: 'Order Completed',
    timestamp: '2025-05-22T10:00:00Z',
    properties: { revenue: 70 },
  },
];

const MAY = { from: '2025-05-01T00:00:00Z', to: '2025-06-01T00:00:00Z', timezone: 'UTC' };
const ORDER = { event: 'Order Completed' };
type Credit = { conversions: number; revenue: number };
type Answer = { channels: { channel: string; models: Record<string, Credit> }[]; totals: Record<string, unknown> };
const byChannel = (a: Answer) => Object.fromEntries(a.channels.map((c) => [c.channel, c.models]));
/** Per channel, the credit of one model (channels that got none are left out). */
const column = (a: Answer, model: string) =>
  Object.fromEntries(
    a.channels
      .filter((c) => c.models[model]!.conversions !== 0)
      .map((c) => [c.channel, [c.models[model]!.conversions, c.models[model]!.revenue]]),
  );

describeOnDatabases('attribution on %s', (mode) => {
  let h: FlowHarness;
  // The generated history is in 2026, apart from the hand-made people (2025).
  const events = generateAnalyticsEvents({ seed: 41, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('attribution.test.ts', mode);
    await sendGenerated(h.cairn, events);
    // One at a time: ids follow arrival, so R's page comes before its click of the same instant.
    for (const e of HAND_MADE) await h.send(e);
    await settle(h.cairn.sql);
    // The phone's events are the merged person's.
    const [row] = await h.cairn.sql<{ n: number }[]>`
      SELECT count(DISTINCT profile_id)::int AS n FROM events WHERE anonymous_id IN ('ph-1', 'lp-1') OR user_id = 'u-merge'`;
    expect(row!.n).toBe(1);
  }, 300_000);
  afterAll(() => h?.close());

  it('matches an independent evaluator over the generated history (zones, DST, filters, lookbacks, models)', async () => {
    await checkAttribution({ post: (path, body) => h.post(path, body), events });
  }, 120_000);

  it('credits every model by hand-computed numbers, across two merged devices', async () => {
    const res = await h.post('/analytics/attribution', { range: MAY, conversion: ORDER });
    expect(res.status, res.text).toBe(200);
    const a = res.body as Answer;
    expect(res.body.models).toEqual([
      'first_touch',
      'last_touch',
      'last_non_direct',
      'linear',
      'position_based',
      'time_decay',
    ]);
    // P's order: spring (phone, 5 days before), (direct) (laptop, 2 days), winback (click, 1 day).
    // R1: summer and (not set) (the flow-B click), same instant, summer first by id.
    // R2: summer, (not set), (direct) (R1 itself started a session).
    expect(a.totals).toEqual({
      conversions: 4,
      revenue: 270,
      attributed: { conversions: 3, revenue: 240 },
      unattributed: { conversions: 1, revenue: 30 },
    });
    expect(column(a, 'first_touch')).toEqual({ spring: [1, 120], summer: [2, 120] });
    expect(column(a, 'last_touch')).toEqual({ winback: [1, 120], '(not set)': [1, 50], '(direct)': [1, 70] });
    expect(column(a, 'last_non_direct')).toEqual({ winback: [1, 120], '(not set)': [2, 120] });
    // Linear: P ⅓ each (40); R1 ½ each (25); R2 ⅓ each (23.333333).
    expect(column(a, 'linear')).toEqual({
      spring: [0.333333, 40],
      '(direct)': [0.666667, 63.333333],
      winback: [0.333333, 40],
      summer: [0.833333, 48.333333],
      '(not set)': [0.833333, 48.333333],
    });
    // Position-based: P 40/20/40; R1 50/50; R2 40/20/40.
    expect(column(a, 'position_based')).toEqual({
      spring: [0.4, 48],
      '(direct)': [0.6, 52],
      winback: [0.4, 48],
      summer: [0.9, 53],
      '(not set)': [0.7, 39],
    });
    // Time decay, half-life 7 days: P's weights 2^(-5/7), 2^(-2/7), 2^(-1/7) = .6095, .8203, .9057
    // (sum 2.3355) → .260968, .351236, .387796; R1 ½ ½ (same age); R2 2^(-2/7), 2^(-2/7), 2^(-1/7)
    // → .322156, .322156, .355689.
    const decay = byChannel(a);
    const expected: Record<string, [number, number]> = {
      spring: [0.260968, 31.316102],
      '(direct)': [0.706925, 67.046556],
      winback: [0.387796, 46.535549],
      summer: [0.822156, 47.550896],
      '(not set)': [0.822156, 47.550896],
    };
    for (const [channel, [n, revenue]] of Object.entries(expected)) {
      expect(decay[channel]!.time_decay!.conversions, channel).toBeCloseTo(n, 5);
      expect(decay[channel]!.time_decay!.revenue, channel).toBeCloseTo(revenue, 4);
    }
    // Every model shares out exactly the attributed conversions and revenue; the scanner's click is no channel.
    for (const model of res.body.models as string[]) {
      const sum = a.channels.reduce((s, c) => s + c.models[model]!.conversions, 0);
      const rev = a.channels.reduce((s, c) => s + c.models[model]!.revenue, 0);
      expect(sum, model).toBeCloseTo(3, 5);
      expect(rev, model).toBeCloseTo(240, 4);
    }
    expect(Object.keys(decay).sort()).toEqual(['(direct)', '(not set)', 'spring', 'summer', 'winback']);
  });

  it('groups by source / medium and by flow, and counts only the touch kinds asked for', async () => {
    const sm = await h.post('/analytics/attribution', {
      range: MAY,
      conversion: ORDER,
      channelOf: 'source_medium',
      models: ['first_touch', 'last_touch'],
    });
    expect(sm.status, sm.text).toBe(200);
    expect(column(sm.body, 'first_touch')).toEqual({ 'newsletter / email': [1, 120], 'facebook / social': [2, 120] });
    expect(column(sm.body, 'last_touch')).toEqual({ 'cairn / email': [2, 170], '(direct)': [1, 70] });
    expect(Object.keys(sm.body.channels[0].models)).toEqual(['first_touch', 'last_touch']);

    const flows = await h.post('/analytics/attribution', {
      range: MAY,
      conversion: ORDER,
      channelOf: 'flow',
      models: ['last_non_direct'],
    });
    expect(column(flows.body, 'last_non_direct')).toEqual({ 'flow-A': [1, 120], 'flow-B': [2, 120] });

    // UTM touches only: P has spring, R1 and R2 summer.
    const utm = await h.post('/analytics/attribution', {
      range: MAY,
      conversion: ORDER,
      touchpoints: ['utm'],
      models: ['linear'],
    });
    expect(column(utm.body, 'linear')).toEqual({ spring: [1, 120], summer: [2, 120] });
    expect(utm.body.totals.unattributed).toEqual({ conversions: 1, revenue: 30 });
  });

  it('applies the lookback: a touch exactly at its edge counts, older ones do not', async () => {
    // One day: P sees only winback (exactly 24 h before); R1 sees summer and the click (24 h); R2 only R1.
    const day = await h.post('/analytics/attribution', {
      range: MAY,
      conversion: ORDER,
      lookback: { value: 1, unit: 'days' },
      models: ['first_touch', 'linear'],
    });
    expect(day.status, day.text).toBe(200);
    expect(column(day.body, 'first_touch')).toEqual({ winback: [1, 120], summer: [1, 50], '(direct)': [1, 70] });
    expect(column(day.body, 'linear')).toEqual({
      winback: [1, 120],
      summer: [0.5, 25],
      '(not set)': [0.5, 25],
      '(direct)': [1, 70],
    });
    // 90 days: Q's page from `old` (70 days before its order) now counts; the range is what is attributed.
    const long = await h.post('/analytics/attribution', {
      range: { from: '2025-05-10T00:00:00Z', to: '2025-05-11T00:00:00Z', timezone: 'UTC' },
      conversion: ORDER,
      lookback: { value: 90, unit: 'days' },
      models: ['last_touch'],
      revenueProperty: 'total',
    });
    expect(long.status, long.text).toBe(200);
    expect(column(long.body, 'last_touch')).toEqual({ old: [1, 30] });
    expect(long.body.totals).toEqual({
      conversions: 1,
      revenue: 30,
      attributed: { conversions: 1, revenue: 30 },
      unattributed: { conversions: 0, revenue: 0 },
    });
  });

  it('reads revenue from the property named, JSON numbers only', async () => {
    const res = await h.post('/analytics/attribution', {
      range: MAY,
      conversion: ORDER,
      revenueProperty: 'total',
      models: ['first_touch'],
    });
    // P's total is 999, Q's 30, R's orders have none (0).
    expect(res.body.totals).toEqual({
      conversions: 4,
      revenue: 1029,
      attributed: { conversions: 3, revenue: 999 },
      unattributed: { conversions: 1, revenue: 30 },
    });
  });

  it('refuses bad queries with a 400 that says what is wrong', async () => {
    const cases: [object, RegExp][] = [
      [{ conversion: ORDER }, /range/],
      [{ range: MAY }, /conversion/],
      [{ range: MAY, conversion: ORDER, lookback: { value: 366, unit: 'days' } }, /lookback\.value/],
      [{ range: MAY, conversion: ORDER, lookback: { value: 0, unit: 'days' } }, /lookback\.value/],
      [{ range: MAY, conversion: ORDER, lookback: { value: 2, unit: 'weeks' } }, /lookback\.unit/],
      [{ range: MAY, conversion: ORDER, models: [] }, /models/],
      [{ range: MAY, conversion: ORDER, models: ['u_shaped'] }, /models/],
      [{ range: MAY, conversion: ORDER, models: ['linear', 'linear'] }, /named twice/],
      [{ range: MAY, conversion: ORDER, channelOf: 'medium' }, /channelOf/],
      [{ range: MAY, conversion: ORDER, halfLifeDays: 0 }, /halfLifeDays/],
      [{ range: MAY, conversion: ORDER, touchpoints: ['email'] }, /touchpoints/],
      [{ range: MAY, conversion: { type: 'purchase' } }, /conversion\.type/],
      [{ range: { ...MAY, from: 'yesterday' }, conversion: ORDER }, /range\.from/],
      [{ range: MAY, conversion: ORDER, window: 7 }, /window/],
    ];
    for (const [body, message] of cases) {
      const res = await h.post('/analytics/attribution', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
  });
});
