import type { TimeInterval, TrendSeries } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { foldDays } from '../../pipeline/measure/rollup-period-people.ts';
import { type GeneratedEvent, generateAnalyticsEvents } from '../../testing/analytics-data.ts';
import { describeOnDatabases, type FlowHarness } from '../../testing/flows.ts';
import {
  erase,
  order,
  type Range,
  rollupHarness,
  scanTrend,
  sendLate,
  settleMeasure,
  signIn,
  trendBody,
  undoMerge,
} from './trends.fixtures.ts';
import { expectedTrends } from './trends.oracle.ts';

// Migration 0042: exact people per local day of kept zones and events. Through the HTTP API, people per
// day, week and month in UTC and in New York (across the November DST day) equal the oracle on a history
// with merges mid-history, late events and an erasure; a merge of our own and its undo equal the scan;
// the kept rows equal a recount from events after each change; the routes add (and fill) and remove.
describeOnDatabases('people per day, week and month from the per-day rollup on %s', (mode) => {
  let h: FlowHarness;
  let events: GeneratedEvent[] = generateAnalyticsEvents({ seed: 42, people: 150, eventsPerPerson: 20 });
  const ORDER = { event: 'Order Completed' };
  const anyEvent = { events: {}, match: () => true, measure: 'people' as const };
  const orders = {
    events: ORDER,
    match: (e: GeneratedEvent) => e.body.type === 'track' && e.body.event === 'Order Completed',
    measure: 'people' as const,
  };
  beforeAll(async () => {
    // Kept before the events arrive (kept by the pipeline); Europe/Berlin is added afterwards (filled).
    h = await rollupHarness('trends-period-people.test.ts', mode, events, async (h) => {
      for (const entry of [{ zone: 'America/New_York' }, { event: 'Order Completed' }]) {
        const res = await h.post('/analytics/rollups/people', entry);
        expect(res.status, res.text).toBe(200);
      }
    });
  }, 600_000);
  afterAll(() => h?.close(), 60_000);

  const settled = () => settleMeasure(h);
  type Query = { range: Range; interval: TimeInterval; series: (typeof anyEvent | typeof orders)[] };
  const QUERIES: Query[] = [
    // UTC days, weeks (from a Wednesday: the first week is cut) and months, ending mid-day (a partial last day).
    {
      range: { from: '2026-09-30T00:00:00Z', to: '2026-11-14T13:30:00Z', timezone: 'UTC' },
      interval: 'day',
      series: [anyEvent, orders],
    },
    {
      range: { from: '2026-04-01T00:00:00Z', to: '2026-07-01T00:00:00Z', timezone: 'UTC' },
      interval: 'week',
      series: [anyEvent, orders],
    },
    {
      range: { from: '2026-02-16T00:00:00Z', to: '2026-11-16T09:00:00Z', timezone: 'UTC' },
      interval: 'month',
      series: [anyEvent],
    },
    // New York across the November DST day (25 hours), and its weeks and months.
    {
      range: { from: '2026-10-20T00:00:00-04:00', to: '2026-11-10T17:45:00-05:00', timezone: 'America/New_York' },
      interval: 'day',
      series: [anyEvent, orders],
    },
    {
      range: { from: '2026-08-05T00:00:00-04:00', to: '2026-11-16T00:00:00-05:00', timezone: 'America/New_York' },
      interval: 'week',
      series: [anyEvent, orders],
    },
    {
      range: { from: '2026-03-01T00:00:00-05:00', to: '2026-11-16T00:00:00-05:00', timezone: 'America/New_York' },
      interval: 'month',
      series: [anyEvent],
    },
  ];
  const round = (x: unknown) => JSON.parse(JSON.stringify(x));
  // Every query from the rollup, and equal to the oracle over the ground truth.
  const expectOracle = async (qs = QUERIES) => {
    for (const q of qs) {
      const res = await h.post('/analytics/trends', trendBody(q));
      expect(res.status, res.text).toBe(200);
      expect(res.body.meta.sources, JSON.stringify(q.range)).toEqual(q.series.map(() => 'period_people'));
      const expected = expectedTrends(events, q);
      expect(expected.series[0]!.total).toBeGreaterThan(0);
      const got = res.body.series.map(({ values, total }: { values: number[]; total: number }) => ({ values, total }));
      expect(got, `${q.interval} ${JSON.stringify(q.range)}`).toEqual(round(expected.series));
    }
  };
  // A trend from events only (the same builder and fold, no rollup).
  const scanned = async (q: { range: Range; interval: TimeInterval; series: TrendSeries[] }) =>
    (await scanTrend(h.cairn.sql, q)).map(({ values, total }) => ({ values, total }));
  const expectScan = async () => {
    for (const q of QUERIES) {
      const b = trendBody(q) as { range: Range; interval: TimeInterval; series: TrendSeries[] };
      const res = await h.post('/analytics/trends', b);
      expect(res.body.meta.sources).toEqual(q.series.map(() => 'period_people'));
      const got = res.body.series.map(({ values, total }: { values: number[]; total: number }) => ({ values, total }));
      expect(got, `${q.interval} ${JSON.stringify(q.range)}`).toEqual(await scanned(b));
    }
  };
  // The kept rows equal a recount: presence from the attached events, the day histograms from presence.
  const expectExact = async () => {
    const sql = h.cairn.sql;
    const kept = await sql`
      SELECT profile_id::text AS p, zone, event, day::text AS day FROM analytics_period_people ORDER BY 1, 2, 3, 4`;
    const recounted = await sql`
      SELECT DISTINCT e.profile_id::text AS p, z.value AS zone, k.event, ((e.timestamp AT TIME ZONE z.value)::date)::text AS day
      FROM events e
      CROSS JOIN (SELECT value FROM analytics_rollup_people WHERE kind = 'zone') z
      JOIN (SELECT '' AS event UNION ALL SELECT value FROM analytics_rollup_people WHERE kind = 'event') k
        ON k.event = '' OR e.event = k.event
      WHERE e.profile_id IS NOT NULL
      ORDER BY 1, 2, 3, 4`;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(recounted);
    const counts = await sql`
      SELECT zone, event, day::text AS day, prev::text AS prev, sum(n)::int AS n
      FROM analytics_period_counts GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4`;
    const links = await sql`
      SELECT zone, event, day::text AS day, prev::text AS prev, count(*)::int AS n
      FROM (SELECT zone, event, day, lag(day) OVER (PARTITION BY profile_id, zone, event ORDER BY day) AS prev
        FROM analytics_period_people) l
      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`;
    expect(counts).toEqual(links);
  };

  it('answers people per day, week and month in UTC and New York as the oracle (merges mid-history)', async () => {
    await expectExact();
    await expectOracle();
  }, 120_000);

  it('adds a zone (filled from the events) and answers from it; removing it falls back to the scan', async () => {
    const berlin: Query = {
      range: { from: '2026-10-19T00:00:00+02:00', to: '2026-11-02T00:00:00+01:00', timezone: 'Europe/Berlin' },
      interval: 'day',
      series: [anyEvent],
    };
    const before = await h.post('/analytics/trends', trendBody(berlin));
    expect(before.body.meta.sources).toEqual(['people']);
    const added = await h.post('/analytics/rollups/people', { zone: 'Europe/Berlin' });
    expect(added.status, added.text).toBe(200);
    expect(added.body).toMatchObject({ added: true, zones: ['America/New_York', 'Europe/Berlin', 'UTC'] });
    expect(added.body.rows).toBeGreaterThan(0);
    expect((await h.post('/analytics/rollups/people', { zone: 'Europe/Berlin' })).body.added).toBe(false);
    expect((await h.api('/analytics/rollups/people')).body).toEqual({
      zones: ['America/New_York', 'Europe/Berlin', 'UTC'],
      events: ['Order Completed'],
    });
    await expectExact();
    await expectOracle([berlin]);
    const removed = await h.api('/analytics/rollups/people?zone=Europe%2FBerlin', { method: 'DELETE' });
    expect(removed.status, removed.text).toBe(200);
    expect(removed.body.zones).toEqual(['America/New_York', 'UTC']);
    expect((await h.api('/analytics/rollups/people?zone=Europe%2FBerlin', { method: 'DELETE' })).status).toBe(404);
    const after = await h.post('/analytics/trends', trendBody(berlin));
    expect(after.body.meta.sources).toEqual(['people']);
    expect(after.body.series[0].values).toEqual(before.body.series[0].values);
    await expectExact();
    // Bad input says where.
    const bad = await h.post('/analytics/rollups/people', { zone: 'Mars/Olympus' });
    expect(bad.status).toBe(400);
    // A named event that is not kept scans events.
    const search = await h.post('/analytics/trends', {
      range: QUERIES[0]!.range,
      interval: 'day',
      series: [{ events: { event: 'Search' }, measure: 'people' }],
    });
    expect(search.body.meta.sources).toEqual(['events']);
  }, 120_000);

  it('stays exact through late events, a merge and its undo, and an erasure', async () => {
    const at = (anonymousId: string, timestamp: string) => order(anonymousId, timestamp, 5);
    // Late events: a signed-in person's, weeks back, and a new device's on the DST day and a mid-day tail.
    const person = events.find((e) => e.body.userId)!;
    events = await sendLate(h, events, [
      { person: person.person, body: { ...at('late-1', '2026-10-05T12:00:00Z'), userId: person.body.userId } },
      { person: 'late-2', body: at('late-2', '2026-11-01T05:30:00Z') },
      { person: 'late-2', body: at('late-2', '2026-11-14T11:00:00Z') },
    ]);
    await expectExact();
    await expectOracle();

    // Two devices with events on several days; they sign in as one person (a merge), then it is undone.
    await h.send(
      at('pp-a', '2026-10-21T10:00:00Z'),
      at('pp-a', '2026-10-28T10:00:00Z'),
      at('pp-b', '2026-10-21T23:00:00Z'),
      at('pp-b', '2026-11-01T04:30:00Z'),
    );
    await settled();
    await expectExact();
    await expectScan();
    await signIn(h, 'pp-user', ['pp-a', 'pp-b'], '2026-11-03');
    await settled();
    await expectExact();
    await expectScan();
    const survivor = await undoMerge(h, 'pp-user');
    await settled();
    await expectExact();
    await expectScan();

    // Erasures: our two profiles, and a generated person (their events leave the ground truth).
    const erased = events.find((e) => e.body.userId && e.person !== person.person)!.person;
    const ours = [survivor, await h.profileOf('pp-a', 'anonymousId'), await h.profileOf('pp-b', 'anonymousId')];
    expect(new Set(ours).size).toBe(2);
    await erase(h, [...new Set(ours), await h.profileOf(erased)]);
    await settled();
    events = events.filter((e) => e.person !== erased);
    await expectExact();
    await expectOracle();
  }, 240_000);

  it('folds the delta rows of a day into one row per previous day, answers unchanged', async () => {
    const rows = async () =>
      (
        await h.cairn.sql<{ n: number; keys: number }[]>`
          SELECT count(*)::int AS n, count(DISTINCT (zone, event, day, prev))::int AS keys FROM analytics_period_counts`
      )[0]!;
    const before = await rows();
    expect(before.n).toBeGreaterThan(before.keys);
    expect(await foldDays(h.cairn.sql)).toBeGreaterThan(0);
    const after = await rows();
    expect(after.n).toBe(after.keys);
    await expectExact();
    await expectOracle();
  }, 120_000);
});
