import type { Receiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { settle } from '../testing/events.ts';
import {
  describeOnDatabases,
  describeOnPostgres,
  type FlowHarness,
  flowHarness,
  movableClock,
} from '../testing/flows.ts';
import { adminApi, until } from '../testing/http.ts';

// KPIs with targets and pacing, and alert rules checked on a moved clock: one event per incident, sent
// to a real webhook receiver; flow health from real failed sends to a receiver answering 500.

const HOUR = 3_600_000;
const order = (user: string, at: string) => ({
  type: 'track',
  event: 'Order Completed',
  userId: user,
  timestamp: at,
  properties: { total: 10 },
});
const orders = (n: number, hourUtc: string, day = '2026-11-25') =>
  Array.from({ length: n }, (_, i) => order(`u${i % 7}`, `${day}T${hourUtc}:${String(i % 60).padStart(2, '0')}:00Z`));

describeOnDatabases('KPIs and alerts on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let hookId: string;
  let kpiId: string;
  const clock = movableClock(Date.parse('2026-11-25T06:00:00Z'));
  const alertsAt = () =>
    hook.requests.filter((r) => String(r.body?.event?.event ?? '').startsWith('Cairn Alert')).map((r) => r.body);
  const check = async () => {
    const res = await h.post('/alerts/check', {});
    expect(res.status, res.text).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    h = await flowHarness('alerts.test.ts', mode, { clock });
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    // 30 orders before 06:00 today, 5 yesterday (another period), 3 at 07:00 (after the clock).
    await h.send(...orders(30, '03'), ...orders(5, '10', '2026-11-24'), ...orders(3, '07'));
    await settle(h.cairn.sql, { timeoutMs: 60_000 });
  }, 120_000);
  afterAll(() => h?.close());

  it('measures a KPI against its target with linear pacing, on the moved clock', async () => {
    const created = await h.post('/kpis', {
      name: 'Orders per day',
      series: { events: { event: 'Order Completed' }, measure: 'count' },
      period: 'day',
      target: 100,
    });
    expect(created.status, created.text).toBe(201);
    kpiId = created.body.id;
    expect(created.body).toMatchObject({ timezone: 'UTC', target: 100, period: 'day' });

    const status = await h.api(`/kpis/${kpiId}/status`);
    expect(status.status, status.text).toBe(200);
    expect(status.body).toMatchObject({
      period: { from: '2026-11-25T00:00:00.000Z', to: '2026-11-26T00:00:00.000Z', timezone: 'UTC' },
      at: '2026-11-25T06:00:00.000Z',
      value: 30,
      target: 100,
      achievementPct: 30,
      elapsed: 0.25,
      expected: 25,
      pacePct: 120,
      projected: 120,
    });

    clock.advance(6 * HOUR); // 12:00: the three 07:00 orders count now
    const noon = (await h.api(`/kpis/${kpiId}/status`)).body;
    expect([noon.value, noon.elapsed, noon.expected, noon.projected, noon.achievementPct]).toEqual([
      33, 0.5, 50, 66, 33,
    ]);

    // A week in Berlin: Monday 2026-11-23 00:00 CET to the clock.
    const weekly = await h.post('/kpis', {
      name: 'Orders per week',
      series: { events: { event: 'Order Completed' }, measure: 'people' },
      period: 'week',
      timezone: 'Europe/Berlin',
      target: 14,
    });
    const w = (await h.api(`/kpis/${weekly.body.id}/status`)).body;
    expect(w.period).toEqual({
      from: '2026-11-22T23:00:00.000Z',
      to: '2026-11-29T23:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
    expect(w.value).toBe(7); // seven distinct buyers
    expect(w.achievementPct).toBe(50);
  });

  it('refuses bad KPIs and rules with reasons, and keeps unpatched fields', async () => {
    const bad = await h.post('/kpis', {
      name: 'x',
      series: { events: {}, measure: 'sum' },
      period: 'fortnight',
      target: 1,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/period|property/);
    const zone = await h.post('/kpis', {
      name: 'x',
      series: { events: {}, measure: 'count' },
      period: 'day',
      timezone: 'Mars/Olympus',
      target: 1,
    });
    expect(zone.status).toBe(400);
    expect(zone.body.error.message).toMatch(/timezone: not an IANA time zone/);
    const noKpi = await h.post('/alerts', { name: 'p', kind: 'pacing' });
    expect(noKpi.status).toBe(400);
    expect(noKpi.body.error.message).toMatch(/kpiId: required for pacing/);
    const wrongParam = await h.post('/alerts', { name: 'c', kind: 'change', kpiId, params: { belowPct: 50 } });
    expect(wrongParam.status).toBe(400);
    expect(wrongParam.body.error.message).toMatch(/params/);
    const unknownKpi = await h.post('/alerts', {
      name: 'c',
      kind: 'change',
      kpiId: '00000000-0000-4000-8000-000000000001',
    });
    expect(unknownKpi.status).toBe(400);
    expect(unknownKpi.body.error.message).toMatch(/kpiId: no KPI/);
    expect((await h.api('/kpis/nope/status')).status).toBe(404);

    const patched = await h.post(`/kpis/${kpiId}`, { name: 'Orders / day' }, 'PATCH');
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ name: 'Orders / day', target: 100, period: 'day', timezone: 'UTC' });
  });

  it('fires once while pacing stays low, resolves, fires again; each sent to the webhook and recorded', async () => {
    const created = await h.post('/alerts', {
      name: 'Orders behind pace',
      kind: 'pacing',
      kpiId,
      params: { belowPct: 80 },
      destinationId: hookId,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    expect(created.body.params).toEqual({ belowPct: 80, minElapsedPct: 10 });

    // 12:00: 33 against an expected 50 (threshold 40): fires.
    expect(await check()).toMatchObject({ fired: 1, resolved: 0, delivered: 1 });
    for (let i = 0; i < 3; i++) {
      clock.advance(5 * 60_000); // still behind
      expect(await check()).toMatchObject({ fired: 0, resolved: 0 });
    }
    expect(alertsAt()).toHaveLength(1);
    const fired = alertsAt()[0]!;
    expect(fired.event.event).toBe('Cairn Alert Fired');
    expect(fired.event.properties).toMatchObject({
      alert: { id, name: 'Orders behind pace', kind: 'pacing' },
      incident: 1,
      status: 'fired',
      value: 33,
      threshold: 40,
    });

    // 20 more orders (08:00): 53 against 80% of ~51.4: back to normal.
    await h.send(...orders(20, '08'));
    await settle(h.cairn.sql, { timeoutMs: 60_000 });
    expect(await check()).toMatchObject({ fired: 0, resolved: 1 });
    expect(await check()).toMatchObject({ fired: 0, resolved: 0 });

    // 20:00: 53 against 80% of ~83.3: behind again, a second incident.
    clock.advance(7 * HOUR + 45 * 60_000);
    expect(await check()).toMatchObject({ fired: 1 });
    expect(await check()).toMatchObject({ fired: 0 });

    const events = (await h.api(`/alerts/${id}/events`)).body.data;
    expect(events.map((e: { incident: number; status: string }) => [e.incident, e.status])).toEqual([
      [2, 'fired'],
      [1, 'resolved'],
      [1, 'fired'],
    ]);
    expect(events[1].value).toBe(53);
    expect(events[0].threshold).toBeCloseTo(((100 * 20) / 24) * 0.8, 6);
    expect(events.every((e: { deliveredAt: string | null }) => e.deliveredAt)).toBe(true);
    await until('three alert notices', async () => alertsAt().length === 3);
    expect(alertsAt().map((b) => [b.event.event, b.event.properties.incident])).toEqual([
      ['Cairn Alert Fired', 1],
      ['Cairn Alert Resolved', 1],
      ['Cairn Alert Fired', 2],
    ]);
    const rule = (await h.api(`/alerts/${id}`)).body;
    expect(rule).toMatchObject({ firing: true, incident: 2, lastValue: 53 });
    // Disabled: no longer checked, its incident left as it was.
    expect((await h.post(`/alerts/${id}`, { enabled: false }, 'PATCH')).body).toMatchObject({
      enabled: false,
      kind: 'pacing',
      destinationId: hookId,
      firing: true,
    });
  });

  it('finds an anomaly against the same weekday of the trailing weeks (median and MAD)', async () => {
    // 20:00 on Wednesday 2026-11-25; four earlier Wednesdays had 9-11 signups by 20:00 (and one 60).
    const past = ['2026-10-28', '2026-11-04', '2026-11-11', '2026-11-18'];
    const counts = [10, 9, 60, 11];
    await h.send(
      ...past.flatMap((day, i) =>
        Array.from({ length: counts[i]! }, (_, j) => ({
          type: 'track',
          event: 'Signed Up',
          userId: `s${i}-${j}`,
          timestamp: `${day}T${String(5 + (j % 12)).padStart(2, '0')}:00:00Z`,
        })),
      ),
      // Today: two so far; and late ones the other weeks had after 20:00 do not count.
      { type: 'track', event: 'Signed Up', userId: 'today-1', timestamp: '2026-11-25T09:00:00Z' },
      { type: 'track', event: 'Signed Up', userId: 'today-2', timestamp: '2026-11-25T10:00:00Z' },
      { type: 'track', event: 'Signed Up', userId: 'late', timestamp: '2026-11-18T21:00:00Z' },
    );
    await settle(h.cairn.sql, { timeoutMs: 60_000 });
    const created = await h.post('/alerts', {
      name: 'Signups unusual',
      kind: 'anomaly',
      metric: { series: { events: { event: 'Signed Up' }, measure: 'count' }, period: 'day' },
      params: { weeks: 4, k: 3 },
    });
    expect(created.status, created.text).toBe(201);
    await check();
    const [e] = (await h.api(`/alerts/${created.body.id}/events`)).body.data;
    // median 10.5, MAD 1 → spread max(1.4826, 0.525, 1); lower 10.5 − 3 × 1.4826.
    expect(e).toMatchObject({ status: 'fired', value: 2, incident: 1 });
    expect(e.threshold).toBeCloseTo(10.5 - 3 * 1.4826, 6);
    expect(e.detail).toMatchObject({ median: 10.5, mad: 1, history: [10, 9, 60, 11] });
    // Not sent anywhere (no destination), but recorded.
    expect(e.deliveredAt).toBeNull();
    await h.post(`/alerts/${created.body.id}`, { enabled: false }, 'PATCH');
  });

  it('compares the period so far with as much of the previous period (change)', async () => {
    // 20:00: today 53 orders, yesterday until 20:00 five (at 10:xx).
    const metric = { series: { events: { event: 'Order Completed' }, measure: 'count' }, period: 'day' };
    const rise = await h.post('/alerts', {
      name: 'Orders doubled',
      kind: 'change',
      metric,
      params: { changePct: 100 },
    });
    const drop = await h.post('/alerts', { name: 'Orders halved', kind: 'change', metric, params: { changePct: -50 } });
    expect([rise.status, drop.status]).toEqual([201, 201]);
    await check();
    const [up] = (await h.api(`/alerts/${rise.body.id}/events`)).body.data;
    expect(up).toMatchObject({ status: 'fired', value: 53, threshold: 10 });
    expect(up.detail).toMatchObject({
      previous: 5,
      change: 960,
      previousRange: { from: '2026-11-24T00:00:00.000Z', to: '2026-11-24T20:00:00.000Z' },
    });
    expect((await h.api(`/alerts/${drop.body.id}/events`)).body.data).toEqual([]);
    expect((await h.api(`/alerts/${drop.body.id}`)).body).toMatchObject({ firing: false, lastValue: 53 });
    // Neither is checked from here on (the flow health test moves the clock to today).
    for (const id of [rise.body.id, drop.body.id]) await h.post(`/alerts/${id}`, { enabled: false }, 'PATCH');
  });

  it('raises flow health from real failed sends to a receiver answering 500, and resolves after the hour', async () => {
    const broken = await h.receiver({ answer: { status: 500 } });
    const dest = await h.post('/destinations', {
      name: 'broken',
      plugin: 'webhook',
      settings: { url: broken.url },
    });
    expect(dest.status, dest.text).toBe(201);
    const created = await h.post('/alerts', {
      name: 'Broken sends',
      kind: 'flow_health',
      params: { failures: 4, destinationId: dest.body.id },
      destinationId: hookId,
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    // The ledger stamps attempts with the database's clock: the check reads the hour before now.
    clock.now = Date.now();
    await h.send(
      ...Array.from({ length: 4 }, (_, i) => ({
        type: 'track',
        event: 'Ping',
        userId: `p${i}`,
        messageId: `ping-${i}`,
      })),
    );
    await until(
      'four failed sends in the ledger',
      async () => {
        const [r] = await h.cairn.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM deliveries WHERE destination_id = ${dest.body.id} AND status IN ('retrying', 'dead')`;
        return r!.n >= 4;
      },
      { tries: 600 },
    );
    expect(broken.requests.length).toBeGreaterThanOrEqual(4);
    clock.now = Date.now() + 1000;
    expect(await check()).toMatchObject({ fired: 1 });
    expect(await check()).toMatchObject({ fired: 0 });
    await until('the flow health notice', async () =>
      alertsAt().find((b) => b.event.properties.alert.id === id && b.event.properties.status === 'fired'),
    );
    // Stop the retries from stamping new failures, then an hour and more later: resolved.
    await h.post(`/destinations/${dest.body.id}`, undefined, 'DELETE');
    clock.advance(2 * HOUR);
    expect(await check()).toMatchObject({ resolved: 1 });
    const events = (await h.api(`/alerts/${id}/events`)).body.data;
    expect(events.map((e: { status: string }) => e.status)).toEqual(['resolved', 'fired']);
    expect(events[1].value).toBeGreaterThanOrEqual(4);
    expect(events[1].threshold).toBe(4);
  }, 60_000);
});

describeOnPostgres('alerts across two servers on %s', (mode) => {
  it('fire once when both check at once, and send once', async () => {
    const clock = movableClock(Date.parse('2026-11-25T18:00:00Z'));
    const h = await flowHarness('alerts.test.ts:two', mode, { clock });
    try {
      const second = adminApi((await h.startServer()).url);
      const { receiver, destinationId } = await h.webhook();
      const kpi = await h.post('/kpis', {
        name: 'Orders',
        series: { events: { event: 'Order Completed' }, measure: 'count' },
        period: 'day',
        target: 1000,
      });
      const rule = await h.post('/alerts', { name: 'Behind', kind: 'pacing', kpiId: kpi.body.id, destinationId });
      expect(rule.status, rule.text).toBe(201);
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all([
          h.post('/alerts/check', {}),
          second('/alerts/check', { method: 'POST', body: '{}' }),
        ]);
        for (const a of answers) expect(a.status, a.text).toBe(200);
        expect(answers[0]!.body.fired + answers[1]!.body.fired).toBe(round === 0 ? 1 : 0);
      }
      expect((await h.api(`/alerts/${rule.body.id}/events`)).body.data).toHaveLength(1);
      const notices = () => receiver.requests.filter((r) => r.body?.event?.event === 'Cairn Alert Fired');
      await until('the notice', async () => notices().length > 0);
      expect(notices()).toHaveLength(1);
    } finally {
      await h.close();
    }
  }, 90_000);
});
