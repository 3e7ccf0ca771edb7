import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adminApi, describeOnDatabases, type FlowHarness, flowHarness, until } from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

// The routes the console's people pages read besides GET /api/profiles…: a person's timeline (events with
// their deliveries, flow messages, flow runs; paged without gaps or repeats), the people seen recently
// (paged, masked for an analyst), and the audiences a person is or was in.
describeOnDatabases('profile timeline, recent people and audiences on %s', (mode) => {
  let h: FlowHarness;
  let hookId: string;
  let flowId: string;
  let analyst: ReturnType<typeof adminApi>;
  const run = randomUUID().slice(0, 8);
  const [anon, user] = [`anon-${run}`, `ada-${run}`];
  let profileId: string;

  beforeAll(async () => {
    h = await flowHarness('profile-timeline.test.ts', mode);
    ({ destinationId: hookId } = await h.webhook());
    flowId = await h.publish({
      version: 1,
      name: `Hello ${run}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [{ id: 'hello', type: 'send', destination: hookId, message: { body: 'Hello' } }],
      edges: [],
    });
    const audience = await h.post('/audiences', {
      key: `pro_${run}`,
      name: 'Pro plan',
      rule: { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
    });
    expect(audience.status, audience.text).toBe(201);
    const key = await h.post('/keys', { name: 'analyst', role: 'analyst' });
    expect(key.status, key.text).toBe(201);
    analyst = adminApi(h.cairn.url, key.body.key);

    const at = (s: number) => new Date(Date.now() - 60_000 + s * 1000).toISOString();
    await h.send(
      { type: 'page', anonymousId: anon, name: 'Home', timestamp: at(0) },
      { type: 'track', anonymousId: anon, event: 'Product Viewed', timestamp: at(1) },
    );
    await h.send({
      type: 'identify',
      anonymousId: anon,
      userId: user,
      traits: { email: `ada.${run}@example.com`, plan: 'pro' },
      timestamp: at(2),
    });
    await h.send({ type: 'track', userId: user, event: 'Signed Up', timestamp: at(3) });
    // Three events at the same instant: pages must split ties by id, not skip or repeat them.
    const tied = { type: 'track', userId: user, event: 'Tied', timestamp: at(4) };
    await h.send(tied, tied, tied);
    profileId = await h.profileOf(user);
    // The flow sent its message (a ledger row without an event) and the run ended.
    await until('the run completed and its message delivered', async () => {
      const t = (await h.api(`/profiles/${profileId}/timeline`)).body;
      const msg = t?.data?.find((i: Any) => i.kind === 'delivery');
      const runItem = t?.data?.find((i: Any) => i.kind === 'run');
      return msg?.status === 'delivered' && runItem?.status === 'completed';
    });
  });
  afterAll(() => h?.close());

  it('mixes events with their deliveries, the flow message and the run, newest first', async () => {
    const { status, body } = await h.api(`/profiles/${profileId}/timeline`);
    expect(status).toBe(200);
    const kinds = body.data.map((i: Any) => (i.kind === 'event' ? `event:${i.name ?? i.type}` : i.kind));
    expect(kinds).toEqual(
      expect.arrayContaining([
        'event:Home',
        'event:Product Viewed',
        'event:identify',
        'event:Signed Up',
        'run',
        'delivery',
      ]),
    );
    const times = body.data.map((i: Any) => Date.parse(i.at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const signedUp = body.data.find((i: Any) => i.name === 'Signed Up');
    // The webhook destination takes every event: the event's own delivery is nested under it.
    expect(signedUp.deliveries).toEqual([expect.objectContaining({ destinationId: hookId })]);
    const runItem = body.data.find((i: Any) => i.kind === 'run');
    expect(runItem).toMatchObject({ flowId, flowName: `Hello ${run}`, version: 1, status: 'completed' });
    const message = body.data.find((i: Any) => i.kind === 'delivery');
    expect(message).toMatchObject({ destinationId: hookId, flowRunId: runItem.id, node: 'hello', status: 'delivered' });
    expect(body.data.filter((i: Any) => i.name === 'Tied')).toHaveLength(3);
    expect(body.next).toBeNull();
  });

  it('pages through the timeline without gaps or repeats', async () => {
    const all = (await h.api(`/profiles/${profileId}/timeline?limit=200`)).body.data.map(
      (i: Any) => `${i.kind}:${i.id}`,
    );
    for (const limit of [1, 2, 3]) {
      const seen: string[] = [];
      let next: string | null = null;
      do {
        const page: Any = await h.api(`/profiles/${profileId}/timeline?limit=${limit}${next ? `&before=${next}` : ''}`);
        expect(page.status, page.text).toBe(200);
        expect(page.body.data.length).toBeLessThanOrEqual(limit);
        seen.push(...page.body.data.map((i: Any) => `${i.kind}:${i.id}`));
        next = page.body.next;
      } while (next);
      expect(seen).toEqual(all);
    }
    expect((await h.api(`/profiles/${profileId}/timeline?before=nope`)).status).toBe(400);
    expect((await h.api(`/profiles/${randomUUID()}/timeline`)).status).toBe(404);
  });

  it('lists the people seen recently, paged, with emails masked for an analyst', async () => {
    await h.send({ type: 'identify', userId: `bo-${run}`, traits: { email: `bo.${run}@example.com` } });
    const bo = await h.profileOf(`bo-${run}`);
    const first = await h.api('/profiles/recent?limit=1');
    expect(first.status, first.text).toBe(200);
    expect(first.body.data).toHaveLength(1);
    const ids: string[] = [];
    let next: string | null = null;
    do {
      const page: Any = await h.api(`/profiles/recent?limit=1${next ? `&before=${next}` : ''}`);
      ids.push(...page.body.data.map((p: Any) => p.id));
      next = page.body.next;
    } while (next);
    expect(ids).toEqual([...new Set(ids)]);
    expect(ids).toEqual(expect.arrayContaining([profileId, bo]));
    const admin = (await h.api('/profiles/recent?limit=100')).body.data.find((p: Any) => p.id === bo);
    expect(admin.identities).toContainEqual({ type: 'email', value: `bo.${run}@example.com` });
    const masked = (await analyst('/profiles/recent?limit=100')).body.data.find((p: Any) => p.id === bo);
    const email = masked.identities.find((i: Any) => i.type === 'email').value;
    expect(email).not.toContain(`bo.${run}`);
    expect(email).toMatch(/@example\.com$/);
  });

  it("names the audiences a person is in, with the latest period, for any reader's role", async () => {
    const got = await until('the audience membership', async () => {
      const r = await analyst(`/profiles/${profileId}/audiences`);
      return r.body?.data?.length ? r : undefined;
    });
    expect(got.body.data).toEqual([
      expect.objectContaining({ name: 'Pro plan', member: true, exitedAt: null, periods: 1 }),
    ]);
    expect((await analyst(`/profiles/${profileId}/timeline`)).status).toBe(200);
  });
});
