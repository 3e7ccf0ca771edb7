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

const HOUR = 3_600_000;

// A flow's numbers (GET /api/flows/:id/stats) after three people took three ways through it: one to the
// message, one out at the branch, one out through the goal (an order while waiting ends the cart flow).
describeOnDatabases('flow stats and goal exits on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock();
  const runOf = async (profileId: string) => (await h.runsOf(flowId, profileId))[0];

  beforeAll(async () => {
    h = await flowHarness('stats.test.ts', mode, { clock });
    const { receiver, destinationId } = await h.webhook();
    hook = receiver;
    flowId = await h.publish({
      version: 1,
      name: `Cart ${tag}`,
      trigger: { type: 'event', event: 'Cart Updated' },
      entry: { reentry: 'once' },
      goal: { event: { event: 'Order Completed' }, withinSeconds: 86_400, exit: true },
      nodes: [
        { id: 'settle', type: 'wait', duration: { hours: 24 } },
        { id: 'big', type: 'branch', cases: [{ rule: { op: 'trait', trait: 'vip', cmp: '=', value: true } }] },
        { id: 'nudge', type: 'send', destination: destinationId, message: { body: 'Your cart is waiting' } },
        { id: 'bye', type: 'exit' },
      ],
      edges: [
        { from: 'settle', to: 'big', on: 'next' },
        { from: 'big', to: 'nudge', on: 'case:0' },
        { from: 'big', to: 'bye', on: 'else' },
      ],
    });
  });
  afterAll(() => h?.close());

  it('counts per node, per edge, per end and per message outcome; an order within the window ends the run', async () => {
    const people = { vip: `vip-${tag}`, plain: `plain-${tag}`, buyer: `buyer-${tag}` };
    const ids: Record<string, string> = {};
    for (const [who, userId] of Object.entries(people)) {
      await h.send({ type: 'identify', userId, traits: { vip: who !== 'plain' } });
      await h.send({ type: 'track', userId, event: 'Cart Updated', properties: { items: 2 } });
      ids[who] = await h.profileOf(userId);
      await until(`${who} waiting`, async () => ((await runOf(ids[who]!))?.node === 'settle' ? true : undefined));
    }
    // The buyer orders an hour later: the goal is reached and the run ends before its wait is over.
    clock.advance(HOUR);
    await h.send({ type: 'track', userId: people.buyer, event: 'Order Completed', properties: { total: 80 } });
    const bought = await until('the buyer out through the goal', async () => {
      const r = await runOf(ids.buyer!);
      return r?.status === 'exited' ? r : undefined;
    });
    expect(bought.steps.map((s: Any) => [s.type, s.outcome])).toEqual(
      expect.arrayContaining([
        ['goal', 'converted'],
        ['end', 'exited'],
      ]),
    );
    clock.advance(24 * HOUR);
    await until('the vip’s message', async () => (hook.accepted.some((r) => r.body?.message) ? true : undefined));
    for (const who of ['vip', 'plain'])
      await until(`${who}’s run ended`, async () =>
        (await runOf(ids[who]!))?.status !== 'waiting' ? true : undefined,
      );
    const stats = await until('the message delivered in the stats', async () => {
      const s = (await h.api(`/flows/${flowId}/stats`)).body;
      return s.sends?.[0]?.status === 'delivered' ? s : undefined;
    });
    const byNode = Object.fromEntries((stats.nodes as Any[]).map((n) => [n.node, n]));

    // An exit node completes the run (it reached an end the flow drew); the goal exits it.
    expect(stats.runs).toEqual({ entered: 3, active: 0, completed: 2, exited: 1, failed: 0, converted: 1 });
    expect(byNode.settle).toMatchObject({
      arrived: 3,
      waiting: 0,
      advanced: [{ outcome: 'next', to: 'big', count: 2 }],
      ended: { completed: 0, exited: 1, failed: 0 },
    });
    expect(byNode.big.advanced).toEqual([
      { outcome: 'case:0', to: 'nudge', count: 1 },
      { outcome: 'else', to: 'bye', count: 1 },
    ]);
    expect(byNode.nudge).toMatchObject({ arrived: 1, ended: { completed: 1, exited: 0, failed: 0 } });
    expect(byNode.bye).toMatchObject({ arrived: 1, ended: { completed: 1, exited: 0, failed: 0 } });
    expect(stats.exits).toEqual([{ status: 'exited', reason: 'goal reached', count: 1 }]);
    expect(stats.sends).toEqual([
      { node: 'nudge', destinationId: expect.any(String), status: 'delivered', reason: null, count: 1 },
    ]);

    // Nobody but the vip got a message; an unknown flow is a 404.
    expect(hook.accepted.filter((r) => r.body?.message).map((r) => r.body.profile.id)).toEqual([ids.vip]);
    expect((await h.api('/flows/flw_nope/stats')).status).toBe(404);
  });
});
