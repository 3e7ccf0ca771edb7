import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  approveAndPublish,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  sendEvents,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';

// A flow's webhook call whose last attempt never finishes (the worker performing it is killed): pg-boss
// fails the job once its heartbeat lapses and, as the `effects` queue names a dead-letter queue, moves it
// there; the run then takes its `failed` edge instead of awaiting forever. The kill is played by failing
// the job through a second pg-boss client, as the monitor of another server would (Postgres only: the
// embedded database has one connection, its own server's).
describe.skipIf(POSTGRES_SKIP_REASON !== null)('a flow call whose last attempt never finished (postgres)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let svc: Receiver;
  let other: PgBoss;
  const held: ServerResponse[] = [];
  const tag = randomUUID().slice(0, 8);
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });

  beforeAll(async () => {
    db = await createTestDatabase('effects-dead.test.ts', 'postgres');
    cairn = await startTestCairn(db.env);
    api = adminApi(cairn.url);
    // The coupon service takes the call and never answers while the test holds it.
    svc = await startReceiver({ answer: { respond: (res) => held.push(res) } });
    other = new PgBoss({ connectionString: db.url!, schema: 'pgboss', supervise: false, schedule: false });
    await other.start();
  });
  afterAll(async () => {
    for (const res of held) res.destroy();
    await other?.stop({ graceful: false }).catch(() => {});
    await cairn?.close();
    await svc?.close();
    await db?.drop();
  });

  it('takes the failed edge, journaled with why, once pg-boss moves the job to the dead letters', async () => {
    const flow = await post('/flows', {
      definition: {
        version: 1,
        name: `Coupon ${tag}`,
        trigger: { type: 'event', event: 'Cart Abandoned' },
        entry: { reentry: 'once' },
        nodes: [
          { id: 'issue', type: 'webhook', url: svc.url, method: 'POST', keep: { coupon: 'code' } },
          { id: 'done', type: 'exit' },
          { id: 'sorry', type: 'exit' },
        ],
        edges: [
          { from: 'issue', to: 'done', on: 'next' },
          { from: 'issue', to: 'sorry', on: 'failed' },
        ],
      },
    });
    expect(flow.status, flow.text).toBe(201);
    const flowId = flow.body.id;
    expect((await approveAndPublish(cairn.url, flowId)).status).toBe(200);
    const userId = `u-${tag}`;
    await sendEvents(cairn, cairn.demoSource!.writeKey, [{ type: 'track', userId, event: 'Cart Abandoned' }]);
    await until('the call open at the service', async () => (held.length ? true : undefined));
    const [job] = await cairn.sql<{ id: string; key: string }[]>`
      SELECT id::text, data->>'key' AS key FROM pgboss.job WHERE name = 'effects' AND state = 'active'`;
    expect(job).toBeDefined();
    // Its last attempt: the worker doing it dies (played by failing it from elsewhere).
    await cairn.sql`UPDATE pgboss.job SET retry_count = retry_limit WHERE id = ${job!.id}`;
    await other.fail('effects', job!.id, { message: 'worker gone' });

    const runs = await until('the run past the call', async () => {
      const rows = await cairn.sql<{ id: string; status: string; node: string }[]>`
        SELECT id, status, node FROM flow_runs WHERE flow_id = ${flowId}`;
      return rows[0]?.status !== 'awaiting_effect' ? rows : undefined;
    });
    expect(runs).toEqual([expect.objectContaining({ status: 'completed', node: 'sorry' })]);
    const [failed] = await cairn.sql<{ reason: string; to: string }[]>`
      SELECT reason, to_node AS to FROM flow_steps WHERE run_id = ${runs[0]!.id} AND node = 'issue' AND outcome = 'failed'`;
    expect(failed).toMatchObject({ to: 'sorry', reason: expect.stringContaining('its last attempt did not finish') });

    // The call answers after all: its run no longer awaits the key, nothing moves twice.
    for (const res of held.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"code":"late"}');
    await new Promise((r) => setTimeout(r, 1500));
    const [again] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_steps WHERE run_id = ${runs[0]!.id} AND node = 'issue' AND decided`;
    expect(again!.n).toBe(1);
  });
});
