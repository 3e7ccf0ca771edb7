import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

// A person browsing anonymously and signed in on another device is in a cart flow twice; when an identify
// merges the two profiles, the runs follow the events to the survivor: one goes on, the other ends with
// the reason, and the order the survivor places reaches the run that waits for it.
describe.each(['postgres', 'embedded'] as const)('flow runs of merged profiles on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let flowId: string;
  let key: string;
  const tag = randomUUID().slice(0, 8);
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });
  const send = (...events: object[]) => sendEvents(cairn, key, events);
  const runsOf = async (profileId: string) =>
    (await api(`/flows/${flowId}/runs?profile=${profileId}`)).body.data as Any[];

  beforeAll(async () => {
    db = await createTestDatabase(`merge.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    api = adminApi(cairn.url);
    key = cairn.demoSource!.writeKey;
    const flow = await post('/flows', {
      definition: {
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
      },
    });
    expect(flow.status, flow.text).toBe(201);
    flowId = flow.body.id;
    expect((await post(`/flows/${flowId}/publish`, {})).status).toBe(200);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('moves the merged profile’s runs to the survivor, ends the second active one, and routes events to the first', async () => {
    const userId = `u-${tag}`;
    const anonymousId = `anon-${tag}`;
    await send({ type: 'identify', userId, traits: { plan: 'pro' } });
    await send({ type: 'track', userId, event: 'Cart Updated' });
    await send({ type: 'track', anonymousId, event: 'Cart Updated' });
    const profileOf = (q: string) =>
      until(`the profile of ${q}`, async () => (await api(`/profiles?${q}`)).body?.data?.[0]?.id as string | undefined);
    const known = await profileOf(`userId=${userId}`);
    const anon = await profileOf(`anonymousId=${anonymousId}`);
    expect(anon).not.toBe(known);
    for (const p of [known, anon])
      await until('a waiting run', async () => ((await runsOf(p))[0]?.status === 'waiting' ? true : undefined));

    // The anonymous visitor signs in: one person.
    await send({ type: 'identify', userId, anonymousId });
    const survivor = await until('one profile for both', async () => {
      const a = await profileOf(`anonymousId=${anonymousId}`);
      const b = await profileOf(`userId=${userId}`);
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

    await send({ type: 'track', userId, event: 'Order Completed' });
    await until('the run that waited got the order', async () => {
      const r = (await runsOf(survivor)).find((x) => x.id === going.id);
      return r?.status === 'completed' && r.steps.some((s: Any) => s.outcome === 'matched') ? true : undefined;
    });
    // Nobody is left in the flow under the merged-away id.
    const [left] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_runs WHERE profile_id = ${survivor === known ? anon : known}`;
    expect(left!.n).toBe(0);
  });
});
