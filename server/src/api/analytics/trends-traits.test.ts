import type { TimeInterval, TrendBreakdown } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { foldTraitDays } from '../../pipeline/measure/rollup-traits.ts';
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

// Migration 0044: trends broken down by a person's current trait from the trait rollup. Through the HTTP
// API, counts, sums and means of Order Completed by plan, by day, week and month in Berlin, New York (across
// DST days) and UTC, with ranges cut mid-day and the previous period, equal the oracle on a history with
// merges mid-history; and equal the scan and a recount of the kept rows through late events, a trait
// change, a merge of our own and its undo, and erasures. The routes keep (and fill) and remove entries.
describeOnDatabases('trend breakdowns by a trait from the trait rollup on %s', (mode) => {
  let h: FlowHarness;
  let events: GeneratedEvent[] = generateAnalyticsEvents({ seed: 44, people: 150, eventsPerPerson: 20 });
  const ORDER = { event: 'Order Completed' };
  const isOrder = (e: GeneratedEvent) => e.body.type === 'track' && e.body.event === 'Order Completed';
  const avg = { events: ORDER, match: isOrder, measure: 'avg' as const, property: 'total' };
  const sum = { events: ORDER, match: isOrder, measure: 'sum' as const, property: 'total' };
  const count = { events: ORDER, match: isOrder, measure: 'count' as const, property: undefined };
  const plan: TrendBreakdown = { trait: 'plan' };
  beforeAll(async () => {
    // Kept before the events arrive (kept by the pipeline); UTC counts are added afterwards (filled).
    h = await rollupHarness('trends-traits.test.ts', mode, events, async (h) => {
      for (const zone of ['Europe/Berlin', 'America/New_York']) {
        const res = await h.post(
          '/analytics/rollups/traits',
          { trait: 'plan', event: 'Order Completed', property: 'total', zone },
          'PUT',
        );
        expect(res.status, res.text).toBe(200);
        expect(res.body.added).toBe(true);
      }
    });
  }, 600_000);
  afterAll(() => h?.close(), 60_000);

  const settled = () => settleMeasure(h);
  type Query = {
    range: Range;
    interval: TimeInterval;
    series: (typeof avg | typeof sum | typeof count)[];
    breakdown: TrendBreakdown;
    limit?: number;
    compare?: 'previous';
  };
  const QUERIES: Query[] = [
    // Berlin weeks, cut mid-day at both ends (partial days from events), against the previous period.
    {
      range: { from: '2026-09-02T13:00:00+02:00', to: '2026-11-12T09:30:00+01:00', timezone: 'Europe/Berlin' },
      interval: 'week',
      series: [avg, count],
      breakdown: plan,
      compare: 'previous',
    },
    // Berlin days across the October DST day (25 hours), from a local midnight to a mid-day end.
    {
      range: { from: '2026-10-18T00:00:00+02:00', to: '2026-11-03T15:00:00+01:00', timezone: 'Europe/Berlin' },
      interval: 'day',
      series: [sum, avg],
      breakdown: plan,
    },
    // New York days across both US DST changes, the top two plans (the rest $other).
    {
      range: { from: '2026-03-01T00:00:00-05:00', to: '2026-03-15T00:00:00-04:00', timezone: 'America/New_York' },
      interval: 'day',
      series: [sum, count],
      breakdown: plan,
      limit: 2,
    },
    // New York months over most of the span.
    {
      range: { from: '2026-03-01T00:00:00-05:00', to: '2026-11-16T00:00:00-05:00', timezone: 'America/New_York' },
      interval: 'month',
      series: [avg],
      breakdown: plan,
    },
  ];
  const strip = (series: Record<string, unknown>[]) => series.map(({ name: _n, measure: _m, ...s }) => s);
  // Floats compared to 6 decimals, as the oracle rounds (day sums add in another order than the scan).
  const round = <T>(x: T): T => {
    if (typeof x === 'number') return (Math.round(x * 1e6) / 1e6) as T;
    if (Array.isArray(x)) return x.map(round) as T;
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, round(v)])) as T;
    return x;
  };
  const ask = async (q: Query, sources = q.series.map(() => 'traits')) => {
    const res = await h.post('/analytics/trends', trendBody(q));
    expect(res.status, res.text).toBe(200);
    expect(res.body.meta.sources, JSON.stringify(q.range)).toEqual(sources);
    return res.body;
  };
  // Every query from the rollup, and equal to the oracle over the ground truth.
  const expectOracle = async (qs = QUERIES) => {
    for (const q of qs) {
      const got = await ask(q);
      const expected = expectedTrends(events, q);
      expect(expected.series[0]!.total).not.toBe(0);
      expect(round(strip(got.series)), `${q.interval} ${JSON.stringify(q.range)}`).toEqual(expected.series);
    }
  };
  // A trend from events only (the same builder and fold, no rollup).
  const scanned = (q: Query) => scanTrend(h.cairn.sql, trendBody(q));
  const expectScan = async (qs = QUERIES) => {
    for (const q of qs) {
      const got = await ask({ ...q, compare: undefined });
      const raw = await scanned(q);
      expect(round(strip(got.series)), `${q.interval} ${JSON.stringify(q.range)}`).toEqual(round(raw));
    }
  };
  // The kept cells equal a recount from the attached events and current traits; the day sums, the cells'.
  const expectExact = async () => {
    const sql = h.cairn.sql;
    const kept = await sql`
      SELECT rollup_id AS r, profile_id::text AS p, day::text AS d, value, n, sum::text AS sum, nums
      FROM analytics_trait_cells ORDER BY 1, 2, 3`;
    const recounted = await sql`
      SELECT g.id AS r, e.profile_id::text AS p, ((e.timestamp AT TIME ZONE g.zone)::date)::text AS d,
        min(t.value #>> '{}') AS value, count(*)::int AS n,
        sum(CASE WHEN jsonb_typeof(e.payload #> ('{properties}'::text[] || g.property)) = 'number'
          THEN (e.payload #> ('{properties}'::text[] || g.property))::numeric END)::text AS sum,
        count(CASE WHEN jsonb_typeof(e.payload #> ('{properties}'::text[] || g.property)) = 'number' THEN 1 END)::int AS nums
      FROM analytics_rollup_traits g
      JOIN events e ON e.event = g.event AND e.profile_id IS NOT NULL
      LEFT JOIN profile_traits t ON t.profile_id = e.profile_id AND t.key = g.trait
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(recounted);
    const sums = await sql`
      SELECT rollup_id AS r, day::text AS d, value, sum(n)::int AS n, sum(sum)::text AS sum, sum(nums)::int AS nums
      FROM analytics_trait_counts GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3`;
    const cells = await sql`
      SELECT rollup_id AS r, day::text AS d, value, sum(n)::int AS n, sum(sum)::text AS sum, sum(nums)::int AS nums
      FROM analytics_trait_cells GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    const num = (rows: readonly Record<string, unknown>[]) =>
      rows.map((r) => ({ ...r, sum: r.sum === null ? null : Number(r.sum) }));
    expect(num(sums)).toEqual(num(cells));
  };

  it('answers counts, sums and means by plan per day, week and month as the oracle (merges mid-history)', async () => {
    await settled();
    await expectExact();
    await expectOracle();
  }, 120_000);

  it('keeps an entry (filled from the events) and answers from it; removing it falls back to the scan', async () => {
    const utc: Query = {
      range: { from: '2026-05-01T00:00:00Z', to: '2026-11-01T00:00:00Z', timezone: 'UTC' },
      interval: 'month',
      series: [count],
      breakdown: plan,
      compare: 'previous',
    };
    const before = await ask(utc, ['events']);
    expect(before.meta.notes.join('\n')).toContain('series[0] scanned events (a breakdown by a trait)');
    const entry = { trait: 'plan', event: 'Order Completed', zone: 'UTC' };
    const added = await h.post('/analytics/rollups/traits', entry, 'PUT');
    expect(added.status, added.text).toBe(200);
    expect(added.body).toMatchObject({ ...entry, property: null, added: true });
    expect(added.body.rows).toBeGreaterThan(0);
    expect((await h.post('/analytics/rollups/traits', entry, 'PUT')).body.added).toBe(false);
    const list = await h.api('/analytics/rollups/traits');
    expect(list.body.data.map((r: { zone: string; property: string | null }) => [r.zone, r.property])).toEqual([
      ['UTC', null],
      ['America/New_York', 'total'],
      ['Europe/Berlin', 'total'],
    ]);
    await expectExact();
    await expectOracle([utc]);
    // A counts-only entry serves no sum; hours, people and conditions scan.
    const scans: [Query, string][] = [
      [{ ...utc, series: [sum], compare: undefined }, 'events'],
      [
        { ...QUERIES[1]!, interval: 'hour', range: { ...QUERIES[1]!.range, to: '2026-10-20T00:00:00+02:00' } },
        'events',
      ],
    ];
    for (const [q, source] of scans) {
      const res = await ask(
        q,
        q.series.map(() => source),
      );
      expect(round(strip(res.series))).toEqual(round(await scanned(q)));
    }
    const people = await h.post('/analytics/trends', {
      ...trendBody(QUERIES[0]!),
      series: [{ events: ORDER, measure: 'people' }, ...trendBody(QUERIES[0]!).series],
    });
    expect(people.body.meta.sources).toEqual(['events', 'traits', 'traits']);
    const removed = await h.api('/analytics/rollups/traits?trait=plan&event=Order%20Completed&zone=UTC', {
      method: 'DELETE',
    });
    expect(removed.status, removed.text).toBe(204);
    expect(
      (await h.api('/analytics/rollups/traits?trait=plan&event=Order%20Completed&zone=UTC', { method: 'DELETE' }))
        .status,
    ).toBe(404);
    const after = await ask(utc, ['events']);
    expect(after.series).toEqual(before.series);
    await expectExact();
    // Bad input says where.
    const bad = await h.post('/analytics/rollups/traits', { ...entry, zone: 'Mars/Olympus' }, 'PUT');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('zone');
    const sealed = await h.post('/analytics/rollups/traits', { ...entry, trait: 'email' }, 'PUT');
    expect(sealed.status, sealed.text).toBe(400);
  }, 120_000);

  it('stays exact through late events, a trait change, a merge and its undo, and erasures', async () => {
    // Late events: a signed-in person's, weeks back, and a new device's (no plan: the null group).
    const person = events.find((e) => e.body.userId && events.some((o) => o.person === e.person && isOrder(o)))!;
    events = await sendLate(h, events, [
      { person: person.person, body: { ...order('late-1', '2026-10-05T12:00:00Z', 31.5), userId: person.body.userId } },
      { person: 'late-2', body: order('late-2', '2026-10-25T00:30:00Z', 12.25) },
      { person: 'late-2', body: order('late-2', '2026-11-12T08:00:00Z', 7) },
    ]);
    await expectExact();
    await expectOracle();

    // The person changes plan (after all their events): their whole history moves to the new value.
    const change = {
      type: 'identify',
      userId: person.body.userId,
      anonymousId: person.body.anonymousId,
      timestamp: '2026-11-20T10:00:00Z',
      traits: { plan: 'enterprise' },
    };
    events = await sendLate(h, events, [{ person: person.person, body: change }]);
    await expectExact();
    await expectOracle();
    const moved = await ask(QUERIES[3]!);
    expect(moved.series[0].groups.map((g: { group: string }) => g.group)).toContain('enterprise');

    // Two devices with orders on several days, each signed in with its plan; one user id merges them, then undone.
    await h.send(
      order('tr-a', '2026-10-21T10:00:00Z', 10),
      order('tr-a', '2026-10-28T10:00:00Z', 20),
      order('tr-b', '2026-10-21T23:00:00Z', 40),
      order('tr-b', '2026-11-01T04:30:00Z', 80),
      { type: 'identify', anonymousId: 'tr-a', timestamp: '2026-10-29T08:00:00Z', traits: { plan: 'free' } },
      { type: 'identify', anonymousId: 'tr-b', timestamp: '2026-11-02T08:00:00Z', traits: { plan: 'team' } },
    );
    await settled();
    await expectExact();
    await expectScan();
    await signIn(h, 'tr-user', ['tr-a', 'tr-b'], '2026-11-03');
    await settled();
    await expectExact();
    await expectScan();
    const survivor = await undoMerge(h, 'tr-user');
    await settled();
    await expectExact();
    await expectScan();

    // Erasures: our profiles, and a generated person with orders (their events leave the ground truth).
    const erased = events.find((e) => e.body.userId && e.person !== person.person && isOrder(e))!.person;
    const ours = [survivor, await h.profileOf('tr-a', 'anonymousId'), await h.profileOf('tr-b', 'anonymousId')];
    await erase(h, [...new Set(ours), await h.profileOf(erased)]);
    await settled();
    events = events.filter((e) => e.person !== erased);
    await expectExact();
    await expectOracle();
  }, 240_000);

  it('folds the delta rows of a day into one row per value, answers unchanged', async () => {
    const rows = async () =>
      (
        await h.cairn.sql<{ n: number; keys: number }[]>`
          SELECT count(*)::int AS n, count(DISTINCT (rollup_id, day, value))::int AS keys FROM analytics_trait_counts`
      )[0]!;
    const before = await rows();
    expect(before.n).toBeGreaterThan(before.keys);
    expect(await foldTraitDays(h.cairn.sql)).toBeGreaterThan(0);
    const after = await rows();
    expect(after.n).toBeLessThanOrEqual(after.keys);
    await expectExact();
    await expectOracle();
  }, 120_000);

  it('records keeping and dropping a breakdown in the audit log', async () => {
    const rows = await h.cairn.sql<{ action: string; method: string; status: number }[]>`
      SELECT action, method, status FROM audit_log WHERE resource_type = 'analytics_rollup' AND status < 300 ORDER BY id`;
    expect(rows.map((r) => [r.method, r.action])).toEqual([
      ['PUT', 'analytics_rollup.keep_trait'],
      ['PUT', 'analytics_rollup.keep_trait'],
      ['PUT', 'analytics_rollup.keep_trait'],
      ['PUT', 'analytics_rollup.keep_trait'],
      ['DELETE', 'analytics_rollup.drop_trait'],
    ]);
  });
});
