import { bucketStarts, foldTrends, type TimeInterval, type TrendRow, type TrendSeries, trendsQuery } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { checkTrends } from './trends.oracle.ts';

describeOnDatabases('POST /api/analytics/trends on %s', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 19, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('trends.test.ts', mode);
    await sendGenerated(h.cairn, events);
    await settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 120_000 });
  }, 600_000);

  // The hourly rollup as the pipeline kept it (with the deltas not folded yet, as readers add them), and as a
  // recount of the attached events now.
  const rollupRows = async () => ({
    kept: await h.cairn.sql`
      SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour, type, event, sum(n)::int AS n
      FROM (SELECT hour, type, event, n FROM analytics_hourly_counts
            UNION ALL SELECT hour, type, event, n FROM analytics_count_deltas) x
      GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3`,
    recounted: await h.cairn.sql`
      SELECT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24') AS hour, type,
        coalesce(event, '') AS event, count(*)::int AS n
      FROM events WHERE profile_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  });
  // A trend computed from events only (no rollup), through the same builder and fold.
  const rawTrend = async (body: {
    range: { from: string; to: string; timezone: string };
    interval: string;
    series: TrendSeries[];
  }) => {
    const starts = bucketStarts(body.range, body.interval as TimeInterval);
    const { text, values } = trendsQuery({ range: body.range, starts, series: body.series, now: new Date() }).render();
    const rows = (await h.cairn.sql.unsafe(text, values as never[])) as unknown as TrendRow[];
    return foldTrends(rows, { series: body.series, buckets: starts.length, breakdown: false });
  };
  afterAll(() => h?.close());

  it('answers as the oracle over generated histories (zones, DST days, breakdowns, compare)', async () => {
    await checkTrends({ post: h.post, events });
  }, 120_000);

  it('reads counts of whole hours from the hourly rollup, equal to the events they count', async () => {
    const { kept, recounted } = await rollupRows();
    expect(kept.length).toBeGreaterThan(100);
    expect(kept).toEqual(recounted);
    const queries = [
      // Berlin hours over the spring-forward day, cut mid-hour at both ends.
      {
        from: '2026-03-28T13:17:00+01:00',
        to: '2026-03-30T09:45:00+02:00',
        timezone: 'Europe/Berlin',
        interval: 'hour',
      },
      // New York days over the fall-back day.
      {
        from: '2026-10-29T08:30:00-04:00',
        to: '2026-11-04T00:00:00-05:00',
        timezone: 'America/New_York',
        interval: 'day',
      },
      // UTC weeks over months.
      { from: '2026-02-16T00:00:00Z', to: '2026-11-16T00:00:00Z', timezone: 'UTC', interval: 'week' },
    ];
    const series: TrendSeries[] = [
      { events: {}, measure: 'count' },
      { events: { event: ['Product Viewed', 'Order Completed'] }, measure: 'count' },
      { events: { type: 'page' }, measure: 'count' },
      { events: { type: 'identify' }, measure: 'count' },
    ];
    for (const { interval, ...range } of queries) {
      const res = await h.post('/analytics/trends', { range, interval, series });
      expect(res.status, res.text).toBe(200);
      expect(res.body.meta.rollup).toBe(true);
      const raw = await rawTrend({ range, interval, series });
      expect(
        res.body.series.map((s: { values: number[]; total: number }) => ({ values: s.values, total: s.total })),
      ).toEqual(raw);
      expect(raw[0]!.total).toBeGreaterThan(0);
    }
    // A half-hour zone cannot be cut from UTC hours: events are scanned.
    const india = await h.post('/analytics/trends', {
      range: { from: '2026-06-29T10:00:00Z', to: '2026-07-01T02:00:00Z', timezone: 'Asia/Kolkata' },
      interval: 'hour',
      series,
    });
    expect(india.body.meta.rollup).toBe(false);
  });

  it('cuts DST days into 23 and 25 hours, and days by the wall clock', async () => {
    const hours = async (range: object) =>
      (await h.post('/analytics/trends', { range, interval: 'hour', series: [{ events: {}, measure: 'count' }] })).body
        .buckets as string[];
    expect(
      await hours({ from: '2026-03-29T00:00:00+01:00', to: '2026-03-30T00:00:00+02:00', timezone: 'Europe/Berlin' }),
    ).toHaveLength(23);
    expect(
      await hours({ from: '2026-11-01T00:00:00-04:00', to: '2026-11-02T00:00:00-05:00', timezone: 'America/New_York' }),
    ).toHaveLength(25);
    const days = await h.post('/analytics/trends', {
      range: { from: '2026-10-24T00:00:00+02:00', to: '2026-10-27T00:00:00+01:00', timezone: 'Europe/Berlin' },
      interval: 'day',
      series: [{ events: {}, measure: 'count' }],
    });
    expect(days.body.buckets).toEqual([
      '2026-10-23T22:00:00.000Z',
      '2026-10-24T22:00:00.000Z',
      '2026-10-25T23:00:00.000Z',
    ]);
  });

  it('counts a person once when the merge came after the range ended, under their current trait', async () => {
    const range = { from: '2026-05-10T00:00:00Z', to: '2026-05-11T00:00:00Z', timezone: 'UTC' };
    const query = (breakdown?: object) =>
      h.post('/analytics/trends', {
        range,
        interval: 'hour',
        series: [
          { events: { event: 'Edge Viewed' }, measure: 'people' },
          { events: { event: 'Edge Viewed' }, measure: 'count' },
        ],
        ...(breakdown ? { breakdown } : {}),
      });
    const viewed = (anonymousId: string, timestamp: string) => ({
      type: 'track',
      event: 'Edge Viewed',
      anonymousId,
      timestamp,
    });
    await h.send(
      viewed('edge-a', '2026-05-09T23:00:00Z'),
      viewed('edge-a', '2026-05-10T10:00:00Z'),
      viewed('edge-b', '2026-05-10T10:30:00Z'),
    );
    await settle(h.cairn.sql, { queues: ['measure'] });
    let res = await query();
    expect(res.status, res.text).toBe(200);
    expect(res.body.series.map((s: { total: number }) => s.total)).toEqual([2, 2]);
    expect(res.body.series[0].values[10]).toBe(2);
    // Both devices sign in after the range: stage 2 merges them, and the range's events now are one person's.
    await h.send(
      {
        type: 'identify',
        anonymousId: 'edge-a',
        userId: 'edge-user',
        traits: { plan: 'team' },
        timestamp: '2026-05-12T08:00:00Z',
      },
      { type: 'identify', anonymousId: 'edge-b', userId: 'edge-user', timestamp: '2026-05-12T09:00:00Z' },
    );
    await settle(h.cairn.sql, { queues: ['measure'] });
    res = await query();
    expect(res.body.series.map((s: { total: number }) => s.total)).toEqual([1, 2]);
    expect(res.body.series[0].values[10]).toBe(1);
    expect(res.body.series[0].values.reduce((a: number, b: number) => a + b, 0)).toBe(1);
    res = await query({ trait: 'plan' });
    expect(res.body.series[0].groups).toEqual([{ group: 'team', values: res.body.series[0].values, total: 1 }]);
    // The merge changed no count: the rollup still equals the events it counts.
    await settle(h.cairn.sql, { queues: ['measure'] });
    let rollup = await rollupRows();
    expect(rollup.kept).toEqual(rollup.recounted);
    // An erasure deletes the person's events, which leave the counts by the DELETE's own deltas.
    const id = await h.profileOf('edge-user');
    expect((await h.api(`/profiles/${id}`, { method: 'DELETE' })).status).toBe(200);
    await settle(h.cairn.sql, { queues: ['measure'] });
    rollup = await rollupRows();
    expect(rollup.kept).toEqual(rollup.recounted);
    res = await query();
    expect(res.body.series.map((s: { total: number }) => s.total)).toEqual([0, 0]);
  });

  it('sums and averages JSON numbers only: strings, booleans and missing values are ignored', async () => {
    const paid = (total: unknown, minute: number) => ({
      type: 'track',
      event: 'Edge Paid',
      anonymousId: 'edge-sum',
      timestamp: `2026-05-20T10:${String(minute).padStart(2, '0')}:00Z`,
      properties: total === undefined ? {} : { total },
    });
    await h.send(paid(5, 1), paid('7', 2), paid(true, 3), paid(2.5, 4), paid(undefined, 5), paid(null, 6));
    await settle(h.cairn.sql, { queues: ['measure'] });
    const res = await h.post('/analytics/trends', {
      range: { from: '2026-05-20T00:00:00Z', to: '2026-05-21T00:00:00Z', timezone: 'UTC' },
      interval: 'day',
      series: ['sum', 'avg', 'count'].map((measure) => ({
        events: { event: 'Edge Paid' },
        measure,
        ...(measure === 'count' ? {} : { property: 'total' }),
      })),
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.series.map((s: { values: number[]; total: number }) => [s.values, s.total])).toEqual([
      [[7.5], 7.5],
      [[3.75], 3.75],
      [[6], 6],
    ]);
    expect(res.body.meta.notes.join(' ')).toMatch(/only JSON numbers/);
  });

  it('refuses bad queries with the reason', async () => {
    const range = { from: '2026-05-01T00:00:00Z', to: '2026-05-08T00:00:00Z', timezone: 'UTC' };
    const series = [{ events: {}, measure: 'count' }];
    const refused = async (body: object, reason: RegExp) => {
      const res = await h.post('/analytics/trends', body);
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toMatch(reason);
    };
    await refused({ range, interval: 'fortnight', series }, /interval/);
    await refused(
      { range: { ...range, to: '2026-08-01T00:00:00Z' }, interval: 'hour', series },
      /more than 2000 hour buckets/,
    );
    await refused({ range, interval: 'day', series: [{ events: {}, measure: 'sum' }] }, /series\.0\.property.*sum/);
    await refused({ range, interval: 'day', series, breakdown: { trait: 'email' } }, /email is a sensitive trait/);
    await refused({ range: { ...range, from: '2024-01-01T00:00:00Z' }, interval: 'month', series }, /at most 732 days/);
    await refused({ range, interval: 'day', series: [] }, /series/);
    await refused({ range, interval: 'day', series, breakdown: { property: 'category' }, limit: 51 }, /limit/);
  });
});
