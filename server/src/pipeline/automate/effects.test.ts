import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Transaction } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { isSealed } from '../../pii/index.ts';
import { describeOnDatabases, type FlowHarness, flowHarness, type Receiver, until } from '../../testing/index.ts';
import { writeProfileUpdates } from './profile-writes.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

// The effects a flow's steps ask for besides messages, end to end on each database: profile updates
// written with the step (traits through stage 2, static tags through stage 3, audiences following),
// webhooks and plugin actions performed by the `effects` queue with the effect's key as idempotency
// key, their answers kept in the run's data and used by a later send, failures taking `failed`.
describeOnDatabases('flow effects on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let svc: Receiver;
  let hookId: string;
  const run = randomUUID().slice(0, 8);
  // (No test here waits for time: the runtime follows the real clock.)
  const runOf = (flowId: string, profileId: string, status: string) =>
    until(`${profileId}'s run ${status}`, async () => {
      const [r] = await h.runsOf(flowId, profileId);
      return r?.status === status ? r : undefined;
    });
  const messagesTo = (profileId: string) =>
    hook.accepted.filter((r) => r.body?.message && r.body.profile?.id === profileId);
  const enter = async (event: string, userId: string, traits: object = {}) => {
    await h.send({ type: 'identify', userId, traits });
    // The traits folded first: sent as two requests, the two events can be processed in different batches in
    // either order, and a step would then render its templates without them (seen once in CI).
    await h.profileOf(userId);
    await h.send({ type: 'track', userId, event, properties: { plan: 'basic' } });
    return h.profileOf(userId);
  };

  beforeAll(async () => {
    h = await flowHarness('effects.test.ts', mode, { env: { CAIRN_COMPUTE_SWEEP_S: '0.2' } });
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    // A coupon service: issues a code per call, refuses users named "nobody".
    svc = await h.receiver({
      answer: (r) =>
        r.body?.user === 'nobody'
          ? { status: 400, body: { error: 'unknown user' } }
          : { body: { coupon: { code: `C-${r.body?.user}`, key: r.headers['idempotency-key'] } } },
    });
  });
  afterAll(() => h?.close());

  it('update_profile sets and unsets traits and adds a static tag with the step; audiences on them follow', async () => {
    expect((await h.post('/tags', { key: 'needs_manual_followup', name: 'Manual follow-up' })).status).toBe(201);
    for (const [k, rule] of [
      ['followup', { op: 'has_tag', tag: 'needs_manual_followup' }],
      ['no_order_reason', { op: 'trait', trait: 'followup_reason', cmp: '=', value: 'no order' }],
    ] as const) {
      const res = await h.post('/audiences', { key: k, name: k, rule });
      expect(res.status, res.text).toBe(201);
    }
    // A dynamic tag cannot be added by a flow: refused at publish with the node.
    expect(
      (await h.post('/tags', { key: 'dyn', name: 'dyn', rule: { op: 'trait', trait: 'x', cmp: 'exists' } })).status,
    ).toBe(201);
    const bad = await h.post('/flows', {
      definition: {
        version: 1,
        name: `Dyn ${run}`,
        trigger: { type: 'event', event: 'Registered' },
        entry: { reentry: 'once' },
        nodes: [{ id: 'tag', type: 'update_profile', addTags: ['dyn'] }],
        edges: [],
      },
    });
    const refused = await h.post(`/flows/${bad.body.id}/publish`, {});
    expect(refused.status, refused.text).toBe(400);
    expect(refused.text).toContain('not a static tag');

    const flowId = await h.publish({
      version: 1,
      name: `No first order ${run}`,
      trigger: { type: 'event', event: 'Registered' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'mark',
          type: 'update_profile',
          set: {
            followup_reason: 'no order',
            address: '{{ traits.first_name }} Street 1',
            plan_seen: '{{ event.properties.plan }}',
          },
          unset: ['trial'],
          addTags: ['needs_manual_followup'],
        },
        { id: 'mail', type: 'send', destination: hookId, message: { body: 'Tagged for {{ traits.followup_reason }}' } },
      ],
      edges: [{ from: 'mark', to: 'mail', on: 'next' }],
    });
    const user = `ann-${run}`;
    const profileId = await enter('Registered', user, { first_name: 'Ann', trial: true });
    const done = await runOf(flowId, profileId, 'completed');
    // (The definition is stored as jsonb: the keys of `set` come back in its order.)
    expect(done.steps.find((s: Any) => s.node === 'mark').reason).toMatch(
      /^set (?=.*followup_reason)(?=.*address)(?=.*plan_seen)[^;]*; unset trial; tag needs_manual_followup$/,
    );
    // The later node of the same step saw the change.
    const [mail] = await until('the message', async () =>
      messagesTo(profileId).length ? messagesTo(profileId) : undefined,
    );
    expect(mail!.body.message.body).toBe('Tagged for no order');

    // The profile, through the API: the traits as the flow set them, written by an identify event of source cairn.
    const profile = await until('the traits folded', async () => {
      const p = (await h.api(`/profiles/${profileId}`)).body;
      return p.traits.followup_reason && !p.traits.trial ? p : undefined;
    });
    expect(profile.traits).toMatchObject({
      followup_reason: { value: 'no order', source: 'identify' },
      address: { value: 'Ann Street 1' },
      plan_seen: { value: 'basic' },
      first_name: { value: 'Ann' },
    });
    // The sensitive trait is stored sealed, as the PII layer stores every other one.
    const [stored] = await h.cairn.sql<{ value: unknown }[]>`
      SELECT value FROM profile_traits WHERE profile_id = ${profileId} AND key = 'address'`;
    expect(isSealed(stored!.value)).toBe(true);
    const [written] = await h.cairn.sql<{ source_id: string; message_id: string }[]>`
      SELECT source_id, message_id FROM events WHERE id = ${profile.traits.followup_reason.eventId}`;
    expect(written).toEqual({ source_id: 'cairn', message_id: `flow:${done.id}:mark:0` });
    const tags = (await h.api(`/profiles/${profileId}/tags`)).body;
    expect(tags.current).toEqual(['needs_manual_followup']);
    expect(tags.history[0]).toMatchObject({ addedBy: `flow:${flowId}` });

    // Stage 3 follows both: the audience on the tag and the one on the trait pick the person up.
    for (const audience of ['followup', 'no_order_reason'])
      await until(
        `${audience} has the person`,
        async () => (await h.api(`/audiences/${audience}/explain/${profileId}`)).body.member,
      );

    // The step replayed (as after a crash before its commit): the same key writes nothing twice.
    const handed: string[] = [];
    const handOff: HandOff = async (_tx, topic) => {
      handed.push(topic);
    };
    await h.cairn.sql.begin((tx) =>
      writeProfileUpdates(
        tx as Transaction,
        { handOff, pii: h.cairn.pii, log: { error: () => {} } },
        [
          {
            type: 'update_profile',
            key: `flow:${done.id}:mark:0`,
            node: 'mark',
            set: { followup_reason: 'no order' },
            unset: [],
            addTags: ['needs_manual_followup'],
            removeTags: [],
            profileId,
            flow: { id: flowId, runId: done.id },
          },
        ],
        Date.now(),
      ),
    );
    expect(handed).toEqual([]);
    const [counts] = await h.cairn.sql<{ events: number; tags: number }[]>`
      SELECT (SELECT count(*)::int FROM events WHERE message_id = ${`flow:${done.id}:mark:0`}) AS events,
        (SELECT count(*)::int FROM tag_assignments WHERE profile_id = ${profileId}) AS tags`;
    expect(counts).toEqual({ events: 1, tags: 1 });
  });

  it('a webhook answer kept in the run data fills a later message; a refused call takes the failed edge', async () => {
    const flowId = await h.publish({
      version: 1,
      name: `Cart coupon ${run}`,
      trigger: { type: 'event', event: 'Cart Abandoned' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'issue',
          type: 'webhook',
          url: `${svc.url}?who={{ traits.first_name }}`,
          method: 'POST',
          headers: { 'x-campaign': 'cart' },
          body: '{"user":"{{ traits.first_name }}"}',
          keep: { coupon: 'coupon.code' },
        },
        { id: 'mail', type: 'send', destination: hookId, message: { body: 'Your code {{ run.coupon }}' } },
        { id: 'sorry', type: 'send', destination: hookId, message: { body: 'No coupon today' } },
      ],
      edges: [
        { from: 'issue', to: 'mail', on: 'next' },
        { from: 'issue', to: 'sorry', on: 'failed' },
      ],
    });
    const [bo, nobody] = [`bo-${run}`, `nobody-${run}`];
    const pBo = await enter('Cart Abandoned', bo, { first_name: 'Bo' });
    const pNobody = await enter('Cart Abandoned', nobody, { first_name: 'nobody' });
    const done = await runOf(flowId, pBo, 'completed');
    const callKey = `flow:${done.id}:issue:0`;
    const calls = () => svc.requests.filter((r) => r.headers['idempotency-key'] === callKey);
    expect(calls()).toHaveLength(1);
    expect(calls()[0]).toMatchObject({
      method: 'POST',
      path: '/hook?who=Bo',
      body: { user: 'Bo' },
      headers: { 'x-campaign': 'cart', 'content-type': 'application/json' },
    });
    expect(done.steps.map((s: Any) => [s.node ?? null, s.outcome, s.to ?? null])).toEqual([
      [null, 'entered', 'issue'],
      ['issue', 'awaiting', null],
      ['issue', 'next', 'mail'],
      ['mail', 'next', null],
    ]);
    await until('the coupon message', async () => messagesTo(pBo).length === 1);
    expect(messagesTo(pBo)[0]!.body.message.body).toBe('Your code C-Bo');

    const failed = await runOf(flowId, pNobody, 'completed');
    expect(failed.steps.find((s: Any) => s.node === 'issue' && s.outcome === 'failed')).toMatchObject({
      to: 'sorry',
      reason: expect.stringContaining('HTTP 400'),
    });
    await until('the apology', async () => messagesTo(pNobody).length === 1);
    expect(messagesTo(pNobody)[0]!.body.message.body).toBe('No coupon today');

    // The call's job delivered again (a worker that died before completing it): the run no longer awaits
    // the key, so nobody is called and nothing moves twice.
    const [copy] = await h.cairn.sql<{ id: string }[]>`
      INSERT INTO pgboss.job (name, data)
      SELECT name, data FROM pgboss.job WHERE name = 'effects' AND data->>'key' = ${callKey} LIMIT 1
      RETURNING id::text`;
    await until('the copy worked off', async () => {
      const [job] = await h.cairn.sql<{ state: string }[]>`SELECT state::text FROM pgboss.job WHERE id = ${copy!.id}`;
      return job?.state === 'completed';
    });
    expect(calls()).toHaveLength(1);
    expect(messagesTo(pBo)).toHaveLength(1);
    const decided = await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_steps WHERE run_id = ${done.id} AND node = 'issue' AND decided`;
    expect(decided[0]!.n).toBe(1);
  });

  it('a webhook answering 503 is retried with the same key, then the run goes on', async () => {
    const flowId = await h.publish({
      version: 1,
      name: `Retry ${run}`,
      trigger: { type: 'event', event: 'Retry Me' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'call',
          type: 'webhook',
          url: svc.url,
          method: 'POST',
          body: '{"user":"Cy"}',
          keep: { code: 'coupon.code' },
        },
      ],
      edges: [],
    });
    svc.queue({ status: 503 });
    const profileId = await enter('Retry Me', `cy-${run}`);
    const done = await runOf(flowId, profileId, 'completed');
    const key = `flow:${done.id}:call:0`;
    const tries = svc.requests.filter((r) => r.headers['idempotency-key'] === key);
    expect(tries.map((r) => r.status)).toEqual([503, 200]);
    expect(done.steps.find((s: Any) => s.node === 'call' && s.outcome === 'next').values).toEqual({ code: 'C-Cy' });
  });

  it("an action of the destination's plugin returns an output a later step uses", async () => {
    const coupons = await h.post('/destinations', {
      name: 'coupons',
      plugin: 'webhook',
      settings: { url: svc.origin },
    });
    expect(coupons.status, coupons.text).toBe(201);
    // An action the plugin does not have is refused on save, with the node.
    const unknown = await h.post('/flows', {
      definition: {
        version: 1,
        name: `Bad action ${run}`,
        trigger: { type: 'event', event: 'Signed Up' },
        entry: { reentry: 'once' },
        nodes: [{ id: 'x', type: 'action', destination: coupons.body.id, action: 'issue_coupon' }],
        edges: [],
      },
    });
    expect(unknown.status, unknown.text).toBe(400);
    expect(unknown.body.error.details).toEqual([
      {
        node: 'x',
        path: 'nodes.0.action',
        message: `destination "${coupons.body.id}" has no action "issue_coupon"; it has post`,
      },
    ]);

    const flowId = await h.publish({
      version: 1,
      name: `Welcome coupon ${run}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'coupon',
          type: 'action',
          destination: coupons.body.id,
          action: 'post',
          input: { path: '/coupons', body: { user: '{{ traits.first_name }}', value: 10 } },
          keep: { code: 'coupon.code' },
        },
        { id: 'mail', type: 'send', destination: hookId, message: { body: 'Welcome! {{ run.code }}' } },
      ],
      edges: [{ from: 'coupon', to: 'mail', on: 'next' }],
    });
    const profileId = await enter('Signed Up', `di-${run}`, { first_name: 'Di' });
    const done = await runOf(flowId, profileId, 'completed');
    const call = svc.requests.find((r) => r.headers['idempotency-key'] === `flow:${done.id}:coupon:0`);
    expect(call).toMatchObject({ method: 'POST', path: '/coupons', body: { user: 'Di', value: 10 } });
    await until('the welcome message', async () => messagesTo(profileId).length === 1);
    expect(messagesTo(profileId)[0]!.body.message.body).toBe('Welcome! C-Di');
  });
});
