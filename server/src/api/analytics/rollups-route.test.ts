import { afterAll, beforeAll, expect, it } from 'vitest';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { adminApi } from '../../testing/http.ts';

// /api/analytics/rollups/properties through real HTTP on a real server: a property marked rolled up is
// filled from the stored events and answers the tile (meta.sources: values) exactly as the scan did; an
// event after marking is counted by the pipeline; removing it makes the tile scan again; bad bodies are
// 400 with the field named; analysts and operators may list but not change.
describeOnDatabases('rolled-up properties route on %s', (mode) => {
  let h: FlowHarness;
  let analyst: ReturnType<typeof adminApi>;
  let operator: ReturnType<typeof adminApi>;
  const HOUR = 3_600_000;
  // Whole UTC hours: the last 30 before the current hour; orders in the middle of them.
  const to = Math.floor(Date.now() / HOUR) * HOUR;
  const from = to - 30 * HOUR;
  const iso = (ms: number) => new Date(ms).toISOString();
  const orders = Array.from({ length: 40 }, (_, i) => ({
    type: 'track',
    event: 'Order Completed',
    userId: `buyer-${i % 7}`,
    timestamp: iso(from + (i % 25) * HOUR + 17 * 60_000),
    // Numbers, and values that are not JSON numbers (ignored by sum and by the rollup alike).
    properties: { total: i % 9 === 0 ? 'n/a' : 10 + i, category: ['books', 'music', 'games'][i % 3] },
  }));
  const range = { from: iso(from), to: iso(to), timezone: 'UTC' };
  const sumTile = {
    range,
    interval: 'day',
    series: [{ events: { event: 'Order Completed' }, measure: 'sum', property: 'total' }],
  };
  const byCategory = {
    range,
    interval: 'hour',
    series: [{ events: { event: 'Order Completed' }, measure: 'count' }],
    breakdown: { property: 'category' },
  };
  const put = (body: unknown, as?: ReturnType<typeof adminApi>) =>
    as
      ? as('/analytics/rollups/properties', { method: 'PUT', body: JSON.stringify(body) })
      : h.post('/analytics/rollups/properties', body, 'PUT');
  const trend = async (body: unknown) => {
    const res = await h.post('/analytics/trends', body);
    expect(res.status, res.text).toBe(200);
    return res.body as {
      series: { total: number; values: number[]; groups?: unknown[] }[];
      meta: { sources: string[] };
    };
  };
  const settled = () => settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });

  beforeAll(async () => {
    h = await flowHarness('rollups-route.test.ts', mode);
    await h.send(...orders);
    await settled();
    for (const role of ['analyst', 'operator']) {
      const key = await h.post('/keys', { name: role, role });
      expect(key.status, key.text).toBe(201);
      if (role === 'analyst') analyst = adminApi(h.cairn.url, key.body.key);
      else operator = adminApi(h.cairn.url, key.body.key);
    }
  }, 180_000);
  afterAll(() => h?.close());

  it('marks a property: filled from the events, the tile reads it and equals the scan; new events count', async () => {
    const expected = orders.reduce((s, o) => s + (typeof o.properties.total === 'number' ? o.properties.total : 0), 0);
    const scanned = await trend(sumTile);
    expect(scanned.meta.sources).toEqual(['events']);
    expect(scanned.series[0]!.total).toBe(expected);
    const scannedBreakdown = await trend(byCategory);
    expect(scannedBreakdown.meta.sources).toEqual(['events']);

    const marked = await put({ event: 'Order Completed', property: 'total' });
    expect(marked.status, marked.text).toBe(200);
    expect(marked.body).toMatchObject({ event: 'Order Completed', property: 'total', byValue: false, filled: true });
    // One row per (hour, type) the orders fall in.
    expect(marked.body.rows).toBe(25);
    const byValue = await put({ event: 'Order Completed', property: 'category', byValue: true });
    expect(byValue.status, byValue.text).toBe(200);
    const listed = await h.api('/analytics/rollups/properties');
    expect(listed.status, listed.text).toBe(200);
    expect(listed.body.data.map((p: { property: string; rows: number }) => [p.property, p.rows])).toEqual([
      ['category', byValue.body.rows],
      ['total', 25],
    ]);
    expect(Date.parse(listed.body.data[1].createdAt)).toBeGreaterThan(Date.now() - 60_000);

    const rolled = await trend(sumTile);
    expect(rolled.meta.sources).toEqual(['values']);
    expect(rolled.series).toEqual(scanned.series);
    const rolledBreakdown = await trend(byCategory);
    expect(rolledBreakdown.meta.sources).toEqual(['values']);
    expect(rolledBreakdown.series).toEqual(scannedBreakdown.series);

    // An order after marking: the pipeline recounts its hour with the property.
    await h.send({
      type: 'track',
      event: 'Order Completed',
      userId: 'late-buyer',
      timestamp: iso(from + 3 * HOUR + 5 * 60_000),
      properties: { total: 1000, category: 'books' },
    });
    await settled();
    const after = await trend(sumTile);
    expect(after.meta.sources).toEqual(['values']);
    expect(after.series[0]!.total).toBe(expected + 1000);
  });

  it('removes a property: its rows go, the tile scans events again with the same answer', async () => {
    const before = await trend(sumTile);
    expect(before.meta.sources).toEqual(['values']);
    const gone = await h.api('/analytics/rollups/properties?event=Order%20Completed&property=total', {
      method: 'DELETE',
    });
    expect(gone.status, gone.text).toBe(204);
    const [left] = await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM analytics_hourly_values WHERE property = 'total'`;
    expect(left!.n).toBe(0);
    const scanned = await trend(sumTile);
    expect(scanned.meta.sources).toEqual(['events']);
    expect(scanned.series).toEqual(before.series);
    const listed = await h.api('/analytics/rollups/properties');
    expect(listed.body.data.map((p: { property: string }) => p.property)).toEqual(['category']);
    const again = await h.api('/analytics/rollups/properties?event=Order%20Completed&property=total', {
      method: 'DELETE',
    });
    expect(again.status, again.text).toBe(404);
  });

  it('refuses bad bodies with the field named', async () => {
    const bad: [unknown, string][] = [
      [{ event: '', property: 'total' }, 'event'],
      [{ event: '   ', property: 'total' }, 'event'],
      [{ event: 'x'.repeat(201), property: 'total' }, 'event'],
      [{ property: 'total' }, 'event'],
      [{ event: 'Order Completed', property: 'order..total' }, 'property'],
      [{ event: 'Order Completed', property: 'total[0]' }, 'property'],
      [{ event: 'Order Completed', property: 'a'.repeat(201) }, 'property'],
      [{ event: 'Order Completed', property: 'total', byValue: 'yes' }, 'byValue'],
      [{ event: 'Order Completed', property: 'total', extra: 1 }, 'extra'],
      [{ event: 'Order Completed', property: 'email' }, 'sensitive'],
    ];
    for (const [body, field] of bad) {
      const res = await put(body);
      expect(res.status, `${JSON.stringify(body)}: ${res.text}`).toBe(400);
      expect(res.text, JSON.stringify(body)).toContain(field);
    }
    const noQuery = await h.api('/analytics/rollups/properties?event=Order%20Completed', { method: 'DELETE' });
    expect(noQuery.status, noQuery.text).toBe(400);
    expect(noQuery.text).toContain('property');
  });

  it('lets every role list, and only admins change', async () => {
    expect((await analyst('/analytics/rollups/properties')).status).toBe(200);
    for (const as of [analyst, operator]) {
      const res = await put({ event: 'Order Completed', property: 'total' }, as);
      expect(res.status, res.text).toBe(403);
      expect(res.body.error.message).toContain('analytics:write');
      const del = await as('/analytics/rollups/properties?event=Order%20Completed&property=category', {
        method: 'DELETE',
      });
      expect(del.status, del.text).toBe(403);
    }
    const [still] = await h.cairn.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM analytics_rollup_properties`;
    expect(still!.n).toBe(1);
  });

  it('records every change of the kept rollups in the audit log, and no tile query', async () => {
    const audit = () =>
      h.cairn.sql<{ action: string; resource_type: string; method: string; status: number; after: unknown }[]>`
        SELECT action, resource_type, method, status, after FROM audit_log
        WHERE resource_type IN ('analytics_rollup', 'analytics') ORDER BY id`;
    const zone = await h.post('/analytics/rollups/people', { zone: 'Asia/Tokyo' });
    expect(zone.status, zone.text).toBe(200);
    const dropped = await h.api('/analytics/rollups/people?zone=Asia%2FTokyo', { method: 'DELETE' });
    expect(dropped.status, dropped.text).toBe(200);
    const rows = await audit();
    // The earlier tests' writes: two PUTs (total, category), one DELETE (total), the 404 DELETE; then the zone.
    expect(rows.filter((r) => r.status < 300).map((r) => [r.method, r.action])).toEqual([
      ['PUT', 'analytics_rollup.put_property'],
      ['PUT', 'analytics_rollup.put_property'],
      ['DELETE', 'analytics_rollup.delete_property'],
      ['POST', 'analytics_rollup.keep_people'],
      ['DELETE', 'analytics_rollup.drop_people'],
    ]);
    expect(rows.every((r) => r.resource_type === 'analytics_rollup')).toBe(true);
    expect(JSON.stringify(rows.at(-2)!.after)).toContain('Asia/Tokyo');
  });
});
