import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { checkActive } from './active.oracle.ts';

// Hand-made people in 2025, apart from the generated history (2026):
// - m-user: views on device m-a (anonymous) on 2025-03-03, on device m-b on 03-18 (then signs in there),
//   orders on 03-25; m-a signs in as m-user on 03-26 and stage 2 merges the devices into one person.
// - c-a: active on Monday 03-31 00:30 Berlin time (Sunday 22:30 UTC) and Monday 04-07 23:30 Berlin time.
// - d-a: active on Sunday 03-09 and Monday 03-10 (early morning, Berlin time).
const HAND_MADE = [
  { anonymousId: 'm-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-03T10:00:00Z' },
  { anonymousId: 'm-b', type: 'track', event: 'Product Viewed', timestamp: '2025-03-18T10:00:00Z' },
  { anonymousId: 'm-b', type: 'identify', userId: 'm-user', timestamp: '2025-03-18T10:05:00Z' },
  { anonymousId: 'm-b', userId: 'm-user', type: 'track', event: 'Order Completed', timestamp: '2025-03-25T10:00:00Z' },
  { anonymousId: 'm-a', type: 'identify', userId: 'm-user', timestamp: '2025-03-26T10:00:00Z' },
  { anonymousId: 'c-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-30T22:30:00Z' },
  { anonymousId: 'c-a', type: 'track', event: 'Order Completed', timestamp: '2025-04-07T21:30:00Z' },
  { anonymousId: 'd-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-09T04:30:00Z' },
  { anonymousId: 'd-a', type: 'track', event: 'Order Completed', timestamp: '2025-03-10T04:30:00Z' },
];

describeOnDatabases('active users on %s', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 23, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('active.test.ts', mode);
    await sendGenerated(h.cairn, events);
    for (const e of HAND_MADE) await h.send(e);
    await settle(h.cairn.sql);
  }, 600_000);
  afterAll(() => h?.close());

  it('matches an independent evaluator over the generated history (zones, DST, filters, intervals)', async () => {
    await checkActive({ post: (path, body) => h.post(path, body), events });
  }, 120_000);

  it('counts a person whose devices merged once, in the windows and the lifecycle', async () => {
    const days = await h.post('/analytics/active', {
      range: { from: '2025-03-17T00:00:00+01:00', to: '2025-03-19T00:00:00+01:00', timezone: 'Europe/Berlin' },
    });
    expect(days.status, days.text).toBe(200);
    // 03-18: m-user (both devices: one person) and d-a in the 30 days; identify is not activity.
    expect(days.body.series).toEqual([
      { day: '2025-03-17', start: '2025-03-16T23:00:00.000Z', dau: 0, wau: 0, mau: 2, stickiness: 0 },
      { day: '2025-03-18', start: '2025-03-17T23:00:00.000Z', dau: 1, wau: 1, mau: 2, stickiness: 0.5 },
    ]);
    expect(days.body.stickiness).toBe(0.25);

    const weeks = await h.post('/analytics/active', {
      range: { from: '2025-03-03T00:00:00+01:00', to: '2025-04-14T00:00:00+02:00', timezone: 'Europe/Berlin' },
      interval: 'week',
    });
    expect(weeks.status, weeks.text).toBe(200);
    const rows = weeks.body.lifecycle.buckets.map(
      (b: { start: string; new: number; returning: number; resurrecting: number; dormant: number }) => [
        b.start,
        b.new,
        b.returning,
        b.resurrecting,
        b.dormant,
      ],
    );
    // m-user comes back on the second device in the week of 03-17: resurrecting, not new.
    expect(rows).toEqual([
      ['2025-03-02T23:00:00.000Z', 2, 0, 0, 0],
      ['2025-03-09T23:00:00.000Z', 0, 1, 0, -1],
      ['2025-03-16T23:00:00.000Z', 0, 0, 1, -1],
      ['2025-03-23T23:00:00.000Z', 0, 1, 0, 0],
      ['2025-03-30T22:00:00.000Z', 1, 0, 0, -1],
      ['2025-04-06T22:00:00.000Z', 0, 1, 0, 0],
    ]);
  });

  it('refuses bad queries with a 400 that says what is wrong', async () => {
    const range = { from: '2025-03-01T00:00:00Z', to: '2025-04-01T00:00:00Z', timezone: 'UTC' };
    const cases: [object, RegExp][] = [
      [{}, /range/],
      [{ range, interval: 'hour' }, /interval/],
      [{ range, events: { type: 'purchase' } }, /events\.type.*not an event type/],
      [{ range, events: { event: '' } }, /events\.event/],
      [{ range: { ...range, from: 'yesterday' } }, /range\.from/],
      [{ range: { ...range, to: '2027-06-01T00:00:00Z' } }, /range\.to: the range may cover at most 732 days/],
      [{ range, window: 7 }, /window/],
    ];
    for (const [body, message] of cases) {
      const res = await h.post('/analytics/active', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
  });
});
