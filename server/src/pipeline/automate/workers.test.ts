import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  describeOnPostgres,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  sendEvents,
  until,
} from '../../testing/index.ts';

// More than two timer batches (500 runs each), so both timers claim at the same time.
const PEOPLE = 1200;

// Two servers on one database, each with its automate consumer and its timer, sharing one clock: people enter
// through both, their waits come due at once, and both timers claim runs (FOR UPDATE SKIP LOCKED). Every
// person gets exactly one message, every run is decided once per node, nothing deadlocks.
describeOnPostgres('flows with two servers on one database (Postgres)', (mode) => {
  let h: FlowHarness;
  let a: Cairn;
  let b: Cairn;
  let hook: Receiver;
  let hookId: string;
  const clock = movableClock();
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    h = await flowHarness('automate/workers.test.ts', mode, { clock });
    a = h.cairn;
    b = await h.startServer();
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
  });
  afterAll(() => h?.close());

  it('advances every run once and sends each message once', async () => {
    const flowId = await h.publish({
      version: 1,
      name: `Onboarding ${run}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'day1', type: 'wait', duration: { days: 1 } },
        { id: 'first', type: 'send', destination: hookId, message: { body: 'Day 1' } },
        { id: 'day3', type: 'wait', duration: { days: 2 } },
        { id: 'second', type: 'send', destination: hookId, message: { body: 'Day 3' } },
      ],
      edges: [
        { from: 'day1', to: 'first', on: 'next' },
        { from: 'first', to: 'day3', on: 'next' },
        { from: 'day3', to: 'second', on: 'next' },
      ],
    });

    // Half the sign-ups through each server, in batches.
    const users = Array.from({ length: PEOPLE }, (_, i) => `p${i}-${run}`);
    for (let i = 0; i < PEOPLE; i += 50) {
      const target = (i / 50) % 2 ? b : a;
      await sendEvents(
        target,
        target.demoSource!.writeKey,
        users.slice(i, i + 50).map((userId) => ({ type: 'track', userId, event: 'Signed Up' })),
      );
    }
    const count = async (where: string) => {
      const [row] = await a.sql.unsafe<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM flow_runs WHERE flow_id = $1 AND ${where}`,
        [flowId],
      );
      return row!.n;
    };
    await until('everyone waiting at day 1', async () => (await count(`node = 'day1'`)) === PEOPLE, { tries: 600 });

    // The webhook also gets the sign-up events themselves: messages are the requests with `message`.
    const messages = () => hook.accepted.filter((r) => r.body?.message);
    clock.advance(86_400_000 + 1000);
    await until('every day-1 message', async () => messages().length >= PEOPLE, { tries: 1200 });
    await until('everyone waiting at day 3', async () => (await count(`node = 'day3'`)) === PEOPLE);
    clock.advance(2 * 86_400_000 + 1000);
    await until('every day-3 message', async () => messages().length >= 2 * PEOPLE, { tries: 1200 });
    await until('every run completed', async () => (await count(`status = 'completed'`)) === PEOPLE);
    await new Promise((r) => setTimeout(r, 1500));

    const keys = messages().map((r) => String(r.headers['idempotency-key']));
    expect(keys).toHaveLength(2 * PEOPLE);
    expect(new Set(keys).size).toBe(2 * PEOPLE);
    const bodies = messages().map((r) => `${r.body.profile.userId}:${r.body.message.body}`);
    expect(new Set(bodies).size).toBe(2 * PEOPLE);
    // Each run decided each node once, and its journal is the same path for everyone.
    const [journal] = await a.sql<{ decided: number; runs: number; paths: number }[]>`
      WITH per_run AS (
        SELECT s.run_id, string_agg(s.node || ':' || s.outcome, ' ' ORDER BY s.id) AS path,
          count(*) FILTER (WHERE s.decided) AS decided
        FROM flow_steps s JOIN flow_runs r ON r.id = s.run_id
        WHERE r.flow_id = ${flowId}
        GROUP BY s.run_id)
      SELECT sum(decided)::int AS decided, count(*)::int AS runs, count(DISTINCT path)::int AS paths FROM per_run`;
    expect(journal).toEqual({ decided: 4 * PEOPLE, runs: PEOPLE, paths: 1 });
  });
});
