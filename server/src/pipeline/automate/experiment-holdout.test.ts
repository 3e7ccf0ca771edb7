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

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const PEOPLE = 30;

// A test with a control group decides (here: the deadline's default); the control group stays held out
// after it — the people the test assigned to the control, entering again, still take the control and are
// never sent the variant that won — so the lift can still be measured against them.
describeOnDatabases('experiment control group after the decision on %s', (mode) => {
  let h: FlowHarness;
  let hook: Receiver;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock(Date.now() - 5 * DAY);
  const trigger = `Came ${tag}`;

  beforeAll(async () => {
    h = await flowHarness('experiment-holdout.test.ts', mode, { clock });
    let destinationId: string;
    ({ receiver: hook, destinationId } = await h.webhook());
    flowId = await h.publish({
      version: 1,
      name: `Holdout ${tag}`,
      trigger: { type: 'event', event: trigger },
      entry: { reentry: 'every_time' },
      nodes: [
        {
          id: 'ab',
          type: 'experiment',
          variants: [{ name: 'Offer', percent: 50 }],
          control: { percent: 50 },
          sample: 100,
          goal: { event: { event: `Bought ${tag}` }, withinSeconds: 3600 },
          decide: { deadlineDays: 1, minPerArm: 1000 },
        },
        { id: 'offer', type: 'send', destination: destinationId, message: { body: 'offer {{ event.userId }}' } },
        { id: 'done', type: 'exit' },
      ],
      edges: [
        { from: 'ab', to: 'offer', on: 'variant:0' },
        { from: 'ab', to: 'done', on: 'control' },
      ],
    });
  });
  afterAll(() => h?.close());

  const sql = () => h.cairn.sql;
  const offers = (userId: string) => hook.accepted.filter((r) => r.body?.message?.body === `offer ${userId}`).length;
  const users = Array.from({ length: PEOPLE }, (_, i) => `h-${tag}-${i}`);
  const wave = async (runs: number) => {
    const timestamp = new Date(clock.now).toISOString();
    await h.send(...users.map((userId) => ({ type: 'track', userId, event: trigger, timestamp })));
    await until(
      'every run ended',
      async () => {
        const [r] = await sql()<{ n: number; active: number }[]>`
          SELECT count(*)::int AS n, count(*) FILTER (WHERE status IN ('waiting', 'awaiting_effect'))::int AS active
          FROM flow_runs WHERE flow_id = ${flowId}`;
        return r!.n === runs && r!.active === 0 ? true : undefined;
      },
      { tries: 600 },
    );
  };

  it('keeps the control people held out once decided; the others get the decided variant', async () => {
    await wave(PEOPLE);
    const arms = await sql()<{ userId: string; arm: string }[]>`
      SELECT i.value AS "userId", p.arm
      FROM flow_experiment_people p JOIN identities i ON i.profile_id = p.profile_id AND i.type = 'userId'
      WHERE p.flow_id = ${flowId}`;
    expect(arms).toHaveLength(PEOPLE);
    const control = arms.filter((a) => a.arm === 'control').map((a) => a.userId);
    const offered = arms.filter((a) => a.arm === '0').map((a) => a.userId);
    expect(control.length).toBeGreaterThan(0);
    expect(offered.length).toBeGreaterThan(0);
    await until('the offers of the test', async () => (offered.every((u) => offers(u) === 1) ? true : undefined), {
      tries: 600,
    });

    // The deadline passes with no significant winner: the default (the offer), inconclusive.
    clock.advance(DAY + MINUTE);
    await until(
      'the decision',
      async () => {
        const e = (await h.api(`/flows/${flowId}/experiments`)).body.data?.[0];
        return e?.status.decided ? true : undefined;
      },
      { tries: 600 },
    );

    // Everyone comes again: the offer people get it again, the control people take the control.
    clock.advance(HOUR);
    await wave(2 * PEOPLE);
    await until(
      'the offers after the decision',
      async () => (offered.every((u) => offers(u) === 2) ? true : undefined),
      {
        tries: 600,
      },
    );
    const after = await sql()<{ userId: string; outcome: string; phase: string }[]>`
      SELECT i.value AS "userId", s.outcome, s.detail->>'phase' AS phase
      FROM flow_steps s
      JOIN flow_runs r ON r.id = s.run_id
      JOIN identities i ON i.profile_id = r.profile_id AND i.type = 'userId'
      WHERE r.flow_id = ${flowId} AND s.node = 'ab' AND s.detail->>'phase' <> 'test'`;
    expect(after).toHaveLength(PEOPLE);
    for (const a of after)
      expect([a.userId, a.outcome, a.phase]).toEqual(
        control.includes(a.userId) ? [a.userId, 'control', 'holdout'] : [a.userId, 'variant:0', 'winner'],
      );
    for (const u of control) expect(offers(u)).toBe(0);
  });
});
