import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  describeOnDatabases,
  describeOnPostgres,
  type FlowHarness,
  flowHarness,
  movableClock,
  until,
} from '../../testing/index.ts';

const HOUR = 3_600_000;

// A person with 100 points and two spends of 80, each allowed only while the balance covers it: one
// spends, the other finds 20 and goes its `insufficient` way — never both, whatever the timing. Two
// ways they meet: two flows started by one event (stepped in one transaction), and a timer step racing
// an event's step in two transactions (each read the balance before the other wrote).
const spendFlow = (name: string, trigger: string, wait: boolean) => ({
  version: 1,
  name,
  trigger: { type: 'event', event: trigger },
  entry: { reentry: 'once' },
  nodes: [
    ...(wait ? [{ id: 'later', type: 'wait', duration: { hours: 1 } }] : []),
    { id: 'spend', type: 'points', delta: -80, reason: name },
    { id: 'spent', type: 'exit' },
    { id: 'short', type: 'exit' },
  ],
  edges: [
    ...(wait ? [{ from: 'later', to: 'spend', on: 'next' }] : []),
    { from: 'spend', to: 'spent', on: 'next' },
    { from: 'spend', to: 'short', on: 'insufficient' },
  ],
});

async function seed(h: FlowHarness, userId: string): Promise<string> {
  await h.send({ type: 'identify', userId, traits: { plan: 'gold' } });
  const id = await h.profileOf(userId);
  const res = await h.post(`/profiles/${id}/points`, { delta: 100, reason: 'welcome', key: `seed-${userId}` });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** The person's ledger debits and the runs' ends (`spent`/`short`) once both runs ended. */
async function outcome(h: FlowHarness, profileId: string, flows: string[]) {
  const ends = await until('both runs ended', async () => {
    const rows = await h.cairn.sql<{ node: string }[]>`
      SELECT state->>'node' AS node, status FROM flow_runs
      WHERE profile_id = ${profileId} AND flow_id = ANY(${flows}) AND status IN ('completed', 'exited')`;
    return rows.length === 2 ? rows : undefined;
  });
  const debits = await h.cairn.sql<{ delta: number }[]>`
    SELECT delta::int AS delta FROM points_ledger WHERE profile_id = ${profileId} AND delta < 0`;
  const balance = (await h.api(`/profiles/${profileId}/points`)).body.balance as number;
  return { runs: ends.length, debits: debits.map((d) => d.delta), balance };
}

describeOnDatabases('points spent by two flows of one event on %s', (mode) => {
  let h: FlowHarness;
  const tag = randomUUID().slice(0, 8);
  beforeAll(async () => {
    h = await flowHarness('points-race.test.ts', mode);
  });
  afterAll(() => h?.close());

  it('lets one of two spends of the same moment through, never both', async () => {
    const a = await h.publish(spendFlow(`Spend A ${tag}`, `Redeem ${tag}`, false));
    const b = await h.publish(spendFlow(`Spend B ${tag}`, `Redeem ${tag}`, false));
    const id = await seed(h, `one-event-${tag}`);
    await h.send({ type: 'track', userId: `one-event-${tag}`, event: `Redeem ${tag}` });
    expect(await outcome(h, id, [a, b])).toEqual({ runs: 2, debits: [-80], balance: 20 });
  });
});

// Postgres only: two transactions at once. The test makes them meet: it holds the person's sends lock
// (a cap is set, so every step takes it after reading the person's facts) until both steps are under
// way — the timer's (flow A, after its wait) and the event's (flow B) — then lets them go.
describeOnPostgres('points spent by a timer step and an event step at once on %s', (mode) => {
  let h: FlowHarness;
  const tag = randomUUID().slice(0, 8);
  const clock = movableClock(Date.now() - 2 * HOUR);
  beforeAll(async () => {
    h = await flowHarness('points-race-concurrent.test.ts', mode, { clock });
    const caps = await h.post(
      '/flow-governance',
      { caps: [{ channel: 'sms', max: 3, windowHours: 24 }], quietHours: [] },
      'PUT',
    );
    expect(caps.status, caps.text).toBe(200);
  });
  afterAll(() => h?.close());

  it('lets one of the two spends through, never both', async () => {
    const userId = `race-${tag}`;
    const a = await h.publish(spendFlow(`Later A ${tag}`, `Joined ${tag}`, true));
    const b = await h.publish(spendFlow(`Now B ${tag}`, `Redeem ${tag}`, false));
    const id = await seed(h, userId);
    await h.send({ type: 'track', userId, event: `Joined ${tag}`, timestamp: new Date(clock.now).toISOString() });
    await until('A waits', async () => ((await h.runsOf(a, id))[0]?.status === 'waiting' ? true : undefined));

    const key = createHash('sha1').update(`sends:${id}`).digest().readInt32BE(0);
    const released = h.cairn.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(8, ${key}::int)`;
      // A's wait is over and B's event comes: both steps start while the lock is held.
      clock.advance(HOUR + 1000);
      await h.send({ type: 'track', userId, event: `Redeem ${tag}` });
      await until(
        'both steps waiting on a lock',
        async () => {
          const [w] = await tx<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
          return w!.n >= 2 ? true : undefined;
        },
        { tries: 600 },
      );
    });
    await released;
    expect(await outcome(h, id, [a, b])).toEqual({ runs: 2, debits: [-80], balance: 20 });
  });
});
