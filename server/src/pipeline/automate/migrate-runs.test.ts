import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  approveAndPublish,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  sendEvents,
  startReceiver,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers are checked by the assertions
type Any = any;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SLOW = 20;

// Issue 18, "Versions": 1,000 people waiting on v1 (entered by their sign-up events); v2 published with a
// node map (v1's 3-day wait → v2's 1-day wait): each person is re-planned from when they began waiting,
// moved back (rollback) and forward again, and continues on v2's path exactly once — every message of
// v2's path after the wait, none of v1's, no idempotency key twice, nobody lost. People at a node the map
// leaves out stay on v1 and finish there.
describeOnDatabases('moving waiting runs between versions on %s', (mode) => {
  // The issue's 1,000 on Postgres (two batches of 500); fewer on the embedded database, which is slower per run.
  const PEOPLE = mode === 'postgres' ? 1000 : 200;

  let h: FlowHarness;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let hook: Receiver;
  let flowId: string;
  let hookId: string;
  const tag = randomUUID().slice(0, 8);
  const T0 = Math.floor(Date.now() / 1000) * 1000;
  const clock = movableClock(T0);
  const post = (path: string, body: unknown, method = 'POST') => api(path, { method, body: JSON.stringify(body) });
  const migrate = async (body: object) => {
    const res = await post(`/flows/${flowId}/migrate`, body);
    expect(res.status, res.text).toBe(200);
    return res.body;
  };
  // Every active run of the flow: version, node, due (ms), iteration.
  const runs = () =>
    cairn.sql<{ version: number; node: string; status: string; due: number | null; iteration: number }[]>`
      SELECT version, node, status, (extract(epoch FROM due) * 1000)::float8 AS due, iteration
      FROM flow_runs WHERE flow_id = ${flowId}`;
  const tally = async () => {
    const out: Record<string, number> = {};
    for (const r of await runs()) {
      const k = `v${r.version} ${r.node} ${r.status}${r.due === null ? '' : ` +${(r.due - T0) / HOUR}h`}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };
  const messages = () => hook.accepted.filter((r) => r.body?.message);
  // Publishes the working copy: submitted by the test admin, approved by a second one.
  const publish = async () => {
    const res = await approveAndPublish(cairn.url, flowId);
    expect(res.status, res.text).toBe(200);
  };

  const send = (id: string, body: string) => ({ id, type: 'send', destination: hookId, message: { body } });
  const v1 = () => ({
    version: 1,
    name: `Welcome ${tag}`,
    trigger: { type: 'event', event: 'Signed Up' },
    entry: { reentry: 'once' },
    nodes: [
      send('hello', 'v1 hello'),
      { id: 'route', type: 'branch', cases: [{ data: [{ field: 'event.properties.slow', cmp: '=', value: true }] }] },
      { id: 'wait3', type: 'wait', duration: { days: 3 } },
      { id: 'park', type: 'wait', duration: { days: 10 } },
      send('bye', 'v1 bye'),
    ],
    edges: [
      { from: 'hello', to: 'route', on: 'next' },
      { from: 'route', to: 'park', on: 'case:0' },
      { from: 'route', to: 'wait3', on: 'else' },
      { from: 'wait3', to: 'bye', on: 'next' },
      { from: 'park', to: 'bye', on: 'next' },
    ],
  });
  const v2 = () => ({
    ...v1(),
    nodes: [
      send('hello', 'v1 hello'),
      v1().nodes[1],
      { id: 'wait1', type: 'wait', duration: { days: 1 } },
      v1().nodes[3],
      send('news', 'v2 news'),
      send('bye', 'v2 bye'),
    ],
    edges: [
      { from: 'hello', to: 'route', on: 'next' },
      { from: 'route', to: 'park', on: 'case:0' },
      { from: 'route', to: 'wait1', on: 'else' },
      { from: 'wait1', to: 'news', on: 'next' },
      { from: 'news', to: 'bye', on: 'next' },
      { from: 'park', to: 'bye', on: 'next' },
    ],
  });

  beforeAll(async () => {
    h = await flowHarness('migrate-runs.test.ts', mode, { clock });
    ({ cairn, api } = h);
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    flowId = await h.publish(v1());
  });
  afterAll(() => h?.close());

  it(`moves ${PEOPLE} waiting people to v2 by a node map, back, and forward again; each continues on v2 once`, async () => {
    // The people sign up (and 20 who are routed to the unmapped wait): real runs, entered by their events.
    const users = Array.from({ length: PEOPLE + SLOW }, (_, i) => `u${i}-${tag}`);
    await sendEvents(
      cairn,
      cairn.demoSource!.writeKey,
      users.map((userId, i) => ({
        type: 'track',
        userId,
        event: 'Signed Up',
        properties: { slow: i >= PEOPLE },
      })),
    );
    await until(
      'everyone waiting on v1',
      async () => {
        const t = await tally();
        return t[`v1 wait3 waiting +${3 * 24}h`] === PEOPLE && t[`v1 park waiting +${10 * 24}h`] === SLOW
          ? t
          : undefined;
      },
      { tries: 1200 },
    );
    expect(await tally()).toEqual({ 'v1 wait3 waiting +72h': PEOPLE, 'v1 park waiting +240h': SLOW });

    // v2: the 3-day wait becomes 1 day, and a message is added after it.
    expect((await post(`/flows/${flowId}`, { definition: v2() }, 'PATCH')).status).toBe(200);
    await publish();
    const history = (await api(`/flows/${flowId}/versions`)).body.data;
    expect(history.map((v: Any) => [v.version, v.active])).toEqual([
      [2, { waiting: 0, awaitingEffect: 0 }],
      [1, { waiting: PEOPLE + SLOW, awaitingEffect: 0 }],
    ]);
    expect(history[0].publishedBy).toEqual(expect.any(String));
    expect((await api(`/flows/${flowId}/versions/1`)).body.definition.nodes[2]).toEqual(v1().nodes[2]);
    const diff = (await api(`/flows/${flowId}/versions/1/diff/2`)).body;
    expect(diff.nodes.added.map((n: Any) => n.id)).toEqual(['wait1', 'news']);
    expect(diff.nodes.removed.map((n: Any) => n.id)).toEqual(['wait3']);
    expect(diff.nodes.changed).toEqual([
      { id: 'bye', type: 'send', changes: [{ path: 'message.body', before: 'v1 bye', after: 'v2 bye' }] },
    ]);
    expect(diff.settings).toEqual([]);

    // Refused: a map naming a node v2 does not have; a version that does not exist.
    const bad = await post(`/flows/${flowId}/migrate`, { from: 1, to: 2, map: { wait3: 'wait3' } });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.body.error.message).toContain('version 2 has no node wait3');
    expect((await post(`/flows/${flowId}/migrate`, { from: 1, to: 7, map: {} })).status).toBe(404);

    // The preview: who would move where, who stays and why; nothing moves. An operator may preview, not move.
    clock.now = T0 + 2 * HOUR;
    const forward = { from: 1, to: 2, map: { wait3: 'wait1' }, reason: 'shorter onboarding' };
    const key = await post('/keys', { name: 'operator', role: 'operator' });
    expect(key.status, key.text).toBe(201);
    const operator = adminApi(cairn.url, key.body.key);
    const asOperator = (body: object) =>
      operator(`/flows/${flowId}/migrate`, { method: 'POST', body: JSON.stringify(body) });
    expect((await asOperator({ ...forward, dryRun: true })).status).toBe(200);
    const refused = await asOperator(forward);
    expect(refused.status, refused.text).toBe(403);
    expect(refused.body.error.message).toContain('flows:approve');
    const dry = await migrate({ ...forward, dryRun: true });
    expect(dry).toMatchObject({
      dryRun: true,
      moved: 0,
      moves: [{ from: 'wait3', to: 'wait1', toType: 'wait', runs: PEOPLE, atOnce: false }],
      stays: [{ node: 'park', reason: 'unmapped', runs: SLOW }],
    });
    expect(await tally()).toEqual({ 'v1 wait3 waiting +72h': PEOPLE, 'v1 park waiting +240h': SLOW });

    // Moved: re-planned from when they began waiting (T0): due T0 + 1 day, not two hours from now + 1 day.
    const done = await migrate(forward);
    expect(done).toMatchObject({
      dryRun: false,
      moved: PEOPLE,
      movedOnMeanwhile: 0,
      moves: dry.moves,
      stays: dry.stays,
    });
    expect(await tally()).toEqual({ 'v2 wait1 waiting +24h': PEOPLE, 'v1 park waiting +240h': SLOW });
    // Repeated (a retry): nothing left to move.
    expect((await migrate(forward)).moved).toBe(0);

    // Rollback, the same call reversed: back on v1's 3-day wait, due from T0 again.
    clock.now = T0 + 3 * HOUR;
    const back = { from: 2, to: 1, map: { wait1: 'wait3' }, reason: 'rollback' };
    expect((await migrate({ ...back, dryRun: true })).moves).toEqual([
      { from: 'wait1', to: 'wait3', toType: 'wait', runs: PEOPLE, atOnce: false },
    ]);
    expect((await migrate(back)).moved).toBe(PEOPLE);
    expect(await tally()).toEqual({ 'v1 wait3 waiting +72h': PEOPLE, 'v1 park waiting +240h': SLOW });

    // And forward again.
    clock.now = T0 + 4 * HOUR;
    expect((await migrate(forward)).moved).toBe(PEOPLE);
    expect(await tally()).toEqual({ 'v2 wait1 waiting +24h': PEOPLE, 'v1 park waiting +240h': SLOW });

    // One person's journey names each move: versions, nodes, who, why.
    const someone = await until(
      'a profile',
      async () => (await api(`/profiles?userId=${users[0]}`)).body?.data?.[0]?.id,
    );
    const [run] = (await api(`/flows/${flowId}/runs?profile=${someone}`)).body.data;
    const moves = run.steps.filter((s: Any) => s.type === 'migrated');
    expect(moves.map((s: Any) => [s.values.from.version, s.values.from.node, s.values.to.version, s.to])).toEqual([
      [1, 'wait3', 2, 'wait1'],
      [2, 'wait1', 1, 'wait3'],
      [1, 'wait3', 2, 'wait1'],
    ]);
    expect(moves[0].values).toMatchObject({ by: expect.stringContaining(':'), why: 'shorter onboarding', since: T0 });

    // A day after they began waiting, each of them continues on v2's path: news, then bye (v2's).
    clock.now = T0 + DAY + 1000;
    await until('v2’s messages for everyone', async () => (messages().length >= 3 * PEOPLE + SLOW ? true : undefined), {
      tries: 2400,
    });
    await until('every v2 run completed', async () => {
      const t = await tally();
      return t['v2 bye completed'] === PEOPLE ? t : undefined;
    });
    // The 20 people the map left out stay on v1 and finish there, with v1's message.
    clock.now = T0 + 10 * DAY + 1000;
    await until('the unmapped people done on v1', async () => {
      const t = await tally();
      return t['v1 bye completed'] === SLOW ? t : undefined;
    });
    expect(await tally()).toEqual({ 'v2 bye completed': PEOPLE, 'v1 bye completed': SLOW });
    await until('v1’s last messages', async () => (messages().length >= 3 * PEOPLE + 2 * SLOW ? true : undefined));

    const got = messages();
    const keys = got.map((r) => r.headers['idempotency-key']);
    expect(new Set(keys).size).toBe(keys.length);
    const byPerson = new Map<string, string[]>();
    for (const r of got)
      byPerson.set(r.body.profile.id, [...(byPerson.get(r.body.profile.id) ?? []), r.body.message.body]);
    const paths: Record<string, number> = {};
    for (const bodies of byPerson.values()) {
      const k = bodies.join(' > ');
      paths[k] = (paths[k] ?? 0) + 1;
    }
    expect(paths).toEqual({ 'v1 hello > v2 news > v2 bye': PEOPLE, 'v1 hello > v1 bye': SLOW });

    // Every move is in the audit log with who and why.
    const audit = (await api('/audit?action=flow.migrate&limit=100')).body.data as Any[];
    // The operator's refused move is there too (403), with nothing moved.
    expect(audit.filter((a) => a.status === 403)).toHaveLength(1);
    expect(
      audit.filter((a) => a.status === 200 && !a.after.dryRun).map((a) => [a.after.reason, a.after.moved]),
    ).toEqual(
      expect.arrayContaining([
        ['shorter onboarding', PEOPLE],
        ['rollback', PEOPLE],
      ]),
    );
  });
  it('leaves runs awaiting a call where they are; onto a node that does not wait, runs go on at once', async () => {
    const api2 = await startReceiver();
    try {
      const caller = {
        id: 'call',
        type: 'webhook',
        url: api2.url,
        method: 'POST',
        body: '{"profile":"{{ profile.id }}"}',
      };
      const b1 = {
        version: 1,
        name: `Orders ${tag}`,
        trigger: { type: 'event', event: 'Ordered' },
        entry: { reentry: 'once' },
        nodes: [caller, { id: 'wait2', type: 'wait', duration: { days: 2 } }, send('done', 'B v1 done')],
        edges: [
          { from: 'call', to: 'wait2', on: 'next' },
          { from: 'wait2', to: 'done', on: 'next' },
        ],
      };
      const created = await post('/flows', { definition: b1 });
      expect(created.status, created.text).toBe(201);
      const saved = flowId;
      flowId = created.body.id;
      try {
        await publish();
        const order = (userId: string) =>
          sendEvents(cairn, cairn.demoSource!.writeKey, [{ type: 'track', userId, event: 'Ordered' }]);
        for (const who of ['b1', 'b2', 'b3']) await order(`${who}-${tag}`);
        await until('three waiting after their call', async () =>
          (await tally())[`v1 wait2 waiting +${(clock.now + 2 * DAY - T0) / HOUR}h`] === 3 ? true : undefined,
        );
        // The fourth person's call fails for now (503: retried): the run awaits its result.
        api2.answer({ status: 503 });
        await order(`b4-${tag}`);
        await until('the fourth awaiting its call', async () =>
          (await tally())['v1 call awaiting_effect'] === 1 ? true : undefined,
        );

        const b2 = {
          ...b1,
          nodes: [caller, send('thanks', 'B v2 thanks'), send('done', 'B v2 done')],
          edges: [
            { from: 'call', to: 'thanks', on: 'next' },
            { from: 'thanks', to: 'done', on: 'next' },
          ],
        };
        expect((await post(`/flows/${flowId}`, { definition: b2 }, 'PATCH')).status).toBe(200);
        await publish();
        const body = { from: 1, to: 2, map: { call: 'call', wait2: 'thanks' } };
        const dry = await migrate({ ...body, dryRun: true });
        expect(dry.moves).toEqual([{ from: 'wait2', to: 'thanks', toType: 'send', runs: 3, atOnce: true }]);
        expect(dry.stays).toEqual([{ node: 'call', reason: 'awaiting_effect', runs: 1 }]);
        expect((await migrate(body)).moved).toBe(3);
        // Moved onto a send: it runs in the move, then the rest of v2's path.
        expect(await tally()).toMatchObject({ 'v2 done completed': 3, 'v1 call awaiting_effect': 1 });
        // The awaited call answers: that run goes on on v1, where it was.
        api2.answer({ status: 200, body: {} });
        await until('the fourth waiting on v1', async () =>
          Object.keys(await tally()).some((k) => k.startsWith('v1 wait2 waiting')) ? true : undefined,
        );
        await until('v2’s messages of the three', async () =>
          messages().filter((r) => r.body.message.body.startsWith('B ')).length >= 6 ? true : undefined,
        );
        const b = messages().filter((r) => r.body.message.body.startsWith('B '));
        expect(b.map((r) => r.body.message.body).sort()).toEqual([
          ...Array(3).fill('B v2 done'),
          ...Array(3).fill('B v2 thanks'),
        ]);
        expect(new Set(b.map((r) => r.headers['idempotency-key'])).size).toBe(6);
      } finally {
        flowId = saved;
      }
    } finally {
      await api2.close();
    }
  });
  it('a move racing the timer on the same due runs: each person takes exactly one of the two paths', async () => {
    const n = mode === 'postgres' ? 600 : 100;
    const c1 = {
      version: 1,
      name: `Race ${tag}`,
      trigger: { type: 'event', event: 'Joined' },
      entry: { reentry: 'once' },
      nodes: [{ id: 'wait3', type: 'wait', duration: { days: 3 } }, send('bye', 'C v1 bye')],
      edges: [{ from: 'wait3', to: 'bye', on: 'next' }],
    };
    const created = await post('/flows', { definition: c1 });
    expect(created.status, created.text).toBe(201);
    const saved = flowId;
    flowId = created.body.id;
    try {
      await publish();
      const start = clock.now;
      await sendEvents(
        cairn,
        cairn.demoSource!.writeKey,
        Array.from({ length: n }, (_, i) => ({ type: 'track', userId: `c${i}-${tag}`, event: 'Joined' })),
      );
      await until(
        'everyone waiting',
        async () => ((await tally())[`v1 wait3 waiting +${(start + 3 * DAY - T0) / HOUR}h`] === n ? true : undefined),
        { tries: 1200 },
      );
      const c2 = {
        ...c1,
        nodes: [{ id: 'wait1', type: 'wait', duration: { days: 1 } }, send('bye', 'C v2 bye')],
        edges: [{ from: 'wait1', to: 'bye', on: 'next' }],
      };
      expect((await post(`/flows/${flowId}`, { definition: c2 }, 'PATCH')).status).toBe(200);
      await publish();
      // Every wait is over on both versions: the timer steps them on v1 while the move takes them to v2.
      clock.now = start + 3 * DAY + 1000;
      const report = await migrate({ from: 1, to: 2, map: { wait3: 'wait1' } });
      await until(
        'everyone done',
        async () => {
          const t = await tally();
          return (t['v1 bye completed'] ?? 0) + (t['v2 bye completed'] ?? 0) === n ? t : undefined;
        },
        { tries: 1200 },
      );
      const t = await tally();
      expect(t['v2 bye completed']).toBe(report.moved);
      await until('every message', async () =>
        messages().filter((r) => r.body.message.body.startsWith('C ')).length >= n ? true : undefined,
      );
      const got = messages().filter((r) => r.body.message.body.startsWith('C '));
      expect(got).toHaveLength(n);
      expect(new Set(got.map((r) => r.body.profile.id)).size).toBe(n);
      expect(got.filter((r) => r.body.message.body === 'C v2 bye')).toHaveLength(report.moved);
    } finally {
      flowId = saved;
    }
  });
});
