import { describe, expect, it } from 'vitest';
import {
  ATTRIBUTION_MODELS,
  type AttributionQuery,
  type AttributionRow,
  type Conversion,
  channelOf,
  creditByChannel,
  creditShares,
  foldAttribution,
  type Touch,
  touchesInLookback,
} from './attribution.ts';

const DAY = 86_400_000;
const opts = { halfLifeDays: 7 };
const t = (day: number, id: string, channel: string, direct = false): Touch => ({ at: day * DAY, id, channel, direct });
const conv = (day: number, id = '1000', revenue = 0): Conversion => ({ at: day * DAY, id, revenue });
const all = (c: Conversion, touches: Touch[]) =>
  Object.fromEntries(ATTRIBUTION_MODELS.map((m) => [m, creditShares(c, touches, m, opts)]));

describe('creditShares', () => {
  it('gives one touch everything under every model', () => {
    const shares = all(conv(10), [t(3, '1', 'a')]);
    for (const m of ATTRIBUTION_MODELS) expect(shares[m], m).toEqual([1]);
  });

  it('splits two touches: first, last, 50/50 (linear and position-based), time decay by age', () => {
    // Ages 14 and 7 days, half-life 7: weights 1/4 and 1/2 → 1/3 and 2/3.
    const s = all(conv(14), [t(0, '1', 'a'), t(7, '2', 'b')]);
    expect(s.first_touch).toEqual([1, 0]);
    expect(s.last_touch).toEqual([0, 1]);
    expect(s.last_non_direct).toEqual([0, 1]);
    expect(s.linear).toEqual([0.5, 0.5]);
    expect(s.position_based).toEqual([0.5, 0.5]);
    expect(s.time_decay![0]).toBeCloseTo(1 / 3, 12);
    expect(s.time_decay![1]).toBeCloseTo(2 / 3, 12);
  });

  it('splits three, four and five touches', () => {
    // Ages 14, 7, 0: weights 1/4, 1/2, 1 (sum 7/4) → 1/7, 2/7, 4/7.
    const three = all(conv(14), [t(0, '1', 'a'), t(7, '2', 'b'), t(14, '3', 'c')]);
    expect(three.linear!.map((x) => x * 3)).toEqual([1, 1, 1]);
    expect(three.position_based).toEqual([0.4, 0.2, 0.4]);
    for (const [i, x] of [1 / 7, 2 / 7, 4 / 7].entries()) expect(three.time_decay![i]).toBeCloseTo(x, 12);
    const four = creditShares(
      conv(9),
      [t(1, '1', 'a'), t(2, '2', 'b'), t(3, '3', 'c'), t(4, '4', 'd')],
      'position_based',
      opts,
    );
    expect(four).toEqual([0.4, 0.1, 0.1, 0.4]);
    const five = creditShares(
      conv(9),
      [1, 2, 3, 4, 5].map((d) => t(d, String(d), 'x')),
      'position_based',
      opts,
    );
    for (const [i, x] of [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4].entries()) expect(five[i]).toBeCloseTo(x, 12);
    // Half-life 1 day over ages 2 and 1: 1/4 and 1/2 → 1/3, 2/3.
    const fast = creditShares(conv(3), [t(1, '1', 'a'), t(2, '2', 'b')], 'time_decay', { halfLifeDays: 1 });
    expect(fast[0]).toBeCloseTo(1 / 3, 12);
  });

  it('last non-direct skips direct touches, and falls back to the last direct one when all are', () => {
    const c = conv(10);
    expect(creditShares(c, [t(1, '1', 'a'), t(2, '2', '(direct)', true)], 'last_non_direct', opts)).toEqual([1, 0]);
    expect(
      creditShares(c, [t(1, '1', 'a'), t(2, '2', 'b'), t(3, '3', '(direct)', true)], 'last_non_direct', opts),
    ).toEqual([0, 1, 0]);
    expect(
      creditShares(c, [t(1, '1', '(direct)', true), t(2, '2', '(direct)', true)], 'last_non_direct', opts),
    ).toEqual([0, 1]);
    // Last touch still takes the direct one.
    expect(creditShares(c, [t(1, '1', 'a'), t(2, '2', '(direct)', true)], 'last_touch', opts)).toEqual([0, 1]);
  });

  it('gives nothing when there is no touch', () => {
    for (const m of ATTRIBUTION_MODELS) expect(creditShares(conv(1), [], m, opts)).toEqual([]);
  });

  it('shares equally in time decay when touches have equal times', () => {
    expect(creditShares(conv(5), [t(2, '7', 'a'), t(2, '8', 'b')], 'time_decay', opts)).toEqual([0.5, 0.5]);
  });
});

describe('touchesInLookback', () => {
  it('keeps touches strictly before the conversion by (timestamp, id), ids compared as numbers', () => {
    const c = conv(10, '100');
    const touches = [t(10, '99', 'same-time-lower-id'), t(10, '101', 'same-time-higher-id'), t(10, '1000', 'later-id')];
    expect(touchesInLookback(c, touches, 30).map((x) => x.channel)).toEqual(['same-time-lower-id']);
    // Equal timestamps order by id (9 before 10, not as text): first touch is id 9.
    const tied = touchesInLookback(conv(20), [t(5, '10', 'ten'), t(5, '9', 'nine')], 30);
    expect(tied.map((x) => x.channel)).toEqual(['nine', 'ten']);
    expect(creditShares(conv(20), tied, 'first_touch', opts)).toEqual([1, 0]);
  });

  it('keeps a touch exactly at the lookback edge and drops one a millisecond older', () => {
    const c = conv(30);
    const edge = t(23, '1', 'edge');
    const older = { ...t(23, '2', 'older'), at: 23 * DAY - 1 };
    expect(touchesInLookback(c, [older, edge], 7).map((x) => x.channel)).toEqual(['edge']);
    expect(touchesInLookback(c, [older], 7)).toEqual([]);
  });
});

describe('creditByChannel', () => {
  it('sums the shares of touches of one channel', () => {
    const c = conv(14);
    const credit = creditByChannel(
      c,
      [t(0, '1', 'a'), t(7, '2', 'b'), t(14, '3', 'a')],
      ['linear', 'position_based'],
      opts,
    );
    expect(credit.linear.get('a')).toBeCloseTo(2 / 3, 12);
    expect(credit.linear.get('b')).toBeCloseTo(1 / 3, 12);
    expect(credit.position_based.get('a')).toBeCloseTo(0.8, 12);
    expect(credit.position_based.get('b')).toBeCloseTo(0.2, 12);
  });
});

const row = (r: Partial<AttributionRow> & Pick<AttributionRow, 'profile_id' | 'at' | 'id'>): AttributionRow => ({
  conv: false,
  revenue: null,
  touch: null,
  utm_name: null,
  utm_source: null,
  utm_medium: null,
  click_campaign: null,
  flow_id: null,
  ...r,
});

describe('channelOf', () => {
  it('names channels per grouping', () => {
    const utm = row({ profile_id: 'p', at: 0, id: '1', touch: 'utm', utm_name: 'spring', utm_source: 'google' });
    const click = row({
      profile_id: 'p',
      at: 0,
      id: '2',
      touch: 'click',
      click_campaign: { name: 'winback' },
      flow_id: 'f1',
    });
    const direct = row({ profile_id: 'p', at: 0, id: '3', touch: 'direct' });
    expect([utm, click, direct].map((r) => channelOf(r, 'campaign'))).toEqual(['spring', 'winback', '(direct)']);
    expect([utm, click, direct].map((r) => channelOf(r, 'source_medium'))).toEqual([
      'google / (not set)',
      'cairn / email',
      '(direct)',
    ]);
    expect([utm, click, direct].map((r) => channelOf(r, 'flow'))).toEqual(['(utm)', 'f1', '(direct)']);
    expect(channelOf({ ...click, click_campaign: 'plain' }, 'campaign')).toBe('plain');
    expect(channelOf({ ...click, click_campaign: null }, 'campaign')).toBe('(not set)');
  });
});

describe('foldAttribution', () => {
  const q: AttributionQuery = {
    range: { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z', timezone: 'UTC' },
    conversion: { event: 'Order Completed' },
    lookbackDays: 7,
    channelOf: 'campaign',
    models: ['first_touch', 'last_touch', 'linear', 'time_decay'],
    halfLifeDays: 7,
  };
  it('reuses touches across a person’s conversions, slides the lookback, and counts the unattributed', () => {
    const rows = [
      // Person a: touches a1 (day 0) and b (day 7); orders on day 7 (100, after b by id) and day 10 (50):
      // the second one no longer sees day 0 (lookback 7 days) but sees b again and the first order's own campaign.
      row({ profile_id: 'a', at: 0, id: '1', touch: 'utm', utm_name: 'a1' }),
      row({ profile_id: 'a', at: 7 * DAY, id: '2', touch: 'utm', utm_name: 'b' }),
      row({ profile_id: 'a', at: 7 * DAY, id: '3', conv: true, revenue: 100, touch: 'utm', utm_name: 'c' }),
      row({ profile_id: 'a', at: 10 * DAY, id: '4', conv: true, revenue: 50 }),
      // Person z: an order with no touch before it.
      row({ profile_id: 'z', at: 1 * DAY, id: '5', conv: true, revenue: 20 }),
    ];
    const out = foldAttribution(rows, q);
    const by = Object.fromEntries(out.channels.map((c) => [c.channel, c.models]));
    // Order 1 (day 7): touches a1 (age 7) and b (age 0): first a1, last b, linear ½ ½, decay ⅓ ⅔.
    // Order 2 (day 10): touches b (age 3) and c (age 3): first b, last c, linear ½ ½, decay ½ ½.
    expect(by.a1!.first_touch).toEqual({ conversions: 1, revenue: 100 });
    expect(by.a1!.last_touch).toEqual({ conversions: 0, revenue: 0 });
    expect(by.a1!.linear).toEqual({ conversions: 0.5, revenue: 50 });
    expect(by.a1!.time_decay).toEqual({ conversions: 0.333333, revenue: 33.333333 });
    expect(by.b!.first_touch).toEqual({ conversions: 1, revenue: 50 });
    expect(by.b!.last_touch).toEqual({ conversions: 1, revenue: 100 });
    expect(by.b!.linear).toEqual({ conversions: 1, revenue: 75 });
    expect(by.b!.time_decay).toEqual({ conversions: 1.166667, revenue: 91.666667 });
    expect(by.c!.last_touch).toEqual({ conversions: 1, revenue: 50 });
    expect(by.c!.time_decay).toEqual({ conversions: 0.5, revenue: 25 });
    expect(out.totals).toEqual({
      conversions: 3,
      revenue: 170,
      attributed: { conversions: 2, revenue: 150 },
      unattributed: { conversions: 1, revenue: 20 },
    });
    expect(out.channels.map((c) => c.channel)).toEqual(['b', 'c', 'a1']);
  });
});
