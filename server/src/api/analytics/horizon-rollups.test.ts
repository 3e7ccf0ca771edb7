import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Sql } from '../../db/index.ts';
import {
  dropEventPartition,
  ensureEventPartitions,
  eventPartitions,
  retentionHorizon,
} from '../../jobs/retention-queries.ts';
import { describeOnDatabases, type FlowHarness, flowHarness, settle } from '../../testing/index.ts';

// Issue 19: trend tiles a rolled-up property answers wholly (sums, means, breakdowns; migration 0037)
// answer before the retention horizon, as count tiles do: dropping an event partition drops no rollup
// row, and the hours before the horizon are never recounted. A property filled after the drop holds only
// what was kept then: before the horizon it is refused. People tiles stay refused: person-hours of
// dropped events no longer follow merges (horizon.ts, PEOPLE_BEFORE_HORIZON).

const DAY = 86_400_000;
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const range = (from: number, to: number) => ({ from: iso(from), to: iso(to), timezone: 'UTC' });

// Drops events_legacy (every event stored so far) as the retention job would, and makes this month's
// partition: the horizon is the start of this month plus one day (as retention-windows.test.ts does).
async function dropLegacy(sql: Sql): Promise<number> {
  await dropEventPartition(sql, 'events_legacy');
  await ensureEventPartitions(sql, new Date(), 2);
  const horizon = await retentionHorizon(sql);
  const lowest = Math.min(...(await eventPartitions(sql)).map((p) => p.lowerBound!.getTime()));
  expect(horizon?.getTime()).toBe(lowest + DAY);
  return horizon!.getTime();
}

describeOnDatabases('rollup tiles past the event retention on %s', (mode) => {
  let h: FlowHarness;
  let H: number;
  const start = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1);
  const orders = Array.from({ length: 9 }, (_, i) => ({
    type: 'track',
    event: 'Old Order',
    userId: `old-${i % 4}`,
    timestamp: iso(start - 10 * DAY + i * HOUR),
    properties: { total: 10 + i, category: i % 2 ? 'books' : 'music' },
  }));
  const sum = orders.reduce((s, o) => s + o.properties.total, 0);

  beforeAll(async () => {
    h = await flowHarness('api/analytics/horizon-rollups.test.ts', mode, {
      env: { CAIRN_EVENT_RETENTION_DAYS: '30' },
    });
    const marked = await h.post('/analytics/rollups/properties', { event: 'Old Order', property: 'total' }, 'PUT');
    expect(marked.status, marked.text).toBe(200);
    // As if the team had rolled it up before these orders (weeks ago): the database clock cannot go back.
    await h.cairn.sql`UPDATE analytics_rollup_properties SET created_at = ${new Date(start - 60 * DAY)}`;
    await h.send(...orders);
    await settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });
    H = await dropLegacy(h.cairn.sql);
    // Rolled up after the drop: counted from the kept events only (none of the old orders).
    const late = await h.post(
      '/analytics/rollups/properties',
      { event: 'Old Order', property: 'category', byValue: true },
      'PUT',
    );
    expect(late.status, late.text).toBe(200);
    expect(late.body.rows).toBe(0);
  }, 180_000);
  afterAll(() => h?.close());

  const before = () => range(H - 14 * DAY, H - DAY);
  const refused = (res: { status: number; body: { error?: { code: string; message: string } }; text: string }) => {
    expect(res.status, res.text).toBe(422);
    expect(res.body.error!.code).toBe('before_retention');
    expect(res.body.error!.message).toContain(iso(H));
    return res.body.error!.message;
  };

  it('sums, means and counts of a property rolled up before the drop answer from the rollups', async () => {
    expect(await h.cairn.sql`SELECT 1 FROM events WHERE event = 'Old Order'`).toHaveLength(0);
    const res = await h.post('/analytics/trends', {
      range: before(),
      interval: 'day',
      series: [
        { events: { event: 'Old Order' }, measure: 'sum', property: 'total' },
        { events: { event: 'Old Order' }, measure: 'avg', property: 'total' },
        { events: { event: 'Old Order' }, measure: 'count' },
      ],
      compare: 'previous',
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.meta.sources).toEqual(['values', 'values', 'counts']);
    expect(res.body.series.map((s: { total: number }) => s.total)).toEqual([sum, sum / orders.length, orders.length]);
  });

  it('still refuses what only events answer, the partial hours at the edges, and a property filled after the drop', async () => {
    // People (of any event: the hourly people rows of dropped events no longer follow merges; of a named
    // event: a scan), and a condition on a property (a scan).
    for (const series of [
      { events: {}, measure: 'people' },
      { events: { event: 'Old Order' }, measure: 'people' },
      {
        events: { event: 'Old Order', where: [{ property: 'total', cmp: '>', value: 1 }] },
        measure: 'sum',
        property: 'total',
      },
    ])
      expect(
        refused(await h.post('/analytics/trends', { range: before(), interval: 'day', series: [series] })),
      ).toContain('series[0]');
    const total = { events: { event: 'Old Order' }, measure: 'sum', property: 'total' };
    const partial = range(H - 2 * HOUR - 30 * 60_000, H + DAY);
    expect(refused(await h.post('/analytics/trends', { range: partial, interval: 'day', series: [total] }))).toContain(
      'partial hour',
    );
    // category was filled after the drop: its hours before the horizon lack the dropped orders.
    const breakdown = await h.post('/analytics/trends', {
      range: before(),
      interval: 'day',
      series: [{ events: { event: 'Old Order' }, measure: 'count' }],
      breakdown: { property: 'category' },
    });
    expect(refused(breakdown)).toContain('was filled at');
    // From the horizon on it answers from the rollup.
    const after = await h.post('/analytics/trends', {
      range: range(H, H + DAY),
      interval: 'hour',
      series: [{ events: { event: 'Old Order' }, measure: 'count' }],
      breakdown: { property: 'category' },
    });
    expect(after.status, after.text).toBe(200);
    expect(after.body.meta.sources).toEqual(['values']);
  });
});
