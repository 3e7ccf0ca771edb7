import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, until } from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

// A person browsing anonymously and signed in on another device is in a cart flow twice; when an identify
// merges the two profiles, the runs follow the events to the survivor: one goes on, the other ends with
// the reason, and the order the survivor places reaches the run that waits for it.
describeOnDatabases('flow runs of merged profiles on %s', (mode) => {
  let h: FlowHarness;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);
  const runsOf = (profileId: string) => h.runsOf(flowId, profileId);

  beforeAll(async () => {
    h = await flowHarness('merge.test.ts', mode);
    flowId = await h.publish({
      version: 1,
      name: `Cart ${tag}`,
      trigger: { type: 'event', event: 'Cart Updated' },
      entry: { reentry: 'every_time' },
      nodes: [
        {
          id: 'order',
          type: 'wait_for_event',
          event: { event: 'Order Completed' },
          timeout: { days: 1 },
        },
        { id: 'bought', type: 'exit' },
        { id: 'gave_up', type: 'exit' },
      ],
      edges: [
        { from: 'order', to: 'bought', on: 'matched' },
        { from: 'order', to: 'gave_up', on: 'timeout' },
      ],
    });
  });
  afterAll(() => h?.close());

  it('moves the merged profile’s runs to the survivor, ends the second active one, and routes events to the first', async () => {
    const userId = `u-${tag}`;
    const anonymousId = `anon-${tag}`;
    await h.send({ type: 'identify', userId, traits: { plan: 'pro' } });
    await h.send({ type: 'track', userId, event: 'Cart Updated' });
    await h.send({ type: 'track', anonymousId, event: 'Cart Updated' });
    const known = await h.profileOf(userId);
    const anon = await h.profileOf(anonymousId, 'anonymousId');
    expect(anon).not.toBe(known);
    for (const p of [known, anon])
      await until('a waiting run', async () => ((await runsOf(p))[0]?.status === 'waiting' ? true : undefined));

    // The anonymous visitor signs in: one person.
    await h.send({ type: 'identify', userId, anonymousId });
    const survivor = await until('one profile for both', async () => {
      const a = await h.profileOf(anonymousId, 'anonymousId');
      const b = await h.profileOf(userId);
      return a === b ? a : undefined;
    });
    const runs = await until('both runs with the survivor', async () => {
      const r = await runsOf(survivor);
      return r.length === 2 ? r : undefined;
    });
    const ended = runs.filter((r) => r.status === 'exited');
    expect(ended).toHaveLength(1);
    expect(ended[0].steps.at(-1)).toMatchObject({
      type: 'end',
      outcome: 'exited',
      reason: 'merged into a profile already in the flow',
    });
    const going = runs.find((r) => r.status === 'waiting');
    expect(going).toBeDefined();

    await h.send({ type: 'track', userId, event: 'Order Completed' });
    await until('the run that waited got the order', async () => {
      const r = (await runsOf(survivor)).find((x) => x.id === going.id);
      return r?.status === 'completed' && r.steps.some((s: Any) => s.outcome === 'matched') ? true : undefined;
    });
    // Nobody is left in the flow under the merged-away id.
    const [left] = await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_runs WHERE profile_id = ${survivor === known ? anon : known}`;
    expect(left!.n).toBe(0);
  });
});
