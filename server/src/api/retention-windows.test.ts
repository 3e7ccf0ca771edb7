// Issue 22: queries and rules over windows longer than the event retention are refused with a reason.
// Analytics queries reading events before the retention horizon (the start of the oldest kept partition
// plus one day) answer 422 before_retention, except trend tiles the hourly counts answer wholly; rules
// and computed traits reading events further back than CAIRN_EVENT_RETENTION_DAYS are refused at save
// (422 window_beyond_retention); "all time" ones are accepted with a warning. Without retention nothing
// changes. On both databases, through real HTTP on a real server.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Sql } from '../db/index.ts';
import {
  dropEventPartition,
  ensureEventPartitions,
  eventPartitions,
  retentionHorizon,
} from '../jobs/retention-queries.ts';
import { insertAudience } from '../pipeline/compute/index.ts';
import { describeOnDatabases, type FlowHarness, flowHarness, settle } from '../testing/index.ts';
import { warnDefinitionsBeyondRetention } from './rule-windows.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const range = (from: number, to: number) => ({ from: iso(from), to: iso(to), timezone: 'UTC' });
const within = (last: number, unit = 'days') => ({ last, unit });

// Drops events_legacy (every event stored so far) as the retention job would once it expired, and makes
// this month's partition, so the horizon is the start of this month plus one day.
async function dropLegacy(sql: Sql): Promise<number> {
  await dropEventPartition(sql, 'events_legacy');
  await ensureEventPartitions(sql, new Date(), 2);
  const horizon = await retentionHorizon(sql);
  const lowest = Math.min(...(await eventPartitions(sql)).map((p) => p.lowerBound!.getTime()));
  expect(horizon?.getTime()).toBe(lowest + DAY);
  return horizon!.getTime();
}

describeOnDatabases('refusals past the event retention on %s', (mode) => {
  let h: FlowHarness;
  let H: number;
  const OLD_ORDERS = 7;

  beforeAll(async () => {
    h = await flowHarness('api/retention-windows.test.ts', mode, { env: { CAIRN_EVENT_RETENTION_DAYS: '30' } });
    // Orders dated well before the coming horizon, rolled up by the pipeline, then dropped with their partition.
    const start = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1);
    const orders = Array.from({ length: OLD_ORDERS }, (_, i) => ({
      type: 'track',
      event: 'Old Order',
      userId: `old-${i}`,
      timestamp: iso(start - 10 * DAY + i * HOUR),
      properties: { total: 10 },
    }));
    await h.send(...orders);
    await settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });
    H = await dropLegacy(h.cairn.sql);
    expect(H).toBe(start + DAY);
    await h.send({ type: 'track', event: 'New Order', userId: 'new-1', timestamp: iso(Date.now()) });
  }, 180_000);
  afterAll(() => h?.close());

  const refused = (res: { status: number; body: { error?: { code: string; message: string } }; text: string }) => {
    expect(res.status, res.text).toBe(422);
    expect(res.body.error!.code).toBe('before_retention');
    expect(res.body.error!.message).toContain(iso(H));
    expect(res.body.error!.message).toContain('CAIRN_EVENT_RETENTION_DAYS=30');
    return res.body.error!.message;
  };

  it('trends: tiles the hourly counts answer stay, with the dropped events counted; scans before the horizon are refused', async () => {
    const before = range(H - 14 * DAY, H - DAY);
    const count = { events: { event: 'Old Order' }, measure: 'count' };
    const tile = await h.post('/analytics/trends', { range: before, interval: 'day', series: [count] });
    expect(tile.status, tile.text).toBe(200);
    expect(tile.body.series[0].total).toBe(OLD_ORDERS);
    expect(await h.cairn.sql`SELECT 1 FROM events WHERE event = 'Old Order'`).toHaveLength(0);

    // A condition on a property, people, a sum: only the events could answer them.
    for (const series of [
      { events: { event: 'Old Order', where: [{ property: 'total', cmp: '>', value: 1 }] }, measure: 'count' },
      { events: { event: 'Old Order' }, measure: 'people' },
      { events: { event: 'Old Order' }, measure: 'sum', property: 'total' },
    ]) {
      const res = await h.post('/analytics/trends', { range: before, interval: 'day', series: [series] });
      expect(refused(res)).toContain('series[0]');
    }
    // A count from the middle of an hour before the horizon: that partial hour scans events.
    const partial = await h.post('/analytics/trends', {
      range: range(H - 2 * HOUR - 30 * 60_000, H + DAY),
      interval: 'day',
      series: [count],
    });
    refused(partial);
    // At the horizon exactly, any series answers; the period before it, for compare, is refused.
    const people = { events: {}, measure: 'people' };
    const edge = await h.post('/analytics/trends', { range: range(H, H + DAY), interval: 'hour', series: [people] });
    expect(edge.status, edge.text).toBe(200);
    const early = await h.post('/analytics/trends', {
      range: range(H - HOUR, H + DAY),
      interval: 'hour',
      series: [people],
    });
    refused(early);
    const compared = await h.post('/analytics/trends', {
      range: range(H, H + DAY),
      interval: 'hour',
      series: [people],
      compare: 'previous',
    });
    expect(refused(compared)).toContain('previous period');
    const countsCompared = await h.post('/analytics/trends', {
      range: range(H, H + DAY),
      interval: 'hour',
      series: [count],
      compare: 'previous',
    });
    expect(countsCompared.status, countsCompared.text).toBe(200);
  });

  it('funnels, paths, retention, active people, attribution: refused before the horizon, answered from it', async () => {
    const funnel = {
      steps: [{ events: { event: 'Old Order' } }, { events: { event: 'New Order' } }],
      window: { value: 1, unit: 'days' },
    };
    refused(await h.post('/analytics/funnels', { ...funnel, range: range(H - DAY, H + DAY) }));
    refused(
      await h.post('/analytics/funnels/people', {
        ...funnel,
        range: range(H - DAY, H + DAY),
        step: 2,
        status: 'converted',
      }),
    );
    expect((await h.post('/analytics/funnels', { ...funnel, range: range(H, H + DAY) })).status).toBe(200);

    const anchor = { event: 'New Order' };
    refused(await h.post('/analytics/paths', { anchor, range: range(H - 1, H + DAY) }));
    expect((await h.post('/analytics/paths', { anchor, range: range(H, H + DAY) })).status).toBe(200);
    // Looking back reads steps × sessionGap minutes before the range.
    const back = { anchor, direction: 'before', steps: 2, sessionGap: 30 };
    expect(refused(await h.post('/analytics/paths', { ...back, range: range(H, H + DAY) }))).toContain('60 minutes');
    const backAtEdge = await h.post('/analytics/paths', { ...back, range: range(H + HOUR, H + DAY) });
    expect(backAtEdge.status, backAtEdge.text).toBe(200);

    const cohorts = { cohort: 'day', start: anchor, return: anchor, periods: 1 };
    refused(await h.post('/analytics/retention', { ...cohorts, range: range(H - DAY, H + DAY) }));
    const cohortsAtEdge = await h.post('/analytics/retention', { ...cohorts, range: range(H, H + DAY) });
    expect(cohortsAtEdge.status, cohortsAtEdge.text).toBe(200);

    // Active people read the 29 days before the first day (MAU).
    expect(
      refused(await h.post('/analytics/active', { range: range(H + 28 * DAY, H + 30 * DAY), interval: 'day' })),
    ).toContain('MAU');
    const active = await h.post('/analytics/active', { range: range(H + 29 * DAY, H + 30 * DAY), interval: 'day' });
    expect(active.status, active.text).toBe(200);

    // Attribution reads the lookback and one 30-minute session gap before the range.
    const lookback = { value: 7, unit: 'days' };
    const attribution = (from: number) =>
      h.post('/analytics/attribution', { conversion: anchor, lookback, range: range(from, from + DAY) });
    expect(refused(await attribution(H + 7 * DAY))).toContain('lookback (7 days)');
    const attributed = await attribution(H + 7 * DAY + 30 * 60_000);
    expect(attributed.status, attributed.text).toBe(200);
  });

  it('campaign results: refused from a start before the horizon, answered for a range from it', async () => {
    const startDate = iso(H - 5 * DAY).slice(0, 10);
    const made = await h.post('/campaigns', { name: 'Old sale', startDate, utm: ['old-sale'] });
    expect(made.status, made.text).toBe(201);
    const results = (body: object) => h.post(`/analytics/campaigns/${made.body.id}/results`, body);
    expect(refused(await results({}))).toContain('campaign');
    const fromHorizon = await results({ range: range(H, H + DAY) });
    expect(fromHorizon.status, fromHorizon.text).toBe(200);
  });

  it('audiences: a window longer than the retention is refused at create and update, one as long is accepted', async () => {
    const rule = (w: object) => ({ op: 'performed', event: 'New Order', within: w });
    const over = await h.post('/audiences', { key: 'buyers_31', name: 'Buyers', rule: rule(within(31)) });
    expect(over.status, over.text).toBe(422);
    expect(over.body.error.code).toBe('window_beyond_retention');
    expect(over.body.error.message).toMatch(/rule\.within: reads events 31 days back.*CAIRN_EVENT_RETENTION_DAYS=30/);
    // Hours and fixed dates count in days too.
    const hours = await h.post('/audiences', { key: 'buyers_h', name: 'B', rule: rule(within(721, 'hours')) });
    expect(hours.status, hours.text).toBe(422);
    const fixed = { from: iso(Date.now() - 40 * DAY), to: iso(Date.now() + DAY) };
    expect((await h.post('/audiences', { key: 'buyers_f', name: 'B', rule: rule(fixed) })).status).toBe(422);
    // Nested under and / not: the path names the leaf.
    const nested = await h.post('/audiences', {
      key: 'lapsed',
      name: 'Lapsed',
      rule: {
        op: 'and',
        rules: [
          { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
          { op: 'not', rule: rule(within(45)) },
        ],
      },
    });
    expect(nested.status, nested.text).toBe(422);
    expect(nested.body.error.message).toContain('rule.rules[1].rule.within');

    const edge = await h.post('/audiences', { key: 'buyers_30', name: 'Buyers', rule: rule(within(720, 'hours')) });
    expect(edge.status, edge.text).toBe(201);
    expect(edge.body.warnings).toBeUndefined();
    const patched = await h.post('/audiences/buyers_30', { rule: rule(within(60)) }, 'PATCH');
    expect(patched.status, patched.text).toBe(422);
    expect(patched.body.error.code).toBe('window_beyond_retention');
    const kept = await h.api('/audiences/buyers_30');
    expect(kept.body.rule.within).toEqual(within(720, 'hours'));
  });

  it('all-time rules are accepted with a warning; tags and computed traits are checked as audiences are', async () => {
    const ever = await h.post('/audiences', {
      key: 'ever_bought',
      name: 'Ever bought',
      rule: { op: 'performed', event: 'New Order' },
    });
    expect(ever.status, ever.text).toBe(201);
    expect(ever.body.warnings).toEqual([expect.stringMatching(/^rule: reads events over all time.*=30/)]);
    expect((await h.api('/audiences/ever_bought')).body.warnings).toHaveLength(1);

    const agg = (w?: object) => ({
      op: 'aggregate',
      fn: 'count',
      event: 'New Order',
      cmp: '>=',
      value: 2,
      ...(w ? { within: w } : {}),
    });
    const tagOver = await h.post('/tags', { key: 'repeat_40', name: 'Repeat', rule: agg(within(40)) });
    expect(tagOver.status, tagOver.text).toBe(422);
    expect(tagOver.body.error.code).toBe('window_beyond_retention');
    const tag = await h.post('/tags', { key: 'repeat_30', name: 'Repeat', rule: agg(within(30)) });
    expect(tag.status, tag.text).toBe(201);
    expect((await h.post('/tags/repeat_30', { rule: agg(within(31)) }, 'PATCH')).status).toBe(422);
    const tagEver = await h.post('/tags', { key: 'repeat_ever', name: 'Repeat', rule: agg() });
    expect(tagEver.status, tagEver.text).toBe(201);
    expect(tagEver.body.warnings).toHaveLength(1);

    const trait = (key: string, definition: object) => h.post('/computed-traits', { key, name: key, definition });
    const count = (w?: object) => ({ kind: 'aggregate', fn: 'count', event: 'New Order', ...(w ? { within: w } : {}) });
    const traitOver = await trait('orders_31', count(within(31)));
    expect(traitOver.status, traitOver.text).toBe(422);
    expect(traitOver.body.error.message).toContain('definition.within');
    // The RFM preset reads 90 days by default.
    const rfm = await trait('rfm', { kind: 'rfm' });
    expect(rfm.status, rfm.text).toBe(422);
    expect(rfm.body.error.message).toMatch(/definition\.windowDays: reads events 90 days back/);
    expect((await trait('rfm_30', { kind: 'rfm', windowDays: 30, recencyDays: [7, 30] })).status).toBe(201);
    expect((await trait('orders_30', count(within(30)))).status).toBe(201);
    expect((await h.post('/computed-traits/orders_30', { definition: count(within(90)) }, 'PATCH')).status).toBe(422);
    const traitEver = await trait('orders_ever', count());
    expect(traitEver.status, traitEver.text).toBe(201);
    expect(traitEver.body.warnings).toHaveLength(1);
  });

  it('a definition saved before the retention keeps working and is named at start', async () => {
    const rule = { op: 'performed', event: 'New Order', within: within(90) };
    await h.cairn.sql.begin((tx) =>
      insertAudience(tx, 'saved_before', {
        name: 'Saved before',
        description: null,
        rule: rule as never,
        enabled: true,
      }),
    );
    expect((await h.api('/audiences/saved_before')).status).toBe(200);
    // A change that leaves its rule alone is not refused.
    const renamed = await h.post('/audiences/saved_before', { name: 'Renamed' }, 'PATCH');
    expect(renamed.status, renamed.text).toBe(200);
    const lines: string[] = [];
    const named = await warnDefinitionsBeyondRetention(h.cairn.sql, 30, { info: (l) => lines.push(l) }, new Date());
    expect(named).toContain('audience saved_before (rule.within: 90 days)');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warning: .*CAIRN_EVENT_RETENTION_DAYS=30.*audience saved_before/);
    expect(lines[0]).not.toContain('buyers_30');
  });
});

describeOnDatabases('without event retention on %s', (mode) => {
  let h: FlowHarness;
  beforeAll(async () => {
    h = await flowHarness('api/retention-windows.test.ts:forever', mode);
  }, 120_000);
  afterAll(() => h?.close());

  it('nothing is refused and nothing warned while nothing was dropped', async () => {
    expect(await retentionHorizon(h.cairn.sql)).toBeNull();
    const old = range(Date.UTC(2020, 0, 1), Date.UTC(2020, 0, 2));
    const people = await h.post('/analytics/trends', {
      range: old,
      interval: 'hour',
      series: [{ events: {}, measure: 'people' }],
    });
    expect(people.status, people.text).toBe(200);
    const back = { anchor: { event: 'X' }, direction: 'before', range: old };
    expect((await h.post('/analytics/paths', back)).status).toBe(200);
    const audience = await h.post('/audiences', {
      key: 'long_ago',
      name: 'Long ago',
      rule: { op: 'performed', event: 'X', within: within(3650) },
    });
    expect(audience.status, audience.text).toBe(201);
    const ever = await h.post('/audiences', { key: 'ever', name: 'Ever', rule: { op: 'performed', event: 'X' } });
    expect(ever.body.warnings).toBeUndefined();
    expect((await h.post('/computed-traits', { key: 'rfm', name: 'RFM', definition: { kind: 'rfm' } })).status).toBe(
      201,
    );
    const lines: string[] = [];
    expect(await warnDefinitionsBeyondRetention(h.cairn.sql, null, { info: (l) => lines.push(l) }, new Date())).toEqual(
      [],
    );
    expect(lines).toEqual([]);
  });

  it('the OpenAPI description names both refusals', async () => {
    const doc = (await h.api('/openapi.json')).body;
    for (const path of ['/api/analytics/trends', '/api/analytics/funnels', '/api/analytics/paths']) {
      expect(doc.paths[path].post.responses['422'].description, path).toContain('before_retention');
    }
    for (const path of ['/api/audiences', '/api/tags', '/api/computed-traits']) {
      expect(doc.paths[path].post.responses['422'].description, path).toContain('window_beyond_retention');
      expect(doc.paths[`${path}/{key}`].patch.responses['422'].description, path).toContain('window_beyond_retention');
    }
  });

  it('once partitions were dropped (the setting since removed), reads before the horizon are still refused', async () => {
    const H = await dropLegacy(h.cairn.sql);
    const res = await h.post('/analytics/funnels', {
      steps: [{ events: { event: 'X' } }, { events: { event: 'Y' } }],
      window: { value: 1, unit: 'days' },
      range: range(H - DAY, H),
    });
    expect(res.status, res.text).toBe(422);
    expect(res.body.error.code).toBe('before_retention');
    expect(res.body.error.message).toContain('CAIRN_EVENT_RETENTION_DAYS is unset now');
  });
});
