import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const PEOPLE = 200;

// Test on a sample, then send the winner, through the server: people enter by their events on a movable
// clock, half are tested (A or B, their message at once), half are held at the node. The goal events
// come in; once every window has closed the timer's look decides, and the held people get the winner's
// message, each once. With no difference, nothing is decided until the deadline: the default, inconclusive.
describeOnDatabases('experiment node: test, decide, send the winner on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let destinationId: string;
  const tag = randomUUID().slice(0, 8);
  // In the past, so the events' timestamps (from this clock) are never in the future of the real one.
  const clock = movableClock(Date.now() - 5 * DAY);

  beforeAll(async () => {
    h = await flowHarness('experiments.test.ts', mode, { clock });
    ({ receiver: hook, destinationId } = await h.webhook());
  });
  afterAll(() => h?.close());

  const publish = (trigger: string, decide: object) =>
    h.publish({
      version: 1,
      name: `A/B ${trigger} ${tag}`,
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
          sample: 50,
          goal: { event: { event: `Purchased ${trigger}` }, withinSeconds: 3600 },
          decide,
        },
        { id: 'a', type: 'send', destination: destinationId, message: { body: 'A {{ event.userId }}' } },
        { id: 'b', type: 'send', destination: destinationId, message: { body: 'B {{ event.userId }}' } },
      ],
      edges: [
        { from: 'ab', to: 'a', on: 'variant:0' },
        { from: 'ab', to: 'b', on: 'variant:1' },
      ],
    });

  /** userId → the message bodies it got, for this trigger's people. */
  const messages = (prefix: string) => {
    const got = new Map<string, string[]>();
    for (const r of hook.accepted) {
      const body = r.body?.message?.body as string | undefined;
      const [arm, userId] = body?.split(' ') ?? [];
      if (!userId?.startsWith(prefix)) continue;
      got.set(userId, [...(got.get(userId) ?? []), arm!]);
    }
    return got;
  };
  const count = async (query: Promise<{ n: number }[]>) => (await query)[0]!.n;
  const experiment = async (flowId: string) => {
    const res = await h.api(`/flows/${flowId}/experiments`);
    expect(res.status).toBe(200);
    return res.body.data[0] as Any;
  };

  /** Enters PEOPLE people; returns the tested ones by arm once each got their arm's message. */
  async function enter(flowId: string, trigger: string, prefix: string) {
    const at = new Date(clock.now).toISOString();
    for (let i = 0; i < PEOPLE; i += 100)
      await h.send(
        ...Array.from({ length: 100 }, (_, j) => ({
          type: 'track',
          userId: `${prefix}${i + j}`,
          event: trigger,
          timestamp: at,
        })),
      );
    const sql = h.cairn.sql;
    await until(
      'everyone entered',
      async () => (await count(sql`SELECT count(*)::int AS n FROM flow_runs WHERE flow_id = ${flowId}`)) === PEOPLE,
      { tries: 600 },
    );
    const tested = await count(
      sql`SELECT count(*)::int AS n FROM flow_experiment_people WHERE flow_id = ${flowId} AND node = 'ab'`,
    );
    const got = await until('the tested people’s messages', async () => {
      const m = messages(prefix);
      return m.size === tested ? m : undefined;
    });
    const arms = { A: [] as string[], B: [] as string[] };
    for (const [userId, bodies] of got) arms[bodies[0] as 'A' | 'B'].push(userId);
    const held = Array.from({ length: PEOPLE }, (_, i) => `${prefix}${i}`).filter((u) => !got.has(u));
    return { arms, held, tested };
  }

  /** Sends a goal event for these people, a minute after they entered (in their window). */
  async function purchase(trigger: string, userIds: readonly string[]) {
    const at = new Date(clock.now + MINUTE).toISOString();
    if (userIds.length)
      await h.send(
        ...userIds.map((userId) => ({ type: 'track', userId, event: `Purchased ${trigger}`, timestamp: at })),
      );
    await until('the goal events stored', async () => {
      const n = await count(
        h.cairn
          .sql`SELECT count(*)::int AS n FROM events WHERE event = ${`Purchased ${trigger}`} AND profile_id IS NOT NULL`,
      );
      return n === userIds.length;
    });
  }

  it('decides for the better variant after the windows close; the held people get it once each', async () => {
    const trigger = `Signed Up ${tag}`;
    const flowId = await publish(trigger, { deadlineDays: 2, minPerArm: 30, tuning: 100 });
    const { arms, held, tested } = await enter(flowId, trigger, 'u1-');
    expect(arms.A.length).toBeGreaterThanOrEqual(30);
    expect(arms.B.length).toBeGreaterThanOrEqual(30);
    expect(held.length).toBe(PEOPLE - tested);

    // B converts 80 %, A 10 %.
    const buyers = [...arms.A.filter((_, i) => i % 10 === 0), ...arms.B.filter((_, i) => i % 5 !== 0)];
    await purchase(trigger, buyers);
    // Windows still open: nothing counted, nothing decided.
    clock.advance(10 * MINUTE);
    const early = await until('a look with the windows open', async () => {
      const e = await experiment(flowId);
      return e?.lastLookAt && Date.parse(e.lastLookAt) >= clock.now ? e : undefined;
    });
    expect(early.status.decided).toBe(false);
    expect(early.arms.map((a: Any) => a.n)).toEqual([0, 0]);
    expect(early.pending).toBe(tested);
    expect(messages('u1-').size).toBe(tested);

    // Every window closed: the next look counts everyone and decides for B.
    clock.advance(HOUR);
    const decided = await until('the decision', async () => {
      const e = await experiment(flowId);
      return e?.status.decided ? e : undefined;
    });
    expect(decided.status).toMatchObject({ decided: true, winner: 1, inconclusive: false });
    expect(decided.arms.map((a: Any) => [a.n, a.conversions])).toEqual([
      [arms.A.length, arms.A.filter((_, i) => i % 10 === 0).length],
      [arms.B.length, arms.B.filter((_, i) => i % 5 !== 0).length],
    ]);
    expect(decided.pending).toBe(0);
    expect(decided.srm.mismatch).toBe(false);
    const [ab] = decided.comparisons;
    expect(ab).toMatchObject({ a: 0, b: 1 });
    expect(ab.test.significant).toBe(true);
    expect(ab.test.p).toBeLessThan(0.05);
    expect(ab.lift.estimate).toBeGreaterThan(3);
    expect(ab.lift.lower).toBeGreaterThan(0);
    expect(decided.arms[1].rate.lower).toBeGreaterThan(decided.arms[0].rate.upper);
    expect(decided.minimumDetectableEffect.perGroup).toBe(Math.min(arms.A.length, arms.B.length));

    // The held people follow B at once (not at the deadline), each exactly once; nobody else gets more.
    const got = await until('everyone’s message', async () => {
      const m = messages('u1-');
      return m.size === PEOPLE ? m : undefined;
    });
    for (const u of held) expect(got.get(u)).toEqual(['B']);
    for (const u of arms.A) expect(got.get(u)).toEqual(['A']);
    for (const u of arms.B) expect(got.get(u)).toEqual(['B']);
    await until('the held runs ended', async () => {
      const n = await count(
        h.cairn.sql`SELECT count(*)::int AS n FROM flow_runs WHERE flow_id = ${flowId} AND status = 'waiting'`,
      );
      return n === 0;
    });

    // The first decision stands: it is read as stored, not recomputed at a later time.
    const first = decided.status.at;
    clock.advance(HOUR);
    expect((await experiment(flowId)).status.at).toBe(first);
    expect(messages('u1-').size).toBe(PEOPLE);
  });

  it('with no difference, decides nothing until the deadline, then sends the default, inconclusive', async () => {
    const trigger = `Joined ${tag}`;
    const flowId = await publish(trigger, { deadlineDays: 1, minPerArm: 30, tuning: 100, default: 0 });
    const { arms, held, tested } = await enter(flowId, trigger, 'u2-');
    const start = clock.now;
    // Both arms convert 25 %.
    await purchase(
      trigger,
      [...arms.A, ...arms.B].filter((_, i) => i % 4 === 0),
    );
    clock.advance(2 * HOUR);
    const looked = await until('a look with every window closed', async () => {
      const e = await experiment(flowId);
      return e?.pending === 0 && Date.parse(e.lastLookAt) >= clock.now ? e : undefined;
    });
    expect(looked.status).toEqual({ decided: false, deadline: new Date(start + DAY).toISOString() });
    expect(looked.arms.map((a: Any) => a.n)).toEqual([arms.A.length, arms.B.length]);
    expect(looked.comparisons[0].test.significant).toBe(false);
    expect(messages('u2-').size).toBe(tested);

    // The deadline: the default variant (A), marked inconclusive; the held people get A once each.
    clock.now = start + DAY + MINUTE;
    const decided = await until('the deadline’s decision', async () => {
      const e = await experiment(flowId);
      return e?.status.decided ? e : undefined;
    });
    expect(decided.status).toMatchObject({ decided: true, winner: 0, inconclusive: true });
    expect(decided.status.reason).toMatch(/deadline reached/);
    const got = await until('everyone’s message', async () => {
      const m = messages('u2-');
      return m.size === PEOPLE ? m : undefined;
    });
    for (const u of held) expect(got.get(u)).toEqual(['A']);
    for (const u of arms.B) expect(got.get(u)).toEqual(['B']);
  });
});
