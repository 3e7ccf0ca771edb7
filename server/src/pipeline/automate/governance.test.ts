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

// biome-ignore lint/suspicious/noExplicitAny: runs and steps as the API answers them, checked by assertions
type Any = any;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// The seed's tier strategy across three live flows, end to end: the high-value tier gets at most 1 message
// a day, the dormant tier at most 2 a month, everyone else is not capped. Post-purchase (priority 3),
// newsletter (2) and browse (1, skips when capped) all send through one webhook; events are posted to the
// tracking API and the clock is moved; what counts is the engine's send decisions (their clock time in
// the journal) and what the receiver got.
describeOnDatabases('caps, tiers and priority across flows on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock();
  const flows: Record<string, string> = {};
  const ids: Record<string, string> = {};
  const who = { vip: `vip-${tag}`, dormant: `dormant-${tag}`, plain: `plain-${tag}` };

  beforeAll(async () => {
    h = await flowHarness('governance.test.ts', mode, { clock });
    const { receiver, destinationId } = await h.webhook();
    hook = receiver;
    for (const tier of ['high_value', 'dormant'])
      expect(
        (
          await h.post('/audiences', {
            key: tier,
            name: tier,
            rule: { op: 'trait', trait: 'tier', cmp: '=', value: tier },
          })
        ).status,
      ).toBe(201);
    const put = await h.post(
      '/flow-governance',
      {
        caps: [
          { channel: 'webhook', max: 1, windowHours: 24, audience: 'high_value' },
          { channel: 'webhook', max: 2, windowHours: 720, audience: 'dormant' },
        ],
        quietHours: [],
      },
      'PUT',
    );
    expect(put.status, put.text).toBe(200);
    const make = (name: string, event: string, priority: number, onCap: 'defer' | 'skip') => ({
      version: 1,
      name: `${name} ${tag}`,
      priority,
      trigger: { type: 'event', event },
      entry: { reentry: 'every_time' },
      nodes: [{ id: 'send', type: 'send', destination: destinationId, message: { body: name }, onCap }],
      edges: [],
    });
    flows.purchase = await h.publish(make('purchase', 'Order Completed', 3, 'defer'));
    flows.newsletter = await h.publish(make('newsletter', 'Newsletter Due', 2, 'defer'));
    flows.browse = await h.publish(make('browse', 'Product Viewed', 1, 'skip'));
    for (const [k, userId] of Object.entries(who)) {
      const tier = k === 'vip' ? 'high_value' : k === 'dormant' ? 'dormant' : 'regular';
      await h.send({ type: 'identify', userId, traits: { tier } });
      ids[k] = await h.profileOf(userId);
    }
    for (const tier of ['high_value', 'dormant'])
      await until(`a member of ${tier}`, async () => ((await h.api(`/audiences/${tier}`)).body.members === 1 ? 1 : 0));
  });
  afterAll(() => h?.close());

  const runs = async (k: string) =>
    (await Promise.all(Object.values(flows).map((f) => h.runsOf(f, ids[k]!)))).flat() as Any[];
  const steps = async (k: string) =>
    (await runs(k)).flatMap((r) =>
      r.steps.map((s: Any) => ({ ...s, flowId: r.flowId, at: typeof s.at === 'number' ? s.at : Date.parse(s.at) })),
    );
  const sent = async (k: string) =>
    (await steps(k))
      .filter((s) => s.node === 'send' && s.outcome === 'next')
      .sort((a, b) => a.at - b.at)
      .map((s) => ({ flow: Object.keys(flows).find((f) => flows[f] === s.flowId), at: s.at, key: s.values.key }));
  // Posts an event and waits until the run it starts has decided its send (sent, skipped or held).
  const post = async (k: string, event: string) => {
    const before = (await runs(k)).length;
    await h.send({ type: 'track', userId: who[k as keyof typeof who], event });
    await until(`${k}: ${event} decided`, async () => {
      const all = await runs(k);
      return all.length > before && all.every((r) => r.steps.some((s: Any) => s.node === 'send')) ? true : undefined;
    });
  };
  const dueRunsDone = (k: string) =>
    until(`${k}: no run due`, async () =>
      (await runs(k)).every(
        (r) => r.status !== 'waiting' || (typeof r.due === 'number' ? r.due : Date.parse(r.due)) > clock.now,
      )
        ? true
        : undefined,
    );
  const maxInWindow = (times: number[], window: number) =>
    Math.max(0, ...times.map((t) => times.filter((u) => u > t - window && u <= t).length));

  it('high value: 1 a day (the newsletter waits for the next day, browse is skipped); dormant: 2 a month, purchase before the newsletter when both come due; others not capped', async () => {
    const t0 = clock.now;
    // Day 0: the vip orders, browses, gets the newsletter trigger; the dormant one orders; the plain one all three.
    await post('vip', 'Order Completed');
    clock.advance(HOUR);
    await post('vip', 'Product Viewed');
    await post('vip', 'Newsletter Due');
    await post('dormant', 'Order Completed');
    for (const e of ['Order Completed', 'Product Viewed', 'Newsletter Due']) await post('plain', e);
    clock.advance(DAY);
    await post('dormant', 'Newsletter Due'); // the second this month
    clock.advance(DAY);
    await post('dormant', 'Product Viewed'); // browse: skipped
    await post('dormant', 'Newsletter Due'); // held until a slot frees (30 days after the first)
    clock.advance(HOUR);
    await post('dormant', 'Order Completed'); // held too, for the same moment
    // The vip's newsletter went out a day after the order, by the timer.
    await dueRunsDone('vip');
    // Day 30 + : the first dormant send leaves the window; purchase (3) takes the slot before the newsletter (2),
    // which waits for the next one (the second send leaves a day later).
    clock.now = t0 + 30 * DAY + 2 * HOUR;
    await dueRunsDone('dormant');
    clock.now = t0 + 31 * DAY + 2 * HOUR;
    await dueRunsDone('dormant');

    const vip = await sent('vip');
    expect(vip.map((s) => s.flow)).toEqual(['purchase', 'newsletter']);
    expect(vip[1]!.at - vip[0]!.at).toBeGreaterThanOrEqual(DAY);
    expect(
      maxInWindow(
        vip.map((s) => s.at),
        DAY,
      ),
    ).toBe(1);
    const vipSteps = await steps('vip');
    expect(vipSteps.find((s) => s.node === 'send' && s.outcome === 'capped')).toMatchObject({
      values: { held: 'capped', channel: 'webhook' },
    });
    expect(vipSteps.find((s) => s.outcome === 'waiting' && s.values?.held === 'capped')?.reason).toContain(
      'at most 1 webhook message in 24 hours for audience high_value',
    );

    const dormant = await sent('dormant');
    expect(dormant.map((s) => s.flow)).toEqual(['purchase', 'newsletter', 'purchase', 'newsletter']);
    expect(
      maxInWindow(
        dormant.map((s) => s.at),
        30 * DAY,
      ),
    ).toBe(2);
    // Both held runs came due at the same moment (the first send + 30 days); the higher priority went first.
    const [, , third, fourth] = dormant;
    expect(third!.at - dormant[0]!.at).toBeGreaterThanOrEqual(30 * DAY);
    expect(fourth!.at - dormant[1]!.at).toBeGreaterThanOrEqual(30 * DAY);
    const dormantSteps = await steps('dormant');
    expect(dormantSteps.filter((s) => s.node === 'send' && s.outcome === 'capped')).toHaveLength(1);

    // Not in a tier: all three at the same moment.
    expect((await sent('plain')).map((s) => s.flow).sort()).toEqual(['browse', 'newsletter', 'purchase']);

    // The receiver got each decided message once, and nothing else.
    const keys = [...vip, ...dormant, ...(await sent('plain'))].map((s) => s.key).sort();
    await until('every message at the receiver', async () =>
      hook.accepted.filter((r) => r.body?.message).length >= keys.length ? true : undefined,
    );
    const received = hook.accepted.filter((r) => r.body?.message).map((r) => r.body.idempotencyKey as string);
    expect([...new Set(received)].sort()).toEqual(keys);
    expect(received).toHaveLength(keys.length);
  });

  it('the settings are read back, a bad one refused with its path, and the write audited', async () => {
    const got = await h.api('/flow-governance');
    expect(got.body).toMatchObject({ caps: [{ channel: 'webhook', max: 1 }, { max: 2 }], quietHours: [] });
    expect(got.body.updatedBy).toEqual(expect.any(String));
    const bad = await h.post(
      '/flow-governance',
      { caps: [], quietHours: [{ channel: 'sms', start: '25:00', end: '09:00' }] },
      'PUT',
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('quietHours.0.start');
    const audit = await h.api('/audit?action=flow_governance.update');
    expect(audit.body.data?.[0]).toMatchObject({ action: 'flow_governance.update' });
  });
});
