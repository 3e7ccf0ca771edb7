import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, movableClock } from '../../testing/flows.ts';
import type { Receiver } from '../../testing/index.ts';
import { until } from '../../testing/index.ts';
import { issueCoupon } from './coupons.ts';

// biome-ignore lint/suspicious/noExplicitAny: requests as the receiver got them; checked by the assertions
type Any = any;
const DAY = 86_400_000;

// Coupons and points end to end: 3 codes imported (a duplicate counted), a flow issues one to each of 4
// people who sign up (the 4th takes `empty`), each message carries its code, a replayed issue gets the
// same code; an order naming one code redeems it and its "not redeemed after 3 days" wait takes
// `matched`, the others `timeout`; unredeemed codes expire. Points: an adjustment through the API (once
// per key) and a flow's points node; the balance decides a branch and shows in a template; credits
// expire from the balance.
describeOnDatabases('coupons and points on %s', (mode) => {
  const clock = movableClock();
  let h: FlowHarness;
  let hook: Receiver;
  let hookId: string;
  const messages = (text: string, n: number) =>
    until(`${n} messages with ${text}`, async () => {
      const got = hook.accepted
        .map((r) => (r.body as Any).message?.body as string | undefined)
        .filter((b): b is string => !!b?.includes(text));
      return got.length >= n ? got : undefined;
    });

  beforeAll(async () => {
    h = await flowHarness('coupons.test.ts', mode, { clock });
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
  });
  afterAll(() => h?.close());

  it('imports codes, issues one per run exactly once, redeems by event, times out and expires the rest', async () => {
    const pool = {
      key: 'spring',
      name: 'Spring',
      expiresAfterDays: 10,
      redeemEvent: 'Order Completed',
      codePath: 'properties.coupon',
    };
    expect((await h.post('/coupon-pools', pool)).status).toBe(201);
    expect((await h.post('/coupon-pools', pool)).status).toBe(409);
    const imported = await h.post('/coupon-pools/spring/codes', ['SPRING-A', 'SPRING-B', 'SPRING-A']);
    expect(imported.body).toMatchObject({ imported: 2, duplicate: 1, stats: { available: 2 } });
    const lines = await h.api('/coupon-pools/spring/codes', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'SPRING-B\nSPRING-C\n\n',
    });
    expect(lines.body, lines.text).toMatchObject({ imported: 1, duplicate: 1, stats: { available: 3 } });

    const flowId = await h.publish({
      version: 1,
      name: 'Welcome coupon',
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'give', type: 'issue_coupon', pool: 'spring' },
        {
          id: 'mail',
          type: 'send',
          destination: hookId,
          message: { body: 'code={{ run.coupon }} to={{ profile.id }}' },
        },
        {
          id: 'unused',
          type: 'wait_for_event',
          event: { event: 'Order Completed' },
          match: [{ field: 'properties.coupon', run: 'coupon' }],
          timeout: { days: 3 },
        },
        { id: 'thanks', type: 'send', destination: hookId, message: { body: 'thanks={{ run.coupon }}' } },
        { id: 'remind', type: 'send', destination: hookId, message: { body: 'unused={{ run.coupon }}' } },
        { id: 'sorry', type: 'send', destination: hookId, message: { body: 'none-left to={{ profile.id }}' } },
      ],
      edges: [
        { from: 'give', to: 'mail', on: 'next' },
        { from: 'give', to: 'sorry', on: 'empty' },
        { from: 'mail', to: 'unused', on: 'next' },
        { from: 'unused', to: 'thanks', on: 'matched' },
        { from: 'unused', to: 'remind', on: 'timeout' },
      ],
    });
    // A flow naming the pool keeps it from being deleted; a flow naming an unknown pool is refused.
    expect((await h.api('/coupon-pools/spring', { method: 'DELETE' })).status).toBe(409);
    const unknown = await h.post('/flows', {
      definition: {
        version: 1,
        name: 'x',
        trigger: { type: 'event', event: 'x' },
        entry: { reentry: 'once' },
        nodes: [{ id: 'give', type: 'issue_coupon', pool: 'autumn' }],
        edges: [],
      },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('unknown coupon pool "autumn"');

    const users = ['cp-1', 'cp-2', 'cp-3', 'cp-4'];
    await h.send(...users.map((userId) => ({ type: 'track', userId, event: 'Signed Up' })));
    const profiles = await Promise.all(users.map((u) => h.profileOf(u)));
    const sent = await messages('code=', 3);
    const sorry = await messages('none-left', 1);
    const codeOf = new Map<string, string>();
    for (const m of sent) {
      const [, code, to] = /^code=(\S+) to=(\S+)$/.exec(m)!;
      codeOf.set(to!, code!);
    }
    expect([...codeOf.values()].sort()).toEqual(['SPRING-A', 'SPRING-B', 'SPRING-C']);
    const empty = profiles.find((p) => !codeOf.has(p))!;
    expect(sorry).toEqual([`none-left to=${empty}`]);
    expect((await h.api('/coupon-pools/spring/stats')).body).toEqual({
      available: 0,
      issued: 3,
      redeemed: 0,
      expired: 0,
    });

    // A replayed issue (the same effect key) gets the same code and takes no other.
    const [row] = await h.cairn.sql<{ key: string; code: string; to: string }[]>`
      SELECT issued_key AS key, code, issued_to::text AS to FROM coupons WHERE code = 'SPRING-A'`;
    expect(row!.key).toMatch(/^flow:.+:give:0$/);
    const again = await issueCoupon(
      h.cairn.sql,
      { type: 'issue_coupon', key: row!.key, node: 'give', pool: 'spring' },
      row!.to,
      clock.now,
    );
    expect(again).toMatchObject({ ok: true, output: { code: 'SPRING-A' } });
    const fresh = { type: 'issue_coupon' as const, key: 'flow:other:give:0', node: 'give', pool: 'spring' };
    expect(await issueCoupon(h.cairn.sql, fresh, row!.to, clock.now)).toEqual({ ok: true, output: { code: null } });
    const runs = await h.runsOf(flowId, row!.to);
    expect(runs).toHaveLength(1);

    // The holder of SPRING-B orders with it on day 1: redeemed, their wait matched.
    clock.advance(DAY);
    const redeemer = [...codeOf].find(([, c]) => c === 'SPRING-B')![0];
    const userOf = (p: string) => users[profiles.indexOf(p)]!;
    await h.send({
      type: 'track',
      userId: userOf(redeemer),
      event: 'Order Completed',
      properties: { coupon: 'SPRING-B' },
    });
    expect(await messages('thanks=', 1)).toEqual(['thanks=SPRING-B']);
    await until('SPRING-B redeemed', async () => (await h.api('/coupon-pools/spring/stats')).body.redeemed === 1);
    const points = await h.api(`/profiles/${redeemer}/points`);
    expect(points.body.coupons).toMatchObject([{ pool: 'spring', code: 'SPRING-B', status: 'redeemed' }]);

    // Three days after sign-up the other two are reminded of their unused codes.
    clock.advance(2 * DAY + 60_000);
    const reminded = await messages('unused=', 2);
    expect(reminded.sort()).toEqual(
      [...codeOf.values()]
        .filter((c) => c !== 'SPRING-B')
        .map((c) => `unused=${c}`)
        .sort(),
    );
    const journeys = await Promise.all(profiles.map((p) => h.runsOf(flowId, p)));
    const outcomes = journeys.map((r) =>
      (r[0].steps as Any[]).filter((s) => s.node === 'unused' && s.outcome !== 'waiting').map((s) => s.outcome),
    );
    expect(outcomes.filter((o) => o[0] === 'matched')).toHaveLength(1);
    expect(outcomes.filter((o) => o[0] === 'timeout')).toHaveLength(2);

    // Ten days after issue the two unused codes expire; the redeemed one stays redeemed.
    clock.advance(8 * DAY);
    await until('the codes expired', async () => (await h.api('/coupon-pools/spring/stats')).body.expired === 2);
    expect((await h.api('/coupon-pools/spring/stats')).body).toEqual({
      available: 0,
      issued: 0,
      redeemed: 1,
      expired: 2,
    });
    expect(hook.accepted.filter((r) => (r.body as Any).message?.body?.startsWith('code='))).toHaveLength(3);
  });

  it('adds points by adjustment and by flow; the balance decides a branch, and credits expire', async () => {
    await h.publish({
      version: 1,
      name: 'Loyalty',
      trigger: { type: 'event', event: 'Purchase' },
      entry: { reentry: 'every_time' },
      nodes: [
        { id: 'earn', type: 'points', delta: '{{ event.properties.points }}', reason: 'purchase', expiresInDays: 30 },
        {
          id: 'tier',
          type: 'branch',
          cases: [{ rule: { op: 'computed', trait: 'points_balance', cmp: '>=', value: 150 } }],
        },
        { id: 'gold', type: 'send', destination: hookId, message: { body: 'gold={{ computed.points_balance }}' } },
        { id: 'plain', type: 'send', destination: hookId, message: { body: 'plain={{ computed.points_balance }}' } },
      ],
      edges: [
        { from: 'earn', to: 'tier', on: 'next' },
        { from: 'tier', to: 'gold', on: 'case:0' },
        { from: 'tier', to: 'plain', on: 'else' },
      ],
    });
    await h.send({ type: 'identify', userId: 'pt-1' }, { type: 'identify', userId: 'pt-2' });
    const [a, b] = [await h.profileOf('pt-1'), await h.profileOf('pt-2')];
    const adjust = { delta: 100, reason: 'goodwill', key: 'ticket-7' };
    const first = await h.post(`/profiles/${a}/points`, adjust);
    expect(first.status, first.text).toBe(201);
    expect(first.body.balance).toBe(100);
    const repeat = await h.post(`/profiles/${a}/points`, adjust);
    expect(repeat.status).toBe(200);
    expect(repeat.body.balance).toBe(100);
    const audit = await until('the adjustments audited', async () => {
      const rows = (await h.api('/audit?action=profile.points_adjust')).body.data as Any[];
      return rows.length >= 2 ? rows : undefined;
    });
    expect(audit.map((r) => [r.resourceId, r.status, r.after])).toEqual(
      [200, 201].map((status) => [
        a,
        status,
        { delta: 100, reason: 'goodwill', expiresInDays: null, key: 'ticket-7', balance: 100 },
      ]),
    );

    await h.send(
      { type: 'track', userId: 'pt-1', event: 'Purchase', properties: { points: 60 } },
      { type: 'track', userId: 'pt-2', event: 'Purchase', properties: { points: 60 } },
    );
    expect(await messages('gold=', 1)).toEqual(['gold=160']);
    expect(await messages('plain=', 1)).toEqual(['plain=60']);
    const ledger = (await h.api(`/profiles/${a}/points`)).body;
    expect(ledger.balance).toBe(160);
    expect(ledger.ledger.map((e: Any) => [e.delta, e.reason, e.source.split(':')[0]])).toEqual([
      [100, 'goodwill', 'api'],
      [60, 'purchase', 'flow'],
    ]);
    expect(ledger.expiring).toHaveLength(1);

    // 30 days on, the flow's credits have expired; the adjustment stays. A purchase then is plain again.
    clock.advance(31 * DAY);
    expect((await h.api(`/profiles/${a}/points`)).body.balance).toBe(100);
    expect((await h.api(`/profiles/${b}/points`)).body.balance).toBe(0);
    await h.send({ type: 'track', userId: 'pt-2', event: 'Purchase', properties: { points: 10 } });
    expect(await messages('plain=10', 1)).toEqual(['plain=10']);

    // An erasure deletes the person's ledger.
    expect((await h.api(`/profiles/${a}`, { method: 'DELETE' })).status).toBe(200);
    const [left] = await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM points_ledger WHERE profile_id = ${a}::uuid`;
    expect(left!.n).toBe(0);
  });
});
