// Issue 15, item 1, for the admin API and upgrades. The API used to hand staff changes (consent, unmerge) to
// compute after its transaction had committed: a crash there left the change recorded and its audiences never
// told. Now the hand-off is inside the transaction: a failed hand-off fails the request and records nothing, and
// the client's retry does both. And jobs that an older version left in queues it named after their producers are
// moved, at start, to the queues that consume their facts now.
import { PgBoss } from 'pg-boss';
import { afterAll, describe, expect, it } from 'vitest';
import {
  adminApi,
  createTestDatabase,
  failNextHandOff,
  POSTGRES_SKIP_REASON,
  postTracking,
  startTestCairn,
  type TestDatabase,
  until,
} from '../testing/index.ts';

describe.skipIf(POSTGRES_SKIP_REASON !== null)('hand-offs are part of the transaction (postgres)', () => {
  const dbs: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });

  it('consent recorded by staff: a failed hand-off records nothing; the retry records it and the audience follows', async () => {
    const db = await createTestDatabase('jobs/handoff.test.ts consent', 'postgres');
    dbs.push(db);
    const cairn = await startTestCairn(db.env);
    try {
      const api = adminApi(cairn.url);
      const source = await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'shop' }) });
      expect((await postTracking(cairn, source.body.writeKey, '/identify', { userId: 'u-consent' })).status).toBe(200);
      const id = await until('the profile', async () => (await api('/profiles?userId=u-consent')).body.data?.[0]?.id);
      const audience = await api('/audiences', {
        method: 'POST',
        body: JSON.stringify({
          key: 'opted_in',
          name: 'Opted in',
          rule: { op: 'consent', purpose: 'marketing', state: 'granted' },
        }),
      });
      expect(audience.status, audience.text).toBe(201);
      await until('the audience computed', async () => (await api('/audiences/opted_in')).body.computedAt);

      // The next hand-off to compute fails, as a process killed between the change and its send would.
      await failNextHandOff(cairn.sql, 'compute');
      const put = () =>
        api(`/profiles/${id}/consent`, { method: 'PUT', body: JSON.stringify({ purposes: { marketing: true } }) });
      const failed = await put();
      expect(failed.status, failed.text).toBe(500);
      const history = await api(`/profiles/${id}/consent`);
      expect(history.body.data, 'nothing recorded without its hand-off').toEqual([]);

      const retried = await put();
      expect(retried.status, retried.text).toBe(200);
      expect((await api(`/profiles/${id}/consent`)).body.data).toHaveLength(1);
      await until(
        'the profile in the audience',
        async () => (await api(`/audiences/opted_in/explain/${id}`)).body.member,
      );
    } finally {
      await cairn.close();
    }
  }, 90_000);

  it('jobs left in the queues of an earlier version are moved to their consumers at start, and run', async () => {
    const db = await createTestDatabase('jobs/handoff.test.ts upgrade', 'postgres');
    dbs.push(db);
    // An ingest node stores an event; no worker runs, so its job waits in `identify`.
    const ingest = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest' });
    let writeKey: string;
    try {
      const api = adminApi(ingest.url);
      writeKey = (await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'shop' }) })).body.writeKey;
      expect((await postTracking(ingest, writeKey, '/identify', { userId: 'u-upgrade' })).status).toBe(200);
    } finally {
      await ingest.close();
    }
    // Make it look like an earlier version's backlog: the job in `ingest.committed`, in that version's shape,
    // beside a job of every other retired queue.
    const boss = new PgBoss({ connectionString: db.url!, schema: 'pgboss', supervise: false, schedule: false });
    await boss.start();
    try {
      const jobs = await boss.fetch<{ ids: string[] }>('identify', { batchSize: 10 });
      expect(jobs).toHaveLength(1);
      await boss.deleteJob(
        'identify',
        jobs.map((j) => j.id),
      );
      for (const name of [
        'ingest.committed',
        'identify.done',
        'compute.profiles',
        'compute.definition',
        'profile.erased',
      ])
        await boss.createQueue(name);
      await boss.send('ingest.committed', { ids: jobs[0]!.data.ids });
      await boss.send('compute.profiles', { ids: [], profileIds: ['00000000-0000-4000-8000-000000000001'] });
      await boss.send('compute.definition', { kind: 'audience', key: 'gone' });
      await boss.send('identify.done', { ids: ['-1'] });
      await boss.send('profile.erased', {
        erasureId: 'e1',
        profileIds: [],
        identities: [],
        requestedBy: 'test',
        destinationIds: [],
      });
    } finally {
      await boss.stop({ graceful: false, close: true });
    }

    // This version's ingest node (no workers) moves them at start, each in its new shape.
    const upgraded = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest' });
    try {
      const moved = await upgraded.sql<{ name: string; data: Record<string, unknown> }[]>`
        SELECT name, data FROM pgboss.job WHERE state < 'completed' ORDER BY name`;
      expect(moved.map((m) => [m.name, m.data.topic])).toEqual([
        ['compute', 'profiles.changed'],
        ['fanout', 'events.attached'],
        ['forget', 'profile.erased'],
        ['identify', 'events.stored'],
        ['recompute', 'definition.changed'],
      ]);
      expect(moved.find((m) => m.name === 'compute')!.data.profileIds).toEqual([
        '00000000-0000-4000-8000-000000000001',
      ]);
      expect(moved.find((m) => m.name === 'recompute')!.data).toMatchObject({ kind: 'audience', key: 'gone' });
    } finally {
      await upgraded.close();
    }

    // A full server runs the moved backlog: the stored event reaches its profile.
    const all = await startTestCairn(db.env);
    try {
      const api = adminApi(all.url);
      await until(
        'the moved event processed',
        async () => (await api('/profiles?userId=u-upgrade')).body.data?.[0]?.id,
      );
    } finally {
      await all.close();
    }
  }, 90_000);
});
