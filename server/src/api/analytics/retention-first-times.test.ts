import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type GeneratedEvent,
  generateAnalyticsEvents,
  newMessageId,
  sendGenerated,
} from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { CASES, checkRetention } from './retention.oracle.ts';

// First-time retention reads its cohorts from analytics_first_times (migration 0041), kept by the pipeline.
// Two devices with different first times go through a merge, its undo, a late event earlier than a first
// time, and an erasure; after each step every retention case equals the oracle over the events as the
// people now stand, and the table equals a recount from the events.

type Body = GeneratedEvent['body'];
const at = (iso: string) => ({ timestamp: iso, messageId: newMessageId() });
// Device A first views on 04-01 (Berlin week of 03-30), device B on 03-25 (week of 03-23); B signs in.
const A_VIEW: Body = { ...at('2026-04-01T10:00:00Z'), type: 'track', event: 'Product Viewed', anonymousId: 'ft-a' };
const A_ORDER: Body = { ...at('2026-04-08T10:00:00Z'), type: 'track', event: 'Order Completed', anonymousId: 'ft-a' };
const B_VIEW: Body = { ...at('2026-03-25T10:00:00Z'), type: 'track', event: 'Product Viewed', anonymousId: 'ft-b' };
const B_SIGN_IN: Body = { ...at('2026-03-25T10:05:00Z'), type: 'identify', anonymousId: 'ft-b', userId: 'ft-user' };
const B_ORDER: Body = {
  ...at('2026-04-15T10:00:00Z'),
  type: 'track',
  event: 'Order Completed',
  anonymousId: 'ft-b',
  userId: 'ft-user',
};
// Mid-history, A signs in as the same user: the two devices merge into one person first seen on 03-25.
const A_SIGN_IN: Body = { ...at('2026-04-20T10:00:00Z'), type: 'identify', anonymousId: 'ft-a', userId: 'ft-user' };
// Late: an anonymous view on A, earlier than its first view (a week earlier: another cohort).
const A_LATE: Body = { ...at('2026-03-18T09:00:00Z'), type: 'track', event: 'Product Viewed', anonymousId: 'ft-a' };

const as = (person: string, ...bodies: Body[]): GeneratedEvent[] => bodies.map((body) => ({ person, body }));

describeOnDatabases('first-time retention from analytics_first_times on %s', (mode) => {
  let h: FlowHarness;
  const generated = generateAnalyticsEvents({ seed: 41, people: 150, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('retention-first-times.test.ts', mode);
    await sendGenerated(h.cairn, generated);
  }, 600_000);
  afterAll(() => h?.close());

  const send = async (...bodies: Body[]) => {
    for (const b of bodies) await h.send(b);
    await settle(h.cairn.sql, { queues: ['measure'] });
  };
  // The table equals a recount of every profile's attached events (nothing was dropped here).
  const tableIsExact = async () => {
    const diff = await h.cairn.sql<{ n: number }[]>`
      WITH truth AS (
        SELECT profile_id, coalesce(type, '') AS type, coalesce(ev, '') AS event, min(timestamp) AS first_at
        FROM (SELECT profile_id, type, coalesce(event, '') AS ev, timestamp FROM events WHERE profile_id IS NOT NULL) e
        GROUP BY GROUPING SETS ((profile_id, type, ev), (profile_id))
      )
      SELECT count(*)::int AS n FROM (
        (SELECT * FROM truth EXCEPT ALL SELECT profile_id, type, event, first_at FROM analytics_first_times)
        UNION ALL
        (SELECT profile_id, type, event, first_at FROM analytics_first_times EXCEPT ALL SELECT * FROM truth)
      ) d`;
    expect(diff[0]!.n).toBe(0);
  };
  const check = async (events: GeneratedEvent[]) => {
    await tableIsExact();
    await checkRetention({ post: (path, body) => h.post(path, body), events: [...generated, ...events] });
  };
  const firstViews = async () => {
    const r = await h.post('/analytics/retention', { ...CASES[0]!.body, periods: 1 });
    expect(r.status, r.text).toBe(200);
    return r;
  };

  it('says which source answered: the first times, or events when the start filter has conditions', async () => {
    for (const c of CASES) {
      const r = await h.post('/analytics/retention', c.body);
      expect(r.status, r.text).toBe(200);
      const cohorts = c.body.mode === 'first_time' && !('where' in c.body.start) ? 'first_times' : 'events';
      expect(r.body.meta.sources, c.name).toEqual([cohorts, 'events']);
    }
    expect(CASES.some((c) => c.body.mode === 'first_time' && 'where' in c.body.start)).toBe(true);
  });

  it('equals the oracle through a merge, its undo, a late earlier event and an erasure', async () => {
    // Two people: A first viewed on 04-01, B on 03-25.
    await send(A_VIEW, A_ORDER, B_VIEW, B_SIGN_IN, B_ORDER);
    await check([...as('a', A_VIEW, A_ORDER), ...as('b', B_VIEW, B_SIGN_IN, B_ORDER)]);
    const apart = (await firstViews()).body.cohorts.map((c: { size: number }) => c.size);

    // The merge: one person, in the cohort of B's first view only.
    await send(A_SIGN_IN);
    await check(as('ab', A_VIEW, A_ORDER, B_VIEW, B_SIGN_IN, B_ORDER, A_SIGN_IN));
    const merged = (await firstViews()).body.cohorts.map((c: { size: number }) => c.size);
    expect(merged.reduce((a: number, b: number) => a + b, 0)).toBe(
      apart.reduce((a: number, b: number) => a + b, 0) - 1,
    );

    // The undo: two people again (A's sign-in carries the user id, which decides: it stays with B's profile).
    const survivor = await h.profileOf('ft-user');
    const [merge] = await h.cairn.sql<{ id: string }[]>`
      SELECT id::text FROM merges WHERE survivor_id = ${survivor} AND undone_at IS NULL`;
    const undone = await h.post(`/profiles/${survivor}/unmerge`, { mergeId: merge!.id });
    expect(undone.status, undone.text).toBe(200);
    await settle(h.cairn.sql, { queues: ['measure'] });
    const split = [...as('a', A_VIEW, A_ORDER), ...as('b', B_VIEW, B_SIGN_IN, B_ORDER, A_SIGN_IN)];
    await check(split);
    expect((await firstViews()).body.cohorts.map((c: { size: number }) => c.size)).toEqual(apart);

    // A late view on A, a week before its first one: A's first time (and cohort) moves earlier.
    await send(A_LATE);
    await check([...split, ...as('a', A_LATE)]);
    const [row] = await h.cairn.sql<{ first_at: Date }[]>`
      SELECT f.first_at FROM analytics_first_times f
      JOIN identities i ON i.profile_id = f.profile_id AND i.key = 'anonymousId:ft-a'
      WHERE f.type = 'track' AND f.event = 'Product Viewed'`;
    expect(row?.first_at.toISOString()).toBe(A_LATE.timestamp.replace('Z', '.000Z'));

    // Erasing B's person: their rows go with their events.
    const b = await h.profileOf('ft-user');
    expect((await h.api(`/profiles/${b}`, { method: 'DELETE' })).status).toBe(200);
    await settle(h.cairn.sql, { queues: ['measure'] });
    await check(as('a', A_VIEW, A_ORDER, A_LATE));
    const [{ n }] = (await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM analytics_first_times WHERE profile_id = ${b}`) as unknown as [{ n: number }];
    expect(n).toBe(0);
  }, 300_000);
});
