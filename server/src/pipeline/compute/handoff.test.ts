// Issue 15, item 1, for stage 3: audience and tag change events must reach fan-out even when the
// hand-off fails between the change and its send. The send used to happen after the recompute had
// committed: a crash (or a failed send) there left the membership changed and its `audience.entered`
// recorded, and the retried job found nothing left to change, so no destination ever got it. A trigger
// makes the first `fanout` job insert fail, as a process killed at that instant would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  type ApiAnswer,
  adminApi,
  createTestDatabase,
  failNextHandOff,
  POSTGRES_SKIP_REASON,
  postTracking,
  type Receiver,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';

describe.skipIf(POSTGRES_SKIP_REASON !== null)('change events survive a failed hand-off (postgres)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let receiver: Receiver;
  const hits = (): { event?: { event?: string; properties?: { audience?: { key?: string } } } }[] =>
    receiver.accepted.map((r) => r.body);

  beforeAll(async () => {
    db = await createTestDatabase('compute/handoff.test.ts', 'postgres');
    cairn = await startTestCairn(db.env);
    api = adminApi(cairn.url);
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
    await receiver?.close();
  });

  it('a recompute whose hand-off fails is retried whole, and the destination gets audience.entered', async () => {
    const url = receiver.url;
    const dest = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'sync',
        plugin: 'webhook',
        settings: { url },
        filter: { event: ['audience.entered'] },
      }),
    });
    expect(dest.status, dest.text).toBe(201);
    const source = await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'shop' }) });
    const res = await postTracking(cairn, source.body.writeKey, '/track', { userId: 'u-handoff', event: 'Signed In' });
    expect(res.status).toBe(200);
    await until('the profile', async () => (await api('/profiles?userId=u-handoff')).body.data?.[0]?.id);
    await until('the event handed to fan-out', async () => {
      const [row] = await cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'fanout' AND state <> 'completed'`;
      return row!.n === 0;
    });

    // From now on, the first hand-off to fan-out fails (a sequence: it does not roll back with the insert).
    const attempts = await failNextHandOff(cairn.sql, 'fanout');

    const created = await api('/audiences', {
      method: 'POST',
      body: JSON.stringify({ key: 'signed_in', name: 'Signed in', rule: { op: 'performed', event: 'Signed In' } }),
    });
    expect(created.status, created.text).toBe(201);
    // The recompute job is retried after its retry delay (10 s); the test waits up to 60 s.
    await until(
      'audience.entered at the destination',
      async () => hits().some((h) => h.event?.event === 'audience.entered'),
      {
        tries: 600,
        intervalMs: 100,
      },
    );
    expect(await attempts(), 'the failure was injected').toBeGreaterThanOrEqual(2);
    const entered = hits().filter((h) => h.event?.event === 'audience.entered');
    expect(entered).toHaveLength(1);
    expect(entered[0]!.event!.properties?.audience?.key).toBe('signed_in');
  }, 90_000);
});
