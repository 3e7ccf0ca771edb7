import type { Fragment, RetentionQuery } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PinnedReader } from '../../pipeline/measure/index.ts';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { CASES, checkRetention } from './retention.oracle.ts';
import { readRetention } from './retention-read.ts';

// Hand-made people in 2025, apart from the generated history (2026):
// - m-user: first views a product on device m-a (anonymous) on 2025-03-03, before the cohort range; views
//   again on device m-b on 03-18, signs in there, orders on 03-25; m-a signs in as m-user on 03-26, and
//   stage 2 merges the two devices: their first view ever is the one of 03-03.
// - c-a: views at 2025-03-30T22:30Z — Monday 00:30 in Berlin (after the DST change), still Sunday in UTC —
//   orders 15 minutes later and again on Monday 04-07 at 23:30 Berlin time.
// - d-a: views on Saturday 2025-03-08 at 23:30 in New York, orders on Monday 03-10 at 00:30 (after the
//   23-hour day of the US DST change): two local days later, though less than 48 hours.
const HAND_MADE = [
  { anonymousId: 'm-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-03T10:00:00Z' },
  { anonymousId: 'm-b', type: 'track', event: 'Product Viewed', timestamp: '2025-03-18T10:00:00Z' },
  { anonymousId: 'm-b', type: 'identify', userId: 'm-user', timestamp: '2025-03-18T10:05:00Z' },
  { anonymousId: 'm-b', userId: 'm-user', type: 'track', event: 'Order Completed', timestamp: '2025-03-25T10:00:00Z' },
  { anonymousId: 'm-a', type: 'identify', userId: 'm-user', timestamp: '2025-03-26T10:00:00Z' },
  { anonymousId: 'c-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-30T22:30:00Z' },
  { anonymousId: 'c-a', type: 'track', event: 'Order Completed', timestamp: '2025-03-30T22:45:00Z' },
  { anonymousId: 'c-a', type: 'track', event: 'Order Completed', timestamp: '2025-04-07T21:30:00Z' },
  { anonymousId: 'd-a', type: 'track', event: 'Product Viewed', timestamp: '2025-03-09T04:30:00Z' },
  { anonymousId: 'd-a', type: 'track', event: 'Order Completed', timestamp: '2025-03-10T04:30:00Z' },
];

const views = { event: 'Product Viewed' };
const orders = { event: 'Order Completed' };
const weeks = (timezone: string) => ({ from: '2025-03-17T00:00:00+01:00', to: '2025-04-07T00:00:00+02:00', timezone });
const table = (cohorts: { size: number; periods: { people: number }[] }[]) =>
  cohorts.map((c) => [c.size, ...c.periods.map((p) => p.people)]);

describeOnDatabases('retention on %s', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 19, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('retention.test.ts', mode);
    await sendGenerated(h.cairn, events);
    for (const e of HAND_MADE) await h.send(e);
    await settle(h.cairn.sql);
  }, 600_000);
  afterAll(() => h?.close());

  it('matches an independent evaluator over the generated history (zones, DST, modes, bounded and not)', async () => {
    await checkRetention({ post: (path, body) => h.post(path, body), events });
  }, 120_000);

  it('reads the same rows through the one pass per person (whole or in slices) and through the per-bucket join', async () => {
    const reader = {
      rows: (q: Fragment) => {
        const { text, values } = q.render();
        return h.cairn.sql.unsafe(text, values as never[]);
      },
    } as unknown as PinnedReader;
    const now = new Date();
    const sorted = (rows: { cohort_ms: number; period: number; people: number }[]) =>
      rows.map((r) => [Number(r.cohort_ms), r.period, r.people]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
    let people = 0;
    for (const c of CASES)
      for (const mode of ['first_time', 'recurring'] as const)
        for (const bounded of [true, false]) {
          const q = { ...c.body, mode, bounded } as RetentionQuery;
          const pass = sorted(await readRetention(reader, q, now, undefined, 'pass', 1));
          expect(pass, c.name).toEqual(sorted(await readRetention(reader, q, now, undefined, 'join')));
          // Cut in slices of the people, read at once: the same rows summed.
          expect(sorted(await readRetention(reader, q, now, undefined, 'pass', 3)), c.name).toEqual(pass);
          people += pass.length;
        }
    expect(people).toBeGreaterThan(0);
  }, 120_000);

  it('follows a merge of two devices and its undo (funnels and retention read events as they are now)', async () => {
    // 2024, apart from the rest: device x-a views on Monday 03-04; device x-b views on 03-11, signs in as
    // x-user and orders on 03-12; x-a signs in as x-user on 03-13 and the two devices merge.
    const range = { from: '2024-03-04T00:00:00Z', to: '2024-03-18T00:00:00Z', timezone: 'UTC' };
    const retention = async () => {
      const r = await h.post('/analytics/retention', {
        range,
        cohort: 'week',
        start: views,
        return: orders,
        mode: 'first_time',
        periods: 1,
        bounded: true,
      });
      expect(r.status, r.text).toBe(200);
      return table(r.body.cohorts);
    };
    const funnel = async () => {
      const r = await h.post('/analytics/funnels', {
        range,
        steps: [{ events: views }, { events: orders }],
        window: { value: 14, unit: 'days' },
      });
      expect(r.status, r.text).toBe(200);
      return r.body.steps.map((s: { entered: number }) => s.entered);
    };
    for (const e of [
      { anonymousId: 'x-a', type: 'track', event: 'Product Viewed', timestamp: '2024-03-04T10:00:00Z' },
      { anonymousId: 'x-b', type: 'track', event: 'Product Viewed', timestamp: '2024-03-11T10:00:00Z' },
      { anonymousId: 'x-b', type: 'identify', userId: 'x-user', timestamp: '2024-03-11T10:05:00Z' },
      {
        anonymousId: 'x-b',
        userId: 'x-user',
        type: 'track',
        event: 'Order Completed',
        timestamp: '2024-03-12T10:00:00Z',
      },
    ])
      await h.send(e);
    await settle(h.cairn.sql);
    // Two people: x-a entered in week 1 and never ordered; x-b ordered in its own week.
    const apart = {
      retention: [
        [1, 0, 0],
        [1, 1, 0],
      ],
      funnel: [2, 1],
    };
    expect({ retention: await retention(), funnel: await funnel() }).toEqual(apart);

    await h.send({ anonymousId: 'x-a', type: 'identify', userId: 'x-user', timestamp: '2024-03-13T10:00:00Z' });
    await settle(h.cairn.sql);
    // One person, first seen on x-a in week 1, who ordered (on x-b) the week after.
    expect({ retention: await retention(), funnel: await funnel() }).toEqual({
      retention: [
        [1, 0, 1],
        [0, 0, 0],
      ],
      funnel: [1, 1],
    });

    const survivor = await h.profileOf('x-user');
    const [merge] = await h.cairn.sql<{ id: string }[]>`
      SELECT id::text FROM merges WHERE survivor_id = ${survivor} AND undone_at IS NULL`;
    const undone = await h.post(`/profiles/${survivor}/unmerge`, { mergeId: merge!.id });
    expect(undone.status, undone.text).toBe(200);
    await settle(h.cairn.sql);
    expect({ retention: await retention(), funnel: await funnel() }).toEqual(apart);
  }, 120_000);

  it('puts a person whose devices merged in the cohort of their first start ever, on the anonymous device', async () => {
    const base = { cohort: 'week', start: views, return: orders, periods: 2, bounded: true };
    const first = await h.post('/analytics/retention', { ...base, range: weeks('Europe/Berlin'), mode: 'first_time' });
    expect(first.status, first.text).toBe(200);
    expect(first.body.cohorts.map((c: { cohort: string }) => c.cohort)).toEqual([
      '2025-03-16T23:00:00.000Z',
      '2025-03-23T23:00:00.000Z',
      '2025-03-30T22:00:00.000Z',
    ]);
    // m-user first viewed before the range: in no cohort. c-a: the Berlin week of 03-31, ordered in it
    // after the view (period 0) and on 04-07 (period 1).
    expect(table(first.body.cohorts)).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [1, 1, 1, 0],
    ]);
    expect(first.body.cohorts[2].periods[1]).toMatchObject({ percent: 100, complete: true });

    // Recurring: m-user is in the week of their view of 03-18 and ordered the week after.
    const recurring = await h.post('/analytics/retention', {
      ...base,
      range: weeks('Europe/Berlin'),
      mode: 'recurring',
    });
    expect(table(recurring.body.cohorts)).toEqual([
      [1, 0, 1, 0],
      [0, 0, 0, 0],
      [1, 1, 1, 0],
    ]);

    // In UTC the range starts on Sunday 03-16 at 23:00 (the week of 03-10); c-a viewed on Sunday 03-30:
    // the week of 03-24, and 04-07 is two weeks later.
    const utc = await h.post('/analytics/retention', { ...base, range: weeks('UTC'), mode: 'first_time' });
    expect(utc.body.cohorts[0].cohort).toBe('2025-03-10T00:00:00.000Z');
    expect(table(utc.body.cohorts)).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [1, 1, 0, 1],
      [0, 0, 0, 0],
    ]);
  });

  it('counts periods in local calendar days across the US DST change', async () => {
    const res = await h.post('/analytics/retention', {
      range: { from: '2025-03-07T00:00:00-05:00', to: '2025-03-11T00:00:00-04:00', timezone: 'America/New_York' },
      cohort: 'day',
      start: views,
      return: orders,
      mode: 'first_time',
      periods: 3,
      bounded: true,
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.cohorts.map((c: { cohort: string }) => c.cohort)).toEqual([
      '2025-03-07T05:00:00.000Z',
      '2025-03-08T05:00:00.000Z',
      '2025-03-09T05:00:00.000Z',
      '2025-03-10T04:00:00.000Z',
    ]);
    expect(table(res.body.cohorts)[1]).toEqual([1, 0, 0, 1, 0]);
    expect(res.body.cohorts[1].periods[2].start).toBe('2025-03-10T04:00:00.000Z');
    // Unbounded: came back in period 2, so in periods 0..2.
    const unbounded = await h.post('/analytics/retention', {
      range: { from: '2025-03-07T00:00:00-05:00', to: '2025-03-11T00:00:00-04:00', timezone: 'America/New_York' },
      cohort: 'day',
      start: views,
      return: orders,
      periods: 3,
      bounded: false,
    });
    expect(table(unbounded.body.cohorts)[1]).toEqual([1, 1, 1, 1, 0]);
  });

  it('marks the periods that end after now incomplete', async () => {
    const now = new Date();
    const from = new Date(now.getTime() - 10 * 86_400_000).toISOString();
    const res = await h.post('/analytics/retention', {
      range: { from, to: now.toISOString(), timezone: 'UTC' },
      cohort: 'week',
      start: {},
      return: {},
      periods: 2,
    });
    expect(res.status, res.text).toBe(200);
    const last = res.body.cohorts.at(-1);
    expect(last.periods.map((p: { complete: boolean }) => p.complete)).toEqual([false, false, false]);
    expect(res.body.cohorts[0].periods[0].complete).toBe(true);
    expect(res.body.meta.notes.join(' ')).toMatch(/period 0 is the cohort bucket itself/);
  });

  it('refuses bad queries with a 400 that says what is wrong', async () => {
    const ok = {
      range: weeks('Europe/Berlin'),
      cohort: 'week',
      start: views,
      return: orders,
      periods: 4,
    };
    const cases: [object, RegExp][] = [
      [{ ...ok, periods: 0 }, /periods/],
      [{ ...ok, periods: 61 }, /periods/],
      [{ ...ok, periods: 2.5 }, /periods/],
      [{ ...ok, cohort: 'hour' }, /cohort/],
      [{ ...ok, mode: 'sometimes' }, /mode/],
      [{ ...ok, bounded: 'yes' }, /bounded/],
      [{ ...ok, start: undefined }, /start/],
      [{ ...ok, return: { type: 'purchase' } }, /return\.type.*not an event type/],
      [{ ...ok, start: { where: [{ property: 'total', cmp: 'about', value: 1 }] } }, /start\.where/],
      [{ ...ok, range: { ...ok.range, timezone: 'Mars/Olympus' } }, /range\.timezone.*IANA/],
      [{ ...ok, range: { ...ok.range, to: ok.range.from } }, /range\.to: must be after from/],
      [{ ...ok, extra: 1 }, /extra/],
      [
        { ...ok, cohort: 'day', range: { from: '2025-01-01T00:00:00Z', to: '2026-06-01T00:00:00Z', timezone: 'UTC' } },
        /cohort: the range has 516 day cohorts, at most 400/,
      ],
    ];
    for (const [body, message] of cases) {
      const res = await h.post('/analytics/retention', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
  });
});
