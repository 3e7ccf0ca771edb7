import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, movableClock, until } from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// An A/B test's people are people, not profiles: a visitor tested anonymously and again once signed in
// is one person when the two profiles merge — one assignment (the earliest: their first exposure) under
// the survivor, counted once with the events of both — and an erasure forgets their assignment.
describeOnDatabases('experiment assignments of merged and erased profiles on %s', (mode) => {
  let h: FlowHarness;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock(Date.now() - 5 * DAY);
  const trigger = `Visited ${tag}`;

  beforeAll(async () => {
    h = await flowHarness('experiment-people.test.ts', mode, { clock });
    const { destinationId } = await h.webhook();
    flowId = await h.publish({
      version: 1,
      name: `A/B merge ${tag}`,
      trigger: { type: 'event', event: trigger },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'ab',
          type: 'experiment',
          variants: [
            { name: 'Short', percent: 50 },
            { name: 'Long', percent: 50 },
          ],
          sample: 100,
          goal: { event: { event: `Bought ${tag}` }, withinSeconds: 3600 },
          decide: { deadlineDays: 2, minPerArm: 30 },
        },
        { id: 'a', type: 'send', destination: destinationId, message: { body: 'A' } },
        { id: 'b', type: 'send', destination: destinationId, message: { body: 'B' } },
      ],
      edges: [
        { from: 'ab', to: 'a', on: 'variant:0' },
        { from: 'ab', to: 'b', on: 'variant:1' },
      ],
    });
  });
  afterAll(() => h?.close());

  const assignments = () =>
    h.cairn.sql<{ profileId: string; arm: string; assignedAt: number; counted: boolean }[]>`
      SELECT profile_id::text AS "profileId", arm, (extract(epoch FROM assigned_at) * 1000)::float8 AS "assignedAt",
        counted
      FROM flow_experiment_people WHERE flow_id = ${flowId} ORDER BY assigned_at`;

  it('keeps one assignment per person, the earliest, counts them once, and erases it', async () => {
    const userId = `u-${tag}`;
    const anonymousId = `anon-${tag}`;
    const first = clock.now;
    await h.send({ type: 'track', anonymousId, event: trigger, timestamp: new Date(clock.now).toISOString() });
    const anon = await h.profileOf(anonymousId, 'anonymousId');
    await until('the anonymous visitor assigned', async () => ((await assignments()).length === 1 ? true : undefined));
    clock.advance(MINUTE);
    await h.send({ type: 'identify', userId, traits: { plan: 'pro' } });
    await h.send({ type: 'track', userId, event: trigger, timestamp: new Date(clock.now).toISOString() });
    const known = await h.profileOf(userId);
    const before = await until(
      'both profiles assigned',
      async () => {
        const a = await assignments();
        return a.length === 2 ? a : undefined;
      },
      { tries: 600 },
    );
    expect(before.map((a) => a.profileId)).toEqual([anon, known]);

    // The visitor signs in: one person.
    await h.send({ type: 'identify', userId, anonymousId });
    const survivor = await until('one profile for both', async () => {
      const a = await h.profileOf(anonymousId, 'anonymousId');
      const b = await h.profileOf(userId);
      return a === b ? a : undefined;
    });
    const after = await assignments();
    expect(after).toEqual([{ profileId: survivor, arm: before[0]!.arm, assignedAt: first, counted: false }]);

    // They buy (an event of the survivor's); every window closes; the look counts one person, converted.
    await h.send({ type: 'track', userId, event: `Bought ${tag}`, timestamp: new Date(clock.now).toISOString() });
    // Stored as the survivor's before the windows close (the look reads the person's events then).
    await until('the purchase stored as theirs', async () => {
      const [r] = await h.cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM events WHERE event = ${`Bought ${tag}`} AND profile_id = ${survivor}`;
      return r!.n === 1 ? true : undefined;
    });
    clock.advance(2 * HOUR);
    const looked = await until(
      'a look with the window closed',
      async () => {
        const e = (await h.api(`/flows/${flowId}/experiments`)).body.data?.[0] as Any;
        return e?.pending === 0 && e.lastLookAt && Date.parse(e.lastLookAt) >= clock.now ? e : undefined;
      },
      { tries: 600 },
    );
    expect(looked.arms.map((a: Any) => a.n).reduce((x: number, y: number) => x + y, 0)).toBe(1);
    expect(looked.arms.map((a: Any) => a.conversions).reduce((x: number, y: number) => x + y, 0)).toBe(1);
    expect(looked.arms[Number(before[0]!.arm)]).toMatchObject({ n: 1, conversions: 1 });
    expect((await assignments())[0]!.counted).toBe(true);

    // The erasure forgets the assignment (the counts name nobody and stay).
    expect((await h.api(`/profiles/${survivor}`, { method: 'DELETE' })).status).toBe(200);
    expect(await assignments()).toEqual([]);
  });
});
