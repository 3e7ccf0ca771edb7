import type { TrendSeries } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recountRollup, rollupKeysOf } from '../../pipeline/measure/rollup.ts';
import { addPeopleOf } from '../../pipeline/measure/rollup-people.ts';
import { rollUpProperty } from '../../pipeline/measure/rollup-values.ts';
import { generateAnalyticsEvents } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness } from '../../testing/flows.ts';
import { erase, rollupHarness, scanTrend, settleMeasure, signIn, undoMerge } from './trends.fixtures.ts';
import { checkTrends } from './trends.oracle.ts';

// The rollups of migration 0037 (people per hour, sums and values of rolled-up properties): equal to a
// recount from events after the pipeline kept them, after a retried job, a merge and its undo, an
// erasure; answers equal to the scan and to the oracle; a half-hour zone scans.
describeOnDatabases('trend rollups (people, rolled-up properties) on %s', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 37, people: 200, eventsPerPerson: 20 });
  beforeAll(async () => {
    // Properties rolled up before the events arrive (kept by the pipeline), and one after (backfilled).
    h = await rollupHarness('trends-rollups.test.ts', mode, events, async (h) => {
      for (const event of ['Product Viewed', 'Order Completed', 'Rollup Viewed'])
        await rollUpProperty(h.cairn.sql, { event, property: 'category', byValue: true });
      await rollUpProperty(h.cairn.sql, { event: 'Rollup Viewed', property: 'total', byValue: false });
    });
    await settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 120_000 });
    await rollUpProperty(h.cairn.sql, { event: 'Order Completed', property: 'total', byValue: false });
  }, 600_000);
  afterAll(() => h?.close());

  const settled = () => settleMeasure(h);
  // Each rollup as kept, and as a recount of the attached events now.
  const people = async () => ({
    kept: await h.cairn.sql`
      SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour, profile_id::text AS p
      FROM analytics_hourly_people ORDER BY 1, 2`,
    recounted: await h.cairn.sql`
      SELECT DISTINCT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24') AS hour,
        profile_id::text AS p
      FROM events WHERE profile_id IS NOT NULL ORDER BY 1, 2`,
  });
  const values = async () => ({
    kept: await h.cairn.sql`
      SELECT property, to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour, type, event, value,
        n::int AS n, round(sum::numeric, 6)::float8 AS sum, nums::int AS nums
      FROM analytics_hourly_values ORDER BY 1, 2, 3, 4, 5`,
    recounted: await h.cairn.sql`
      SELECT p.property, to_char(date_trunc('hour', e.timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24') AS hour,
        e.type, coalesce(e.event, '') AS event,
        CASE WHEN p.by_value THEN e.payload #>> ('{properties}'::text[] || p.property) END AS value,
        count(*)::int AS n,
        round(sum(CASE WHEN jsonb_typeof(e.payload #> ('{properties}'::text[] || p.property)) = 'number'
          THEN (e.payload #> ('{properties}'::text[] || p.property))::float8 END)::numeric, 6)::float8 AS sum,
        count(CASE WHEN jsonb_typeof(e.payload #> ('{properties}'::text[] || p.property)) = 'number' THEN 1 END)::int AS nums
      FROM analytics_rollup_properties p JOIN events e ON e.profile_id IS NOT NULL AND e.event = p.event
      GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`,
  });
  const expectExact = async () => {
    const p = await people();
    expect(p.kept.length).toBeGreaterThan(0);
    expect(p.kept).toEqual(p.recounted);
    const v = await values();
    expect(v.kept).toEqual(v.recounted);
  };
  // A trend from events only (the same builder and fold, no rollup).
  const scanned = (body: Parameters<typeof scanTrend>[1]) => scanTrend(h.cairn.sql, body);
  type Line = { values: (number | null)[]; total: number | null; groups?: unknown };
  const lines = (body: { series: Line[] }) =>
    body.series.map(({ values, total, groups }) => ({
      values,
      total,
      ...(groups ? { groups } : {}),
    }));

  it('keeps exactly what the events say, and answers as the oracle from the rollups', async () => {
    await expectExact();
    await checkTrends({ post: h.post, events });
  }, 120_000);

  it('answers from the rollups as the scan does, and says where each series was read', async () => {
    const range = { from: '2026-03-01T09:30:00-05:00', to: '2026-04-15T00:00:00-04:00', timezone: 'America/New_York' };
    const series: TrendSeries[] = [
      { events: {}, measure: 'people' },
      { events: { event: 'Order Completed' }, measure: 'sum', property: 'total' },
      { events: { event: 'Order Completed' }, measure: 'avg', property: 'total' },
      { events: { event: 'Product Viewed' }, measure: 'people' },
    ];
    for (const interval of ['day', 'week']) {
      const res = await h.post('/analytics/trends', { range, interval, series });
      expect(res.status, res.text).toBe(200);
      expect(res.body.meta.sources).toEqual(['people', 'values', 'values', 'events']);
      expect(res.body.meta.notes.join('\n')).toContain('series[3] scanned events (people of a named event or type)');
      const raw = await scanned({ range, interval, series });
      expect(raw[0]!.total).toBeGreaterThan(0);
      expect(raw[1]!.total).toBeGreaterThan(0);
      expect(lines(res.body).map(round)).toEqual(raw.map(round));
    }
    const byCategory = {
      range,
      interval: 'week',
      series: [{ events: { event: ['Product Viewed', 'Order Completed'] }, measure: 'count' }] as TrendSeries[],
    };
    const res = await h.post('/analytics/trends', { ...byCategory, breakdown: { property: 'category' } });
    expect(res.body.meta.sources).toEqual(['values']);
    expect(lines(res.body)).toEqual(await scanned({ ...byCategory, breakdown: { property: 'category' } }));
    // A property not rolled up by value is scanned, and the answer says so.
    const byPlan = await h.post('/analytics/trends', { ...byCategory, breakdown: { property: 'plan' } });
    expect(byPlan.body.meta.sources).toEqual(['events']);
    expect(byPlan.body.meta.notes.join('\n')).toContain('a breakdown by plan, not rolled up by value');
    // An event without the property rolled up: the series scans.
    const search = await h.post('/analytics/trends', {
      range,
      interval: 'week',
      series: [{ events: { event: ['Order Completed', 'Search'] }, measure: 'sum', property: 'total' }],
    });
    expect(search.body.meta.sources).toEqual(['events']);
    expect(search.body.meta.notes.join('\n')).toContain('total, not rolled up for every event of the series');
  });

  it('falls back to the scan in a half-hour zone', async () => {
    const range = { from: '2026-06-29T10:00:00Z', to: '2026-07-03T02:00:00Z', timezone: 'Asia/Kolkata' };
    const series: TrendSeries[] = [
      { events: {}, measure: 'people' },
      { events: { event: 'Order Completed' }, measure: 'sum', property: 'total' },
    ];
    const res = await h.post('/analytics/trends', { range, interval: 'day', series });
    expect(res.status, res.text).toBe(200);
    expect(res.body.meta.rollup).toBe(false);
    expect(res.body.meta.sources).toEqual(['events', 'events']);
    expect(res.body.meta.notes.join('\n')).toContain('no whole-hour rollup window');
    const raw = await scanned({ range, interval: 'day', series });
    expect(raw[0]!.total).toBeGreaterThan(0);
    expect(lines(res.body).map(round)).toEqual(raw.map(round));
  });

  it('leaves the same rows when a job runs again', async () => {
    const ids = (await h.cairn.sql<{ id: string }[]>`SELECT id::text AS id FROM events ORDER BY id LIMIT 500`).map(
      (r) => r.id,
    );
    for (let i = 0; i < 2; i++)
      await h.cairn.sql.begin(async (tx) => {
        await recountRollup(tx, await rollupKeysOf(tx, { ids }));
        await addPeopleOf(tx, ids);
      });
    await expectExact();
  });

  it('moves people rows with a merge and back with its undo, and forgets them on erasure', async () => {
    const at = (anonymousId: string, timestamp: string, event = 'Rollup Viewed') => ({
      type: 'track',
      event,
      anonymousId,
      timestamp,
      properties: { total: 7, category: 'books' },
    });
    await h.send(at('roll-a', '2026-08-03T10:10:00Z'), at('roll-b', '2026-08-03T10:40:00Z'));
    await settled();
    const range = { from: '2026-08-03T00:00:00Z', to: '2026-08-04T00:00:00Z', timezone: 'UTC' };
    const query = async () => {
      const res = await h.post('/analytics/trends', {
        range,
        interval: 'hour',
        series: [
          { events: {}, measure: 'people' },
          { events: { event: 'Rollup Viewed' }, measure: 'sum', property: 'total' },
        ],
      });
      expect(res.body.meta.sources).toEqual(['people', 'values']);
      return res.body.series.map((s: { values: number[] }) => s.values[10]);
    };
    const before = await query();
    await expectExact();
    // Both devices sign in as one person: stage 2 merges them; the hour holds one person less.
    await signIn(h, 'roll-user', ['roll-a', 'roll-b'], '2026-08-05');
    await settled();
    await expectExact();
    const merged = await query();
    expect(merged).toEqual([before[0] - 1, before[1]]);
    // The undo restores the merged profile and its events: the hour holds both again.
    const survivor = await undoMerge(h, 'roll-user');
    await settled();
    await expectExact();
    expect(await query()).toEqual(before);
    // An erasure deletes the person's events and their rows.
    await erase(h, [survivor]);
    await settled();
    await expectExact();
  });
});

// Sums from the rollup add per-hour subtotals: equal to the scan's up to float rounding.
function round(line: { values: (number | null)[]; total: number | null }) {
  const r = (x: number | null) => (x === null ? x : Math.round(x * 1e6) / 1e6);
  return { values: line.values.map(r), total: r(line.total) };
}
