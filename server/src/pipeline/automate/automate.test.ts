import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  approveAndPublish,
  describeOnDatabases,
  type FlowHarness,
  failNextHandOff,
  flowHarness,
  movableClock,
  type Receiver,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

const HOUR = 3_600_000;

// The vertical slice of stage 4, end to end on each database: an event posted to the tracking API enters
// a person into a live flow; the run waits (on the runtime's clock, which the test moves), branches on
// a trait, and sends a rendered message through a real webhook destination to a real receiver.
describeOnDatabases('flows on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let hookId: string;
  let flowId: string;
  const run = randomUUID().slice(0, 8);
  // The runtime's clock: rules, entries and waits read it; the test moves it forward.
  const clock = movableClock();
  const runsOf = (profileId: string, flow = flowId) => h.runsOf(flow, profileId);
  const messagesTo = (profileId: string) =>
    hook.accepted.filter((r) => r.body?.message && r.body.profile?.id === profileId);
  const welcome = (destination: string) => ({
    version: 1,
    name: `Welcome ${run}`,
    trigger: { type: 'event', event: 'Signed Up' },
    entry: { reentry: 'once' },
    nodes: [
      { id: 'settle_in', type: 'wait', duration: { hours: 1 } },
      {
        id: 'plan',
        type: 'branch',
        cases: [{ name: 'pro', rule: { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' } }],
      },
      {
        id: 'pro_mail',
        type: 'send',
        destination,
        message: { subject: 'Welcome, {{ traits.first_name }}', body: 'Your coupon: {{ event.properties.coupon }}' },
      },
      {
        id: 'basic_mail',
        type: 'send',
        destination,
        message: { body: 'Hello {{ traits.first_name | default: "there" }}' },
      },
    ],
    edges: [
      { from: 'settle_in', to: 'plan', on: 'next' },
      { from: 'plan', to: 'pro_mail', on: 'case:0' },
      { from: 'plan', to: 'basic_mail', on: 'else' },
    ],
  });
  // A person signs up and waits at the flow's first node.
  const signUp = async (userId: string, traits: object, messageId: string = randomUUID()) => {
    await h.send({ type: 'identify', userId, traits });
    await h.send({ type: 'track', userId, event: 'Signed Up', messageId, properties: { coupon: `C-${userId}` } });
    const profileId = await h.profileOf(userId);
    const [waiting] = await until(`${userId} waiting in the flow`, async () => {
      const runs = await runsOf(profileId);
      return runs.length && runs[0].node === 'settle_in' ? runs : undefined;
    });
    return { profileId, run: waiting as Any };
  };
  // Re-delivers a queue's job holding `text` in its data, as pg-boss would after a worker died before
  // completing it; waits until that copy has been worked off.
  const redeliver = async (queue: string, text: string) => {
    const copy = await until<{ id: string }>(`a completed ${queue} job with ${text}`, async () => {
      const [row] = await h.cairn.sql<{ id: string }[]>`
        INSERT INTO pgboss.job (name, data)
        SELECT name, data FROM pgboss.job
        WHERE name = ${queue} AND data::text LIKE ${`%${text}%`} AND state = 'completed'
        LIMIT 1
        RETURNING id::text`;
      return row;
    });
    await until(`the re-delivered ${queue} job`, async () => {
      const [job] = await h.cairn.sql<{ state: string }[]>`SELECT state::text FROM pgboss.job WHERE id = ${copy.id}`;
      return job?.state === 'completed';
    });
  };

  beforeAll(async () => {
    h = await flowHarness('automate.test.ts', mode, { clock });
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    const flow = await h.post('/flows', { definition: welcome(hookId), description: 'the slice' });
    expect(flow.status, flow.text).toBe(201);
    expect(flow.body).toMatchObject({ status: 'draft', version: null, name: `Welcome ${run}` });
    flowId = flow.body.id;
    const live = await approveAndPublish(h.cairn.url, flowId);
    expect(live.status, live.text).toBe(200);
    expect(live.body).toMatchObject({ status: 'live', version: 1 });
  });
  afterAll(() => h?.close());

  it('event → wait → branch → send: the receiver gets the rendered message once, with a stable idempotency key', async () => {
    const user = `ada-${run}`;
    const { profileId, run: waiting } = await signUp(user, { first_name: 'Ada', plan: 'pro' });
    expect(waiting).toMatchObject({ status: 'waiting', version: 1, due: new Date(clock.now + HOUR).toISOString() });
    expect(messagesTo(profileId)).toHaveLength(0);

    clock.advance(HOUR + 1000);
    const [hit] = await until('the message at the receiver', async () => {
      const got = messagesTo(profileId);
      return got.length ? got : undefined;
    });
    const idempotencyKey = `flow:${waiting.id}:pro_mail:0`;
    expect(hit!.body.message).toEqual({
      subject: 'Welcome, Ada',
      body: `Your coupon: C-${user}`,
      flow: { id: flowId, node: 'pro_mail' },
    });
    expect(hit!.headers['idempotency-key']).toBe(idempotencyKey);
    expect(hit!.body).toMatchObject({
      idempotencyKey,
      profile: { id: profileId, userId: user },
      event: { type: 'track', event: 'Flow Message', messageId: idempotencyKey },
    });

    const [done] = await until('the run completed', async () => {
      const runs = await runsOf(profileId);
      return runs[0]?.status === 'completed' ? runs : undefined;
    });
    expect(done.steps.map((s: Any) => [s.node ?? null, s.outcome, s.to ?? null, s.iteration])).toEqual([
      [null, 'entered', 'settle_in', null],
      ['settle_in', 'waiting', null, 0],
      ['settle_in', 'next', 'plan', 0],
      ['plan', 'case:0', 'pro_mail', 0],
      ['pro_mail', 'next', null, 0],
    ]);
    expect(done.steps.find((s: Any) => s.node === 'plan').reason).toContain('plan is "pro": yes');
    expect(done.steps.find((s: Any) => s.node === 'pro_mail').values).toEqual({ key: idempotencyKey });

    // The message went through the ledger like an event: one row, no event, delivered.
    const ledger = (await h.api(`/destinations/${hookId}/deliveries?limit=100`)).body.data as Any[];
    expect(ledger.filter((d) => d.idempotencyKey === idempotencyKey)).toEqual([
      expect.objectContaining({ eventId: null, status: 'delivered', attempts: 1, profileId }),
    ]);

    // Prometheus: steps by what moved them, how late the timer took due runs, messages, ended runs.
    const metrics = await (await fetch(`${h.cairn.url}/metrics`)).text();
    const value = (line: string) => Number(new RegExp(`^${line} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0);
    expect(value('cairn_flow_steps_total\\{input="entry"\\}')).toBeGreaterThanOrEqual(1);
    expect(value('cairn_flow_steps_total\\{input="due"\\}')).toBeGreaterThanOrEqual(1);
    expect(value('cairn_flow_due_lag_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(value('cairn_flow_messages_total')).toBeGreaterThanOrEqual(1);
    expect(value('cairn_flow_runs_ended_total\\{status="completed"\\}')).toBeGreaterThanOrEqual(1);

    // The messages hand-off delivered again (a worker that died before completing its job): nothing twice.
    await redeliver('messages', waiting.id);
    expect(messagesTo(profileId)).toHaveLength(1);
    expect(
      ((await h.api(`/destinations/${hookId}/deliveries?limit=100`)).body.data as Any[]).filter(
        (d) => d.idempotencyKey === idempotencyKey,
      ),
    ).toHaveLength(1);
  });

  it('a trigger event delivered twice (the same messageId, or its hand-off again) enters the person once', async () => {
    // A flow that lets a person in every time, several runs at once: only the event's identity keeps a
    // second delivery of it out.
    const couponsId = await h.publish({
      version: 1,
      name: `Coupon reminder ${run}`,
      trigger: { type: 'event', event: 'Coupon Issued' },
      entry: { reentry: 'every_time', concurrent: true },
      nodes: [
        { id: 'hold', type: 'wait', duration: { hours: 2 } },
        { id: 'remind', type: 'send', destination: hookId, message: { body: 'Use {{ event.properties.code }}' } },
      ],
      edges: [{ from: 'hold', to: 'remind', on: 'next' }],
    });
    const user = `bo-${run}`;
    const { profileId } = await signUp(user, { first_name: 'Bo' });
    const messageId = `coupon-${run}`;
    const issue = (code: string, id: string = randomUUID()) =>
      h.send({ type: 'track', userId: user, event: 'Coupon Issued', messageId: id, properties: { code } });
    await issue('A', messageId);
    const couponRuns = () => runsOf(profileId, couponsId);
    await until('the first coupon run', async () => (await couponRuns()).length === 1);
    // The same event sent again: ingest stores it once.
    await issue('A again', messageId);
    const [stored] = await h.cairn.sql<{ id: string }[]>`SELECT id::text FROM events WHERE message_id = ${messageId}`;
    // Its hand-off to stage 4 delivered again: the run it started is found, nobody enters.
    await redeliver('automate', `"${stored!.id}"`);
    expect(await couponRuns()).toHaveLength(1);
    // Another coupon is another entry.
    await issue('B');
    await until('the second coupon run', async () => (await couponRuns()).length === 2);

    // The welcome flow lets a person in once: another sign-up is refused.
    await h.send({ type: 'track', userId: user, event: 'Signed Up', properties: { coupon: 'C-later' } });
    await until('the sign-up handled', async () => {
      const [row] = await h.cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'automate' AND state <> 'completed'`;
      return row!.n === 0;
    });
    expect(await runsOf(profileId)).toHaveLength(1);

    clock.advance(2 * HOUR + 1000);
    await until('three messages', async () => messagesTo(profileId).length === 3);
    expect(
      messagesTo(profileId)
        .map((r) => r.body.message.body)
        .sort(),
    ).toEqual(['Hello Bo', 'Use A', 'Use B']);
  });

  it.skipIf(mode === 'embedded')(
    'a step whose transaction fails after its effects is replayed with the same key and sends once (Postgres: the fault needs a second session)',
    async () => {
      const user = `cy-${run}`;
      const { profileId, run: waiting } = await signUp(user, { first_name: 'Cy', plan: 'pro' });
      // The first hand-off of a message raises inside the step's transaction: the run's advance, its
      // journal and the hand-off roll back together, and the timer's next pass does the step again.
      const attempts = await failNextHandOff(h.cairn.sql, 'messages');
      clock.advance(HOUR + 1000);
      await until('the message after the replay', async () => messagesTo(profileId).length >= 1);
      expect(await attempts()).toBeGreaterThanOrEqual(2);
      await until('the run completed', async () => (await runsOf(profileId))[0]?.status === 'completed');
      await new Promise((r) => setTimeout(r, 1000));
      const got = messagesTo(profileId);
      expect(got).toHaveLength(1);
      expect(got[0]!.headers['idempotency-key']).toBe(`flow:${waiting.id}:pro_mail:0`);
      const decided = await h.cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM flow_steps WHERE run_id = ${waiting.id} AND node = 'pro_mail' AND decided`;
      expect(decided[0]!.n).toBe(1);
    },
  );

  it('simulating a profile gives the path and messages the real run took', async () => {
    const user = `di-${run}`;
    const { profileId, run: waiting } = await signUp(user, { first_name: 'Di', plan: 'pro' });
    clock.advance(HOUR + 1000);
    await until('the real run completed', async () => (await runsOf(profileId))[0]?.status === 'completed');
    await until('its message at the receiver', async () => messagesTo(profileId).length > 0);
    const [real] = await runsOf(profileId);
    const sent = messagesTo(profileId);
    expect(sent).toHaveLength(1);

    const enteredAt = Date.parse(real.enteredAt);
    const sim = await h.post(`/flows/${flowId}/simulate`, {
      profile: { id: profileId },
      start: enteredAt,
      horizon: { days: 1 },
      script: [{ at: enteredAt, event: { type: 'track', event: 'Signed Up', properties: { coupon: `C-${user}` } } }],
    });
    expect(sim.status, sim.text).toBe(200);
    const s = sim.body.simulation;
    expect(sim.body).toMatchObject({ flowId, version: 1 });
    const pathOf = (steps: Any[]) => [...new Set(steps.filter((x) => x.node).map((x) => x.node))];
    expect(s.path).toEqual(pathOf(real.steps));
    // Every decision, with the same reasons (the time a timer step ran differs: the simulation is exact).
    const decisions = (steps: Any[]) => steps.map((x) => [x.node ?? null, x.outcome, x.to ?? null, x.reason]);
    expect(decisions(s.steps)).toEqual(decisions(real.steps));
    expect(
      s.messages.map((m: Any) => ({
        node: m.node,
        destination: m.destination,
        subject: m.subject,
        body: m.body,
        key: m.key.replace('simulation', waiting.id),
      })),
    ).toEqual(
      sent.map((r) => ({
        node: r.body.message.flow.node,
        destination: hookId,
        subject: r.body.message.subject,
        body: r.body.message.body,
        key: r.body.idempotencyKey,
      })),
    );
    expect(s.messages[0].at).toBe(enteredAt + HOUR);
    expect(s.end).toMatchObject({ status: 'completed' });
  });

  it('an event reaches the runs of its person waiting for it, once, and a wait times out on the clock', async () => {
    const twiceId = await h.publish({
      version: 1,
      name: `Two visits ${run}`,
      trigger: { type: 'event', event: 'Trial Started' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'visit1', type: 'wait_for_event', event: { event: 'Pricing Viewed' }, timeout: { days: 7 } },
        { id: 'visit2', type: 'wait_for_event', event: { event: 'Pricing Viewed' }, timeout: { days: 7 } },
        { id: 'hot', type: 'send', destination: hookId, message: { body: 'Two visits' } },
        { id: 'cold', type: 'exit' },
      ],
      edges: [
        { from: 'visit1', to: 'visit2', on: 'matched' },
        { from: 'visit1', to: 'cold', on: 'timeout' },
        { from: 'visit2', to: 'hot', on: 'matched' },
        { from: 'visit2', to: 'cold', on: 'timeout' },
      ],
    });
    const [hot, cold] = [`hot-${run}`, `cold-${run}`];
    await h.send(
      { type: 'track', userId: hot, event: 'Trial Started' },
      { type: 'track', userId: cold, event: 'Trial Started' },
    );
    const [hotId, coldId] = [await h.profileOf(hot), await h.profileOf(cold)];
    const at = (profileId: string, node: string) =>
      until(`${profileId} at ${node}`, async () => (await runsOf(profileId, twiceId))[0]?.node === node);
    await at(hotId, 'visit1');
    await at(coldId, 'visit1');
    expect((await runsOf(hotId, twiceId))[0].listen).toEqual(['Pricing Viewed']);

    const viewed = `view-${run}`;
    await h.send({ type: 'track', userId: hot, event: 'Pricing Viewed', messageId: viewed });
    await at(hotId, 'visit2');
    // The view handed over again must not count as the second one.
    const [stored] = await h.cairn.sql<{ id: string }[]>`SELECT id::text FROM events WHERE message_id = ${viewed}`;
    await redeliver('automate', `"${stored!.id}"`);
    const [still] = await runsOf(hotId, twiceId);
    expect(still).toMatchObject({ node: 'visit2', status: 'waiting' });
    // One step moved by it: the first wait matched, the second began.
    expect(still.steps.filter((x: Any) => x.eventId === stored!.id).map((x: Any) => [x.node, x.outcome])).toEqual([
      ['visit1', 'matched'],
      ['visit2', 'waiting'],
    ]);

    await h.send({ type: 'track', userId: hot, event: 'Pricing Viewed' });
    await until('the hot message', async () => messagesTo(hotId).length === 1);
    expect(messagesTo(hotId)[0]!.body.message.body).toBe('Two visits');

    clock.advance(7 * 24 * HOUR + 1000);
    await until('the cold run timed out', async () => (await runsOf(coldId, twiceId))[0]?.status === 'completed');
    const [timedOut] = await runsOf(coldId, twiceId);
    expect(timedOut.steps.map((x: Any) => [x.node ?? null, x.outcome])).toEqual([
      [null, 'entered'],
      ['visit1', 'waiting'],
      ['visit1', 'timeout'],
      ['cold', 'completed'],
    ]);
    expect(messagesTo(coldId)).toHaveLength(0);
  });

  it('keeps sensitive traits out of what it stores in clear: the journal masks them, messages are sealed', async () => {
    const gmailId = await h.publish({
      version: 1,
      name: `Gmail ${run}`,
      trigger: { type: 'event', event: 'Newsletter Joined' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'domain',
          type: 'branch',
          cases: [{ rule: { op: 'trait', trait: 'email', cmp: 'contains', value: '@gmail.com' } }],
        },
        { id: 'tip', type: 'send', destination: hookId, message: { body: 'Tip for {{ traits.email }}' } },
        { id: 'done', type: 'exit' },
      ],
      edges: [
        { from: 'domain', to: 'tip', on: 'case:0' },
        { from: 'domain', to: 'done', on: 'else' },
      ],
    });
    const user = `zoe-${run}`;
    const email = `zoe.private.${run}@gmail.com`;
    await h.send({ type: 'identify', userId: user, traits: { email } });
    await h.send({ type: 'track', userId: user, event: 'Newsletter Joined' });
    const profileId = await h.profileOf(user);
    await until('the tip', async () => messagesTo(profileId).length === 1);
    // The person gets it in clear: the plugin needs the address.
    expect(messagesTo(profileId)[0]!.body.message.body).toBe(`Tip for ${email}`);
    const [journey] = await runsOf(profileId, gmailId);
    const decision = journey.steps.find((x: Any) => x.node === 'domain');
    expect(decision.outcome).toBe('case:0');
    expect(decision.reason).toContain(`z***@gmail.com`);
    const [stored] = await h.cairn.sql<{ n: number }[]>`
      SELECT (SELECT count(*) FROM flow_steps WHERE reason LIKE ${`%${email}%`} OR detail::text LIKE ${`%${email}%`})
        + (SELECT count(*) FROM flow_runs WHERE state::text LIKE ${`%${email}%`})
        + (SELECT count(*) FROM deliveries WHERE message::text LIKE ${`%${email}%`})
        + (SELECT count(*) FROM pgboss.job WHERE name = 'messages' AND data::text LIKE ${`%${email}%`}) AS n`;
    expect(Number(stored!.n)).toBe(0);
  });

  it('enters a person through the API with entry data, once per key', async () => {
    const id = await h.publish({
      version: 1,
      name: `Order follow-up ${run}`,
      trigger: { type: 'api', data: ['coupon'] },
      entry: { reentry: 'every_time', concurrent: true },
      nodes: [
        { id: 'later', type: 'wait', duration: { hours: 1 } },
        { id: 'code', type: 'send', destination: hookId, message: { body: 'Your code {{ run.coupon }}' } },
      ],
      edges: [{ from: 'later', to: 'code', on: 'next' }],
    });
    const user = `fay-${run}`;
    await h.send({ type: 'identify', userId: user, traits: { first_name: 'Fay' } });
    const profileId = await h.profileOf(user);

    const first = await h.post(`/flows/${id}/enter`, {
      profile: profileId,
      data: { coupon: 'SPRING' },
      key: 'order-1',
    });
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ entered: true, runId: expect.any(String) });
    const again = await h.post(`/flows/${id}/enter`, {
      profile: profileId,
      data: { coupon: 'SPRING' },
      key: 'order-1',
    });
    expect(again.body).toEqual({ entered: false, runId: first.body.runId, reason: 'entered before with this key' });
    const undeclared = await h.post(`/flows/${id}/enter`, { profile: profileId, data: { discount: 10 } });
    expect(undeclared.status).toBe(400);
    expect(undeclared.body.error.message).toMatch(/discount not declared/);
    const byEvent = await h.post(`/flows/${flowId}/enter`, { profile: profileId });
    expect(byEvent.status).toBe(409);
    expect(await runsOf(profileId, id)).toHaveLength(1);

    clock.advance(HOUR + 1000);
    await until('the code', async () => messagesTo(profileId).length === 1);
    expect(messagesTo(profileId)[0]!.body.message.body).toBe('Your code SPRING');
  });

  it('erasing a person deletes their runs, their journal and the messages flows sent them', async () => {
    const user = `ed-${run}`;
    const { profileId, run: waiting } = await signUp(user, { first_name: 'Ed', plan: 'pro' });
    clock.advance(HOUR + 1000);
    await until('the message', async () => messagesTo(profileId).length === 1);
    const key = `flow:${waiting.id}:pro_mail:0`;
    const ledger = async () =>
      ((await h.api(`/destinations/${hookId}/deliveries?limit=1000`)).body.data as Any[]).filter(
        (d) => d.idempotencyKey === key,
      );
    await until('the message delivered', async () => (await ledger())[0]?.status === 'delivered');
    const erased = await h.api(`/profiles/${profileId}`, { method: 'DELETE' });
    expect(erased.status, erased.text).toBe(200);
    expect(await ledger()).toEqual([]);
    const [left] = await h.cairn.sql<{ runs: number; steps: number }[]>`
      SELECT (SELECT count(*)::int FROM flow_runs WHERE profile_id = ${profileId}) AS runs,
        (SELECT count(*)::int FROM flow_steps WHERE run_id = ${waiting.id}) AS steps`;
    expect(left).toEqual({ runs: 0, steps: 0 });
  });

  it('refuses invalid flows on save with the node and the reason, and what the runner cannot run on publish', async () => {
    const base = welcome(hookId);
    const refused = async (definition: object, pattern: RegExp, node?: string) => {
      const res = await h.post('/flows', { definition });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.code).toBe('invalid_flow');
      expect(res.body.error.message).toMatch(pattern);
      if (node) expect(res.body.error.details).toContainEqual(expect.objectContaining({ node }));
    };
    // An unknown destination.
    await refused(
      { ...base, nodes: base.nodes.map((n) => (n.id === 'pro_mail' ? { ...n, destination: 'dst_gone' } : n)) },
      /node pro_mail: .*dst_gone/,
      'pro_mail',
    );
    // A dangling edge.
    await refused(
      { ...base, edges: [...base.edges, { from: 'pro_mail', to: 'nowhere', on: 'next' }] },
      /nowhere/,
      'pro_mail',
    );
    // A cycle without a wait.
    await refused(
      {
        ...base,
        nodes: [...base.nodes, { id: 'again', type: 'branch', cases: [{ rule: { op: 'has_tag', tag: 'x' } }] }],
        edges: [
          ...base.edges,
          { from: 'pro_mail', to: 'again', on: 'next' },
          { from: 'again', to: 'plan', on: 'case:0' },
          { from: 'again', to: 'basic_mail', on: 'else' },
        ],
      },
      /cycle|wait/,
    );
    // A template variable nothing sets.
    await refused(
      {
        ...base,
        nodes: base.nodes.map((n) =>
          n.id === 'basic_mail' ? { ...n, message: { body: 'Code {{ run.coupon }}' } } : n,
        ),
      },
      /run\.coupon/,
      'basic_mail',
    );

    // A valid draft that adds a tag this server has no static tag of: saved, but not published.
    const draft = await h.post('/flows', {
      definition: {
        ...base,
        name: `Tagger ${run}`,
        nodes: [...base.nodes.slice(0, 3), { id: 'mark', type: 'update_profile', addTags: ['welcomed'] }],
        edges: [...base.edges.slice(0, 2), { from: 'plan', to: 'mark', on: 'else' }],
      },
    });
    expect(draft.status, draft.text).toBe(201);
    const publish = await h.post(`/flows/${draft.body.id}/publish`, {});
    expect(publish.status, publish.text).toBe(400);
    expect(publish.body.error.message).toMatch(/node mark: nodes\.3\.addTags: tag "welcomed" is not a static tag/);
    expect((await h.api(`/flows/${draft.body.id}`)).body.status).toBe('draft');

    // A partial update changes only what it names; an invalid definition changes nothing.
    const before = (await h.api(`/flows/${flowId}`)).body;
    const described = await h.api(`/flows/${flowId}`, {
      method: 'PATCH',
      body: JSON.stringify({ description: 'new' }),
    });
    expect(described.status, described.text).toBe(200);
    expect(described.body).toMatchObject({
      description: 'new',
      definition: before.definition,
      status: 'live',
      version: 1,
    });
    const broken = await h.api(`/flows/${flowId}`, {
      method: 'PATCH',
      body: JSON.stringify({ definition: { ...base, nodes: [] } }),
    });
    expect(broken.status).toBe(400);
    expect((await h.api(`/flows/${flowId}`)).body.definition).toEqual(before.definition);

    // Pause and resume; pausing a draft is a conflict.
    expect((await h.post(`/flows/${draft.body.id}/pause`, {})).status).toBe(409);
    expect((await h.post(`/flows/${flowId}/pause`, {})).body.status).toBe('paused');
    expect((await h.post(`/flows/${flowId}/resume`, {})).body.status).toBe('live');
  });
});
