// Issue 14, item 8, as a new user met it: audiences whose rule holds without any event ("never
// reviewed", "at most 0 times", "spent under 50") missed people created after the audience's full
// computation, and kept people merged with someone who had the event. Through a real server: events
// over HTTP, identity resolution, stage 3 and the stored memberships, checked against `explain`.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  settle,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';

const RULES = {
  never_reviewed: { op: 'not', rule: { op: 'performed', event: 'Review Posted' } },
  no_orders: { op: 'performed', event: 'Order Completed', max: 0 },
  small_spender: { op: 'aggregate', fn: 'sum', event: 'Order Completed', property: 'total', cmp: '<', value: 50 },
} as const;

describe.each(['postgres', 'embedded'] as const)('people who arrive after an audience, on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let writeKey: string;
  const run = randomUUID().slice(0, 8);
  const key = (name: string) => `${name}_${run}`;

  const send = (...events: object[]) => sendEvents(cairn, writeKey, events, { messageIds: false });
  /** Events attached to profiles, and stage 3 done with them. */
  const processed = () => settle(cairn.sql, { queues: ['compute', 'recompute'], timeoutMs: 30_000 });
  const profileOf = (userId: string) =>
    until(`the profile of ${userId}`, async () => (await api(`/profiles?userId=${userId}`)).body.data?.[0]?.id);
  const explain = async (audience: string, profileId: string) => {
    const res = await api(`/audiences/${key(audience)}/explain/${profileId}`);
    expect(res.status, res.text).toBe(200);
    return { member: res.body.member as boolean, matches: res.body.matches as boolean };
  };

  beforeAll(async () => {
    db = await createTestDatabase(`newcomers.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    api = adminApi(cairn.url);
    writeKey = (await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'shop' }) })).body.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('a new sign-up enters every audience its rule admits, whatever shares its batch', async () => {
    const old = `old-${run}`;
    await send({ type: 'track', userId: old, event: 'Signed In' });
    await profileOf(old);
    for (const [name, rule] of Object.entries(RULES)) {
      const res = await api('/audiences', { method: 'POST', body: JSON.stringify({ key: key(name), name, rule }) });
      expect(res.status, res.text).toBe(201);
    }
    await until(
      'the first computations',
      async () => {
        const all = await Promise.all(Object.keys(RULES).map((n) => api(`/audiences/${key(n)}`)));
        return all.every((a) => a.body.computedAt);
      },
      { tries: 600 },
    );

    // new1 alone; new2 in a batch with an order of someone else (the batch reads 'Order Completed').
    const [new1, new2, buyer] = [`new1-${run}`, `new2-${run}`, `buyer-${run}`];
    await send({ type: 'track', userId: new1, event: 'Signed In' });
    await send(
      { type: 'track', userId: new2, event: 'Signed In' },
      { type: 'track', userId: buyer, event: 'Order Completed', properties: { total: 80 } },
    );
    await processed();
    for (const userId of [old, new1, new2]) {
      const id = await profileOf(userId);
      for (const name of Object.keys(RULES))
        expect({ userId, name, ...(await explain(name, id)) }).toEqual({
          userId,
          name,
          member: true,
          matches: true,
        });
    }
    const buyerId = await profileOf(buyer);
    expect(await explain('never_reviewed', buyerId)).toEqual({ member: true, matches: true });
    expect(await explain('no_orders', buyerId)).toEqual({ member: false, matches: false });
    expect(await explain('small_spender', buyerId)).toEqual({ member: false, matches: false });
  });

  it('a merge with someone who reviewed takes the survivor out of "never reviewed"', async () => {
    const [a, anon] = [`a-${run}`, `anon-${run}`];
    await send({ type: 'track', userId: a, event: 'Signed In' });
    await processed();
    const id = await profileOf(a);
    expect(await explain('never_reviewed', id)).toEqual({ member: true, matches: true });

    await send({ type: 'track', anonymousId: anon, event: 'Review Posted' });
    await processed();
    await send({ type: 'identify', anonymousId: anon, userId: a });
    await processed();
    const survivor = await profileOf(a);
    expect(await explain('never_reviewed', survivor)).toEqual({ member: false, matches: false });
    // Nobody keeps the membership: neither the survivor nor the profile merged into it.
    const [open] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM audience_memberships m JOIN profiles p ON p.id = m.profile_id
      WHERE m.audience = ${key('never_reviewed')} AND m.exited_at IS NULL
        AND (p.id = ${survivor} OR p.merged_into = ${survivor})`;
    expect(open!.n).toBe(0);
  });
});
