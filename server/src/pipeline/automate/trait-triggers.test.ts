import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  approveAndPublish,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  sendEvents,
  settle,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

const Y = new Date().getUTCFullYear() + 1;
const at = (iso: string) => Date.parse(iso.replace('Y', String(Y)));
// Stage 2 and stage 4 caught up: every event attached, no identify or automate job left.
const STAGES = { queues: ['identify', 'automate'] };

// Plain (identify) traits as flow triggers, end to end on each database: a trait set by identify to
// `churn_risk` enters the person once (not again for the same value, a replayed identify job or a
// re-delivered hand-off), a sensitive trait's change enters without its values in the event; runs
// waiting until a date trait are re-planned when the date moves (earlier fires at the new moment); a
// flow on a custom calendar simulates on the calendar's days; calendar writes are audited.
describeOnDatabases('plain trait triggers on %s', (mode) => {
  let h: FlowHarness;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let hook: Receiver;
  let hookId: string;
  let key: string;
  const run = randomUUID().slice(0, 8);
  const clock = movableClock(at('Y-02-01T00:00:00Z'));
  const post = (path: string, body: unknown, method = 'POST') => api(path, { method, body: JSON.stringify(body) });
  const send = (...events: object[]) => sendEvents(cairn, key, events);
  const profileOf = (userId: string) =>
    until(`the profile of ${userId}`, async () => (await api(`/profiles?userId=${userId}`)).body?.data?.[0]?.id);
  const messages = (body: string) =>
    hook.accepted.filter((r) => r.body?.message?.body?.startsWith(body)).map((r) => r.body.message.body as string);
  const waitFor = (body: string, n: number) =>
    until(`${n} "${body}" messages`, async () => (messages(body).length >= n ? messages(body) : undefined));
  const live = async (definition: object) => {
    const created = await post('/flows', { definition });
    expect(created.status, created.text).toBe(201);
    // Submitted, approved by a second admin, published (flow review).
    const published = await approveAndPublish(cairn.url, created.body.id);
    expect(published.status, published.text).toBe(200);
    return created.body.id as string;
  };
  const runCount = async (flowId: string, profileId: string) => {
    const [row] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_runs WHERE flow_id = ${flowId} AND profile_id = ${profileId}::uuid`;
    return row!.n;
  };
  const changeEvents = (profileId: string, trait: string) =>
    cairn.sql<{ id: string; payload: Any }[]>`
      SELECT id::text, payload FROM events
      WHERE event = 'trait.changed' AND profile_id = ${profileId}::uuid AND payload->'properties'->'trait'->>'key' = ${trait}
      ORDER BY id`;
  const traitOf = async (profileId: string, trait: string) => {
    const [row] = await cairn.sql<{ value: unknown }[]>`
      SELECT value FROM profile_traits WHERE profile_id = ${profileId}::uuid AND key = ${trait}`;
    return row?.value;
  };
  // Re-delivers a queue's completed job holding `text` in its data, as pg-boss would after a worker died
  // before completing it; waits until that copy has been worked off.
  const redeliver = async (queue: string, text: string) => {
    const copy = await until<{ id: string }>(`a completed ${queue} job with ${text}`, async () => {
      const [row] = await cairn.sql<{ id: string }[]>`
        INSERT INTO pgboss.job (name, data)
        SELECT name, data FROM pgboss.job
        WHERE name = ${queue} AND data::text LIKE ${`%${text}%`} AND state = 'completed'
        LIMIT 1
        RETURNING id::text`;
      return row;
    });
    await until(`the re-delivered ${queue} job`, async () => {
      const [job] = await cairn.sql<{ state: string }[]>`SELECT state::text FROM pgboss.job WHERE id = ${copy.id}`;
      return job?.state === 'completed';
    });
  };

  beforeAll(async () => {
    h = await flowHarness('trait-triggers.test.ts', mode, { clock });
    ({ cairn, api } = h);
    key = cairn.demoSource!.writeKey;
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
  });
  afterAll(() => h?.close());

  it('an identify setting plan → churn_risk enters the person once: not again for the same value, a replayed job or hand-off', async () => {
    const user = `pat-${run}`;
    await send({ type: 'identify', userId: user, traits: { plan: 'basic', first_name: 'Pat' } });
    const profile = await profileOf(user);
    await settle(cairn.sql, STAGES);
    const flow = await live({
      version: 1,
      name: `Churn ${run}`,
      trigger: { type: 'trait_changed', trait: 'plan', to: { cmp: '=', value: 'churn_risk' } },
      entry: { reentry: 'every_time' },
      nodes: [{ id: 'recall', type: 'send', destination: hookId, message: { body: 'Plan {{ traits.plan }}' } }],
      edges: [],
    });

    await send({ type: 'identify', userId: user, traits: { plan: 'churn_risk' } });
    expect(await waitFor('Plan', 1)).toEqual(['Plan churn_risk']);
    const [change, ...more] = await changeEvents(profile, 'plan');
    expect(more).toEqual([]);
    expect(change!.payload).toMatchObject({
      type: 'track',
      event: 'trait.changed',
      properties: { trait: { key: 'plan', computed: false }, from: 'basic', to: 'churn_risk' },
    });
    expect(await runCount(flow, profile)).toBe(1);

    // The identify job again, after its events were folded once (a crash between the fold and the job's
    // completion): the chunk is folded again from the stored value before it, and records the same event.
    const [identify] = await cairn.sql<{ id: string }[]>`
      SELECT id::text FROM events
      WHERE profile_id = ${profile}::uuid AND type = 'identify' AND payload->'traits'->>'plan' = 'churn_risk'`;
    await cairn.sql`UPDATE profile_traits SET value = '"basic"'::jsonb WHERE profile_id = ${profile}::uuid AND key = 'plan'`;
    await cairn.sql`UPDATE events SET processed_at = NULL WHERE id = ${identify!.id}`;
    await redeliver('identify', `"${identify!.id}"`);
    await settle(cairn.sql, STAGES);
    expect(await traitOf(profile, 'plan')).toBe('churn_risk');
    expect((await changeEvents(profile, 'plan')).map((e) => e.id)).toEqual([change!.id]);
    // The change's hand-off delivered twice: its run exists, nobody enters again.
    await redeliver('automate', `"${change!.id}"`);
    expect(await runCount(flow, profile)).toBe(1);

    // The same value again is no change.
    await send({ type: 'identify', userId: user, traits: { plan: 'churn_risk' } });
    await settle(cairn.sql, STAGES);
    expect(await changeEvents(profile, 'plan')).toHaveLength(1);
    expect(await runCount(flow, profile)).toBe(1);

    // Away and back is two changes, the second entering again (every_time).
    await send({ type: 'identify', userId: user, traits: { plan: 'pro' } });
    await until('plan pro', async () => (await traitOf(profile, 'plan')) === 'pro');
    await send({ type: 'identify', userId: user, traits: { plan: 'churn_risk' } });
    expect(await waitFor('Plan', 2)).toEqual(['Plan churn_risk', 'Plan churn_risk']);
    expect((await changeEvents(profile, 'plan')).map((e) => e.payload.properties.to)).toEqual([
      'churn_risk',
      'pro',
      'churn_risk',
    ]);
    expect(await runCount(flow, profile)).toBe(2);
    expect((await post(`/flows/${flow}/pause`, {})).status).toBe(200);
  });

  it('a sensitive trait’s change enters the person without its values in the event; comparing its value is refused', async () => {
    const user = `sam-${run}`;
    await send({ type: 'identify', userId: user, traits: { email: `sam.${run}@example.com`, first_name: 'Sam' } });
    const profile = await profileOf(user);
    await settle(cairn.sql, STAGES);
    const definition = (to?: object) => ({
      version: 1,
      name: `Email ${run} ${to ? 'to' : 'any'}`,
      trigger: { type: 'trait_changed', trait: 'email', ...(to ? { to } : {}) },
      entry: { reentry: 'every_time' },
      nodes: [{ id: 'hello', type: 'send', destination: hookId, message: { body: 'Email {{ traits.first_name }}' } }],
      edges: [],
    });
    const compared = await post('/flows', { definition: definition({ cmp: '=', value: 'x@example.com' }) });
    expect(compared.status, compared.text).toBe(201);
    // Refused when submitted (checked as publish checks).
    const refused = await approveAndPublish(cairn.url, compared.body.id);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('sensitive');
    const flow = await live(definition());

    const address = `samuel.${run}@example.com`;
    await send({ type: 'identify', userId: user, traits: { email: address } });
    expect(await waitFor('Email', 1)).toEqual(['Email Sam']);
    const [change] = await changeEvents(profile, 'email');
    const props = change!.payload.properties;
    expect(props.trait).toEqual({ key: 'email', computed: false });
    // Blind indexes (keyed hashes), different for different addresses: never the addresses.
    expect(props.from).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(props.to).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(props.to).not.toBe(props.from);
    expect(JSON.stringify(change!.payload)).not.toContain('example.com');
    expect(await runCount(flow, profile)).toBe(1);
    expect((await post(`/flows/${flow}/pause`, {})).status).toBe(200);
  });

  it('a run waiting until a date trait − 3 days is re-planned when the date moves: earlier fires at the new moment', async () => {
    clock.now = at('Y-02-01T00:00:00Z');
    const user = `rae-${run}`;
    await send({ type: 'identify', userId: user, traits: { renews_at: `${Y}-03-20`, first_name: 'Rae' } });
    const profile = await profileOf(user);
    await settle(cairn.sql, STAGES);
    const flow = await live({
      version: 1,
      name: `Renewal ${run}`,
      timezone: 'UTC',
      trigger: { type: 'event', event: 'Subscribed' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'until', type: 'wait_until', until: { trait: 'renews_at', offsetDays: -3, time: '09:00' } },
        { id: 'remind', type: 'send', destination: hookId, message: { body: 'Renewal {{ traits.renews_at }}' } },
      ],
      edges: [{ from: 'until', to: 'remind', on: 'next' }],
    });
    const dueOf = async () => {
      const [row] = await cairn.sql<{ due: Date | null; node: string }[]>`
        SELECT due, node FROM flow_runs WHERE flow_id = ${flow} AND profile_id = ${profile}::uuid`;
      return row?.due ? new Date(row.due).toISOString() : undefined;
    };
    const iso = (s: string) => new Date(at(s)).toISOString();
    await send({ type: 'track', userId: user, event: 'Subscribed' });
    await until('the run waiting for 17 March', async () => (await dueOf()) === iso('Y-03-17T09:00:00Z'));

    // Moved earlier: the run's moment moves with it.
    await send({ type: 'identify', userId: user, traits: { renews_at: `${Y}-02-12` } });
    await until('re-planned to 9 February', async () => (await dueOf()) === iso('Y-02-09T09:00:00Z'));
    // Moved a little later again: re-planned too (the timer does not wake it for nothing).
    await send({ type: 'identify', userId: user, traits: { renews_at: `${Y}-02-14` } });
    await until('re-planned to 11 February', async () => (await dueOf()) === iso('Y-02-11T09:00:00Z'));
    // Another trait changing leaves the moment where it was (nothing journaled).
    await send({ type: 'identify', userId: user, traits: { first_name: 'Raelynn' } });
    await settle(cairn.sql, STAGES);
    expect(await dueOf()).toBe(iso('Y-02-11T09:00:00Z'));
    const replans = await cairn.sql<{ reason: string }[]>`
      SELECT s.reason FROM flow_steps s JOIN flow_runs r ON r.id = s.run_id
      WHERE r.flow_id = ${flow} AND s.node = 'until' ORDER BY s.id`;
    expect(replans.map((s) => s.reason.match(/until (\S+)/)?.[1]?.slice(0, 10))).toEqual([
      `${Y}-03-17`,
      `${Y}-02-09`,
      `${Y}-02-11`,
    ]);

    clock.now = at('Y-02-11T09:00:01Z');
    expect(await waitFor('Renewal', 1)).toEqual([`Renewal ${Y}-02-14`]);
    const [row] = await cairn.sql<{ status: string }[]>`
      SELECT status FROM flow_runs WHERE flow_id = ${flow} AND profile_id = ${profile}::uuid`;
    expect(row?.status).toBe('completed');
    expect((await post(`/flows/${flow}/pause`, {})).status).toBe(200);
  });

  it('simulates a flow on a custom calendar’s day; calendar writes are audited with before and after', async () => {
    const audit = async (resourceId: string) =>
      cairn.sql<{ action: string; before: Any; after: Any }[]>`
        SELECT action, before, after FROM audit_log WHERE resource_type = 'calendar' AND resource_id = ${resourceId}
        ORDER BY id`;
    const fest = `fest_${run}`;
    const created = await post('/calendars', { key: fest, name: 'Festivals', days: [{ date: `${Y}-06-18` }] });
    expect(created.status, created.text).toBe(201);
    const replaced = await post(
      `/calendars/${fest}`,
      { name: 'Festivals', days: [{ date: `${Y}-06-18`, name: '618' }, { date: '11-11' }] },
      'PUT',
    );
    expect(replaced.status, replaced.text).toBe(200);
    const spare = `spare_${run}`;
    expect((await post('/calendars', { key: spare, name: 'Spare', days: [] })).status).toBe(201);
    expect((await api(`/calendars/${spare}`, { method: 'DELETE' })).status).toBe(204);

    const [create, update] = await audit(fest);
    expect(create).toMatchObject({ action: 'calendar.create', before: null, after: { key: fest, name: 'Festivals' } });
    expect(update?.action).toBe('calendar.update');
    expect(update?.before.days).toEqual([{ date: `${Y}-06-18` }]);
    expect(update?.after.days).toEqual([{ date: `${Y}-06-18`, name: '618' }, { date: '11-11' }]);
    expect((await audit(spare)).map((a) => [a.action, a.before?.key ?? null, a.after?.key ?? null])).toEqual([
      ['calendar.create', null, spare],
      ['calendar.delete', spare, null],
    ]);

    const draft = await post('/flows', {
      definition: {
        version: 1,
        name: `Fest ${run}`,
        trigger: { type: 'calendar', calendar: { custom: fest }, offsetDays: -1, time: '10:00', timezone: 'UTC' },
        entry: { reentry: 'every_time' },
        nodes: [{ id: 'tease', type: 'send', destination: hookId, message: { body: 'Fest {{ traits.first_name }}' } }],
        edges: [],
      },
    });
    expect(draft.status, draft.text).toBe(201);
    const simulated = await post(`/flows/${draft.body.id}/simulate`, {
      profile: { traits: { first_name: 'Sim' } },
      start: new Date(at('Y-06-01T00:00:00Z')).toISOString(),
      horizon: { days: 30 },
      use: 'draft',
    });
    expect(simulated.status, simulated.text).toBe(200);
    const sim = simulated.body.simulation;
    // The day before 18 June at 10:00 UTC (the calendar's day, not a public holiday).
    expect(sim.entered?.at).toBe(at('Y-06-17T10:00:00Z'));
    expect(sim.messages.map((m: Any) => [m.at, m.body])).toEqual([[at('Y-06-17T10:00:00Z'), 'Fest Sim']]);
  });
});
