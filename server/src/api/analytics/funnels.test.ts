import {
  addAttempt,
  type FunnelAttempt,
  funnelCounts,
  funnelPackedQuery,
  funnelStepStats,
  unpackFunnelEvents,
} from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AnalyticsReader, createAnalyticsReader } from '../../pipeline/measure/index.ts';
import type { Cairn } from '../../server.ts';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { createTestDatabase, type TestDatabase } from '../../testing/db.ts';
import { sendEvents, settle } from '../../testing/events.ts';
import { describeOnDatabases } from '../../testing/flows.ts';
import { type ApiAnswer, adminApi, until } from '../../testing/http.ts';
import { startTestCairn } from '../../testing/server.ts';
import { readFunnel } from './funnel-read.ts';
import { checkFunnels, oracleFunnels } from './funnels.oracle.ts';
import { funnelOf } from './funnels.ts';
import { profileBounds } from './slices.ts';

describeOnDatabases('POST /api/analytics/funnels on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let reader: AnalyticsReader;
  let api: ReturnType<typeof adminApi>;
  const post = (path: string, body: unknown): Promise<ApiAnswer> =>
    api(path, { method: 'POST', body: JSON.stringify(body) });
  const send = async (...events: object[]) => {
    await sendEvents(cairn, cairn.demoSource!.writeKey, events);
    await settle(cairn.sql);
  };
  const events = generateAnalyticsEvents({ seed: 23, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    db = await createTestDatabase(`funnels.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    api = adminApi(cairn.url);
    reader = createAnalyticsReader({
      sql: cairn.sql,
      dbKind: mode,
      databaseUrl: db.env.DATABASE_URL,
      replicaUrl: undefined,
      timeoutMs: 60_000,
    });
    await sendGenerated(cairn, events);
  }, 600_000);
  afterAll(async () => {
    await reader?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('answers as the oracle over generated histories (every order, zones, DST days, exclusions, breakdowns)', async () => {
    await checkFunnels({ post, events });
  }, 300_000);

  it('reads the same through a cursor (rows per event), through array_agg (a row per person) and packed (a row per pack of people, cut at the quantiles of their ids)', async () => {
    // Statistics of profile ids: packs and slices are cut at their quantiles.
    await cairn.sql`ANALYZE profiles`;
    expect((await profileBounds(reader)).length).toBeGreaterThan(10);
    for (const q of oracleFunnels()) {
      const body = {
        ...q,
        steps: q.steps.map((s) => ({ events: s.events, name: s.name })),
        exclusions: q.exclusions.map((x) => ({ events: x.events, between: x.between })),
      };
      const { query, pass } = funnelOf(body as never, cairn.pii, new Date());
      const answers = [];
      for (const how of ['stream', 'arrays', 'packed'] as const) {
        const counts = funnelCounts(pass.steps);
        const people: [string, FunnelAttempt | null][] = [];
        await readFunnel(
          reader,
          query,
          pass,
          (p, a) => {
            people.push([p, a]);
            if (a) addAttempt(counts, a);
            return undefined;
          },
          undefined,
          how,
        );
        // Packed also hands over the people with matching events but no entry (null): the others never read them.
        answers.push({ people: people.filter(([, a]) => a), stats: funnelStepStats(counts) });
      }
      expect(answers[0]!.people.length).toBeGreaterThan(0);
      expect(answers[1]).toEqual(answers[0]);
      expect(answers[2]).toEqual(answers[0]);
    }
  }, 120_000);

  it('packs people by the first byte of their id and by the quantiles of the ids alike, in profile-id order', async () => {
    await cairn.sql`ANALYZE profiles`;
    const bounds = await profileBounds(reader);
    expect(bounds.length).toBeGreaterThan(10);
    for (const q of oracleFunnels().slice(0, 4)) {
      const body = {
        ...q,
        steps: q.steps.map((s) => ({ events: s.events, name: s.name })),
        exclusions: q.exclusions.map((x) => ({ events: x.events, between: x.between })),
      };
      const { query } = funnelOf(body as never, cairn.pii, new Date());
      const people = async (b?: string[]) => {
        const out: string[] = [];
        for await (const batch of reader.stream<{ ev: string }>(funnelPackedQuery(query, b), undefined, 4))
          for (const r of batch) for (const p of unpackFunnelEvents(r.ev)) out.push(JSON.stringify(p));
        return out;
      };
      const byByte = await people();
      const byBounds = await people(bounds);
      expect(byByte.length).toBeGreaterThan(0);
      expect(byBounds).toEqual(byByte);
      const ids = byBounds.map((p) => JSON.parse(p).profile as string);
      expect(ids).toEqual([...ids].sort());
    }
  });

  const range = { from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z', timezone: 'UTC' };
  const two = (a: string, b: string, window = { value: 1, unit: 'hours' }) => ({
    range,
    steps: [{ events: { event: a } }, { events: { event: b } }],
    window,
  });

  it('counts a conversion across a merge of two devices as one person', async () => {
    // Device 1 views, device 2 buys; both sign in as one user afterwards: one person, converted.
    await send(
      { type: 'track', event: 'Merge Viewed', anonymousId: 'fm-d1', timestamp: '2026-12-01T10:00:00Z' },
      { type: 'track', event: 'Merge Bought', anonymousId: 'fm-d2', timestamp: '2026-12-01T10:20:00Z' },
    );
    const before = await post('/analytics/funnels', two('Merge Viewed', 'Merge Bought'));
    expect(before.body.steps.map((s: { entered: number }) => s.entered)).toEqual([1, 0]);
    await send(
      { type: 'identify', userId: 'fm-user', anonymousId: 'fm-d1', timestamp: '2026-12-01T11:00:00Z' },
      { type: 'identify', userId: 'fm-user', anonymousId: 'fm-d2', timestamp: '2026-12-01T11:05:00Z' },
    );
    const after = await until('the merge', async () => {
      const r = await post('/analytics/funnels', two('Merge Viewed', 'Merge Bought'));
      return r.body.steps[1].entered === 1 ? r : undefined;
    });
    expect(after.body.steps).toMatchObject([
      { step: 1, entered: 1 },
      { step: 2, entered: 1, fromPrevious: 100, medianSeconds: 1200, averageSeconds: 1200 },
    ]);
  });

  it('keeps a step exactly at the end of the window, not one a millisecond later', async () => {
    await send(
      { type: 'track', event: 'Edge Start', anonymousId: 'fe-1', timestamp: '2026-12-01T08:00:00.000Z' },
      { type: 'track', event: 'Edge End', anonymousId: 'fe-1', timestamp: '2026-12-01T09:00:00.000Z' },
      { type: 'track', event: 'Edge Start', anonymousId: 'fe-2', timestamp: '2026-12-01T08:00:00.000Z' },
      { type: 'track', event: 'Edge End', anonymousId: 'fe-2', timestamp: '2026-12-01T09:00:00.001Z' },
    );
    const r = await post('/analytics/funnels', two('Edge Start', 'Edge End'));
    expect(r.body.steps.map((s: { entered: number }) => s.entered)).toEqual([2, 1]);
    expect(r.body.steps[1].medianSeconds).toBe(3600);
    // The entry must fall in [from, to): an entry at `to` is not in.
    const later = await post('/analytics/funnels', {
      ...two('Edge Start', 'Edge End'),
      range: { ...range, to: '2026-12-01T08:00:00.000Z' },
    });
    expect(later.body.steps[0].entered).toBe(0);
  });

  it('keeps a 1-day window 24 hours across a DST change, and buckets entries by the local day', async () => {
    // Europe/Berlin leaves summer time on 2026-10-25 (that day has 25 hours).
    await send(
      { type: 'track', event: 'Dst Start', anonymousId: 'fd-1', timestamp: '2026-10-24T12:00:00+02:00' },
      { type: 'track', event: 'Dst End', anonymousId: 'fd-1', timestamp: '2026-10-25T10:30:00+01:00' },
      { type: 'track', event: 'Dst Start', anonymousId: 'fd-2', timestamp: '2026-10-24T23:30:00+02:00' },
      { type: 'track', event: 'Dst End', anonymousId: 'fd-2', timestamp: '2026-10-25T23:00:00+01:00' },
    );
    const r = await post('/analytics/funnels', {
      range: { from: '2026-10-24T00:00:00+02:00', to: '2026-10-26T00:00:00+01:00', timezone: 'Europe/Berlin' },
      steps: [{ events: { event: 'Dst Start' } }, { events: { event: 'Dst End' } }],
      window: { value: 1, unit: 'days' },
      interval: 'day',
    });
    expect(r.status, r.text).toBe(200);
    // fd-1: 23.5 h later (22.5 h on the wall clock), in; fd-2: 24.5 h later (23.5 h on the wall clock), out.
    expect(r.body.steps.map((s: { entered: number }) => s.entered)).toEqual([2, 1]);
    expect(r.body.overTime).toEqual([
      { bucket: '2026-10-23T22:00:00.000Z', entered: 2, converted: 1, conversionRate: 50 },
      { bucket: '2026-10-24T22:00:00.000Z', entered: 0, converted: 0, conversionRate: null },
    ]);
  });

  it('tags the people who dropped at a step (audiences:write, audited)', async () => {
    await send(
      { type: 'track', event: 'Tag Start', anonymousId: 'ft-1', timestamp: '2026-12-01T08:00:00Z' },
      { type: 'track', event: 'Tag End', anonymousId: 'ft-1', timestamp: '2026-12-01T08:10:00Z' },
      { type: 'track', event: 'Tag Start', anonymousId: 'ft-2', timestamp: '2026-12-01T08:00:00Z' },
    );
    expect((await post('/tags', { key: 'edge_dropped', name: 'Dropped at the edge' })).status).toBe(201);
    const body = { ...two('Tag Start', 'Tag End'), step: 2, status: 'dropped' };
    const people = await post('/analytics/funnels/people', body);
    expect(people.status, people.text).toBe(200);
    expect(people.body.data).toHaveLength(1);
    const [dropped] = people.body.data;
    expect((await api('/profiles?anonymousId=ft-2')).body.data[0].id).toBe(dropped);
    const tagged = await post('/tags/edge_dropped/from-funnel', { ...body, reason: 'win them back' });
    expect(tagged.status, tagged.text).toBe(200);
    expect(tagged.body).toEqual({ tag: 'edge_dropped', people: 1, added: 1 });
    expect((await api(`/profiles/${dropped}/tags`)).body.current).toEqual(['edge_dropped']);
    const audit = await api('/audit?action=tag.from_funnel');
    expect(audit.body.data[0]).toMatchObject({
      action: 'tag.from_funnel',
      resourceType: 'tag',
      resourceId: 'edge_dropped',
      after: { step: 2, status: 'dropped', people: 1, added: 1 },
    });
    // Again: nobody new.
    expect((await post('/tags/edge_dropped/from-funnel', body)).body).toMatchObject({ people: 1, added: 0 });
    expect((await post('/tags/nope/from-funnel', body)).status).toBe(404);
  });

  it('refuses bad funnels with the reason', async () => {
    const base = two('Edge Start', 'Edge End');
    const refused = async (body: object, reason: RegExp) => {
      const r = await post('/analytics/funnels', body);
      expect(r.status, r.text).toBe(400);
      expect(r.body.error.message).toMatch(reason);
    };
    await refused({ ...base, steps: [{ events: { event: 'A' } }] }, /steps: a funnel has at least 2 steps/);
    await refused(
      { ...base, steps: Array.from({ length: 21 }, () => ({ events: { event: 'A' } })) },
      /steps: a funnel has at most 20 steps/,
    );
    await refused(
      { ...base, window: { value: 0, unit: 'hours' } },
      /window.value: the conversion window must be longer/,
    );
    await refused({ ...base, window: { value: 400, unit: 'days' } }, /window.value: .*at most 366 days/);
    await refused({ ...base, window: { value: 1, unit: 'weeks' } }, /window.unit/);
    for (const between of [
      [0, 2],
      [1, 3],
      [2, 1],
      [1, 1],
    ])
      await refused(
        { ...base, exclusions: [{ events: { event: 'X' }, between }] },
        /exclusions.0.between: .* must be two step numbers 1 ≤ i < j ≤ 2/,
      );
    await refused({ ...base, order: 'random' }, /order/);
    await refused({ ...base, breakdown: { trait: 'email' } }, /breakdown: email is a sensitive trait/);
    const people = await post('/analytics/funnels/people', { ...base, step: 3, status: 'converted' });
    expect(people.status).toBe(400);
    expect(people.body.error.message).toMatch(/step: the funnel has 2 steps/);
    const first = await post('/analytics/funnels/people', { ...base, step: 1, status: 'dropped' });
    expect(first.status).toBe(400);
    expect(first.body.error.message).toMatch(/step: nobody drops at step 1/);
  });
});
