import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { sendEvents, settle } from '../testing/events.ts';
import { describeOnDatabases } from '../testing/flows.ts';
import { adminApi, until } from '../testing/http.ts';
import { approveAndPublish } from '../testing/review.ts';
import { startTestCairn } from '../testing/server.ts';

// Cancel and resume of data-quality backfills through the real server (migration 0043), and the reason
// their `trait.changed` events carry. On both databases: a backfill whose second chunk keeps failing is
// `failed` with the first chunk's counts; cancelled, its pending pg-boss retry does nothing; resumed, it
// finishes from its cursor with exact totals. Wrong states answer 409 with a reason, analysts 403. On
// Postgres a second session holds a chunk before its commit, so a cancel lands mid-run: it answers once
// that chunk committed, with its counts exact, a second cancel changes nothing, and a resume (held the
// same way, so a resume of the running one is refused) finishes with every count and event once.

const N = 3000;
const CHUNK = 500;
const PAUSE_LOCK = 424_242;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backfill {
  id: string;
  status: string;
  total: number;
  rowsDone: number;
  profilesChanged: number;
  changes: Record<string, { normalized: number; filled: number; cleared: number; failed: number }>;
  chunks: number;
  attempts: number;
  resumes: number;
  error: string | null;
  etaSeconds: number | null;
  cancelledAt: string | null;
  cancelledBy: string | null;
}

describeOnDatabases('data-quality backfill cancel and resume on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let admin: ReturnType<typeof adminApi>;
  let analyst: ReturnType<typeof adminApi>;
  const post = (path: string, body: unknown = {}, method = 'POST') =>
    admin(path, { method, body: JSON.stringify(body) });
  const get = async (id: string) => (await admin(`/data-quality/backfills/${id}`)).body as Backfill;
  const reach = (id: string, status: string) =>
    until(`backfill ${id} ${status}`, async () => ((await get(id)).status === status ? get(id) : undefined), {
      tries: 1200,
      intervalMs: 100,
    });
  // What the backfill `id` wrote: traits, its timeline events, the trait.changed events with their reasons.
  const written = async (key: string, id: string) => {
    const [row] = await cairn.sql<
      { upper: number; markers: number; markerProfiles: number; changed: number; changedProfiles: number }[]
    >`
      SELECT
        (SELECT count(*)::int FROM profile_traits WHERE key = ${key} AND value #>> '{}' = upper(value #>> '{}')) AS upper,
        (SELECT count(*)::int FROM events WHERE event = 'traits.backfilled' AND payload->'properties'->>'backfill' = ${id}) AS markers,
        (SELECT count(DISTINCT profile_id)::int FROM events WHERE event = 'traits.backfilled' AND payload->'properties'->>'backfill' = ${id}) AS "markerProfiles",
        (SELECT count(*)::int FROM events WHERE event = 'trait.changed' AND payload->'properties'->'trait'->>'key' = ${key}
          AND payload->'properties'->>'reason' = 'quality_backfill' AND payload->'properties'->>'backfill' = ${id}) AS changed,
        (SELECT count(DISTINCT profile_id)::int FROM events WHERE event = 'trait.changed' AND payload->'properties'->'trait'->>'key' = ${key}
          AND payload->'properties'->>'backfill' = ${id}) AS "changedProfiles"`;
    return row!;
  };
  // A chunk's progress write fails while the fault is on (it is the chunk's last statement: the whole
  // chunk rolls back, as if its process died before the commit).
  const faultOn = (key: string, chunk: number) =>
    cairn.sql.unsafe(`
      CREATE OR REPLACE FUNCTION test_backfill_fault() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.chunks = ${chunk} AND OLD.chunks = ${chunk - 1} AND NEW.keys = ARRAY['${key}'] THEN
          RAISE EXCEPTION 'simulated failure of chunk ${chunk}';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_backfill_fault BEFORE UPDATE ON trait_backfills
        FOR EACH ROW EXECUTE FUNCTION test_backfill_fault();`);
  const faultOff = () => cairn.sql.unsafe('DROP TRIGGER IF EXISTS test_backfill_fault ON trait_backfills');

  beforeAll(async () => {
    db = await createTestDatabase('api/data-quality-backfill-control.test.ts', mode);
    cairn = await startTestCairn(db.env);
    admin = adminApi(cairn.url);
    const key = await post('/keys', { name: 'analyst', role: 'analyst' });
    expect(key.status, key.text).toBe(201);
    analyst = adminApi(cairn.url, key.body.key);
    for (let i = 0; i < N; i += 500) {
      await sendEvents(
        cairn,
        cairn.demoSource!.writeKey,
        Array.from({ length: 500 }, (_, j) => ({
          type: 'identify',
          userId: `c${i + j}`,
          traits: { city: 'berlin', team: 'red' },
        })),
      );
    }
    await settle(cairn.sql, { timeoutMs: 120_000 });
    // Live flows watching the traits: their changes are recorded as trait.changed events.
    for (const trait of ['city', 'team']) {
      const f = await post('/flows', {
        definition: {
          version: 1,
          name: `on ${trait}`,
          trigger: { type: 'trait_changed', trait },
          entry: { reentry: 'every_time' },
          nodes: [{ id: 'x', type: 'exit' }],
          edges: [],
        },
      });
      expect(f.status, f.text).toBe(201);
      expect((await approveAndPublish(cairn.url, f.body.id)).status).toBe(200);
    }
    for (const trait of ['city', 'team']) {
      expect((await post(`/data-quality/rules/${trait}`, { normalize: [{ op: 'upper' }] }, 'PUT')).status).toBe(201);
    }
  }, 300_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('refuses wrong states with 409 and a reason, unknown ids with 404, analysts with 403', async () => {
    for (const verb of ['cancel', 'resume']) {
      expect((await post(`/data-quality/backfills/999/${verb}`)).status).toBe(404);
      expect((await post(`/data-quality/backfills/x/${verb}`)).status).toBe(400);
    }
    const dry = await post('/data-quality/backfills', { keys: ['city'], dryRun: true });
    expect(dry.status, dry.text).toBe(202);
    // Analysts may read a backfill, not steer it.
    for (const verb of ['cancel', 'resume']) {
      const r = await analyst(`/data-quality/backfills/${dry.body.id}/${verb}`, { method: 'POST' });
      expect(r.status, r.text).toBe(403);
    }
    expect((await analyst(`/data-quality/backfills/${dry.body.id}`)).status).toBe(200);
    const done = await reach(dry.body.id, 'done');
    expect(done).toMatchObject({ rowsDone: N, cancelledAt: null, resumes: 0 });
    const cancel = await post(`/data-quality/backfills/${dry.body.id}/cancel`);
    expect(cancel.status, cancel.text).toBe(409);
    expect(cancel.body.error).toMatchObject({ code: 'backfill_finished' });
    expect(cancel.body.error.message).toContain('is done');
    const resume = await post(`/data-quality/backfills/${dry.body.id}/resume`);
    expect(resume.status, resume.text).toBe(409);
    expect(resume.body.error).toMatchObject({ code: 'backfill_finished' });
    expect(resume.body.error.message).toContain('nothing is left to resume');
    expect(await get(dry.body.id)).toEqual(done);
  }, 60_000);

  it('cancels a failed backfill (its pending retry then does nothing) and resumes it to exact totals', async () => {
    await faultOn('team', 2);
    try {
      const started = await post('/data-quality/backfills', { keys: ['team'] });
      expect(started.status, started.text).toBe(202);
      const failed = await reach(started.body.id, 'failed');
      expect(failed).toMatchObject({ rowsDone: CHUNK, chunks: 1, profilesChanged: CHUNK });
      expect(failed.error).toContain('simulated failure of chunk 2');
      const cancelled = await post(`/data-quality/backfills/${started.body.id}/cancel`);
      expect(cancelled.status, cancelled.text).toBe(200);
      expect(cancelled.body).toMatchObject({ status: 'cancelled', rowsDone: CHUNK, etaSeconds: null });
      expect(cancelled.body.cancelledBy).toBeTruthy();
      await faultOff();
      // pg-boss's retry of the failed attempt comes (backoff from 5 s) and finds it cancelled.
      await until(
        'the retries spent',
        async () => {
          const [open] = await cairn.sql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pgboss.job
            WHERE name = 'quality_backfill' AND data->>'backfillId' = ${started.body.id} AND state < 'completed'`;
          return open!.n === 0;
        },
        { tries: 1200, intervalMs: 100 },
      );
      const still = await get(started.body.id);
      expect(still).toMatchObject({ status: 'cancelled', rowsDone: CHUNK, chunks: 1, profilesChanged: CHUNK });
      expect(await written('team', started.body.id)).toEqual({
        upper: CHUNK,
        markers: CHUNK,
        markerProfiles: CHUNK,
        changed: CHUNK,
        changedProfiles: CHUNK,
      });

      const resumed = await post(`/data-quality/backfills/${started.body.id}/resume`);
      expect(resumed.status, resumed.text).toBe(202);
      expect(resumed.body).toMatchObject({ status: 'queued', resumes: 1, cancelledAt: null, error: null });
      const done = await reach(started.body.id, 'done');
      expect(done).toMatchObject({ total: N, rowsDone: N, profilesChanged: N, chunks: N / CHUNK, resumes: 1 });
      expect(done.changes.team).toEqual({ normalized: N, filled: 0, cleared: 0, failed: 0 });
      expect(await written('team', started.body.id)).toEqual({
        upper: N,
        markers: N,
        markerProfiles: N,
        changed: N,
        changedProfiles: N,
      });
      // Its trait.changed events name the backfill, not an identify call.
      const [one] = await cairn.sql<{ properties: Record<string, unknown> }[]>`
        SELECT payload->'properties' AS properties FROM events
        WHERE event = 'trait.changed' AND payload->'properties'->'trait'->>'key' = 'team' LIMIT 1`;
      expect(one!.properties).toEqual({
        trait: { key: 'team', computed: false },
        from: 'red',
        to: 'RED',
        reason: 'quality_backfill',
        backfill: started.body.id,
      });
    } finally {
      await faultOff();
    }
  }, 180_000);

  it.skipIf(mode === 'embedded')(
    'cancels mid-run at the chunk boundary, twice without change, and resumes to exact totals (Postgres: a second session holds a chunk)',
    async () => {
      const direct = postgres(db.url!, { max: 1, onnotice: () => {} });
      // The chunk numbered in test_pause waits, before its commit, for the advisory lock this session holds.
      const hold = async (chunk: number) => {
        await direct`UPDATE test_pause SET chunk = ${chunk}`;
        await direct`SELECT pg_advisory_lock(${PAUSE_LOCK})`;
      };
      const waiting = (n: number) =>
        until(
          `${n} session(s) waiting`,
          async () => {
            const [w] = await direct<{ n: number }[]>`
              SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'`;
            return w!.n >= n;
          },
          { tries: 600, intervalMs: 50 },
        );
      try {
        await direct.unsafe(`
          CREATE TABLE test_pause (chunk int);
          INSERT INTO test_pause VALUES (0);
          CREATE FUNCTION test_backfill_pause() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.chunks = OLD.chunks + 1 AND NEW.chunks = (SELECT chunk FROM test_pause) THEN
              PERFORM pg_advisory_xact_lock_shared(${PAUSE_LOCK});
            END IF;
            RETURN NEW;
          END $$;
          CREATE TRIGGER test_backfill_pause BEFORE UPDATE ON trait_backfills
            FOR EACH ROW EXECUTE FUNCTION test_backfill_pause();`);
        await hold(2);
        const started = await post('/data-quality/backfills', { keys: ['city'] });
        expect(started.status, started.text).toBe(202);
        const id = started.body.id as string;
        await waiting(1);
        // The cancel waits for the held chunk's row lock: it answers after that chunk committed.
        const cancelling = post(`/data-quality/backfills/${id}/cancel`);
        await waiting(2);
        await direct`SELECT pg_advisory_unlock(${PAUSE_LOCK})`;
        const cancelled = await cancelling;
        expect(cancelled.status, cancelled.text).toBe(200);
        expect(cancelled.body).toMatchObject({ status: 'cancelled', rowsDone: 2 * CHUNK, chunks: 2 });
        expect(cancelled.body.profilesChanged).toBe(2 * CHUNK);
        const again = await post(`/data-quality/backfills/${id}/cancel`);
        expect(again.status, again.text).toBe(200);
        expect(again.body).toEqual(cancelled.body);
        // The job ends at the boundary: nothing more is written.
        await until(
          'the job completed',
          async () => {
            const [j] = await direct<{ state: string }[]>`
              SELECT state FROM pgboss.job WHERE name = 'quality_backfill' AND data->>'backfillId' = ${id}`;
            return j?.state === 'completed';
          },
          { tries: 600, intervalMs: 100 },
        );
        await sleep(1500);
        expect(await get(id)).toEqual({ ...cancelled.body, etaSeconds: null });
        expect(await written('city', id)).toEqual({
          upper: 2 * CHUNK,
          markers: 2 * CHUNK,
          markerProfiles: 2 * CHUNK,
          changed: 2 * CHUNK,
          changedProfiles: 2 * CHUNK,
        });

        // Resumed and held at chunk 4: a resume of the running backfill is refused.
        await hold(4);
        const resumed = await post(`/data-quality/backfills/${id}/resume`);
        expect(resumed.status, resumed.text).toBe(202);
        await waiting(1);
        const twice = await post(`/data-quality/backfills/${id}/resume`);
        expect(twice.status, twice.text).toBe(409);
        expect(twice.body.error).toMatchObject({ code: 'backfill_in_progress' });
        expect(twice.body.error.message).toContain('is running');
        await direct`SELECT pg_advisory_unlock(${PAUSE_LOCK})`;
        const done = await reach(id, 'done');
        expect(done).toMatchObject({ total: N, rowsDone: N, profilesChanged: N, chunks: N / CHUNK, attempts: 2 });
        expect(done).toMatchObject({ resumes: 1, cancelledAt: null, etaSeconds: 0 });
        expect(done.changes.city).toEqual({ normalized: N, filled: 0, cleared: 0, failed: 0 });
        expect(await written('city', id)).toEqual({
          upper: N,
          markers: N,
          markerProfiles: N,
          changed: N,
          changedProfiles: N,
        });
        expect((await post(`/data-quality/backfills/${id}/cancel`)).status).toBe(409);
      } finally {
        await direct`SELECT pg_advisory_unlock_all()`.catch(() => {});
        await direct.unsafe('DROP TRIGGER IF EXISTS test_backfill_pause ON trait_backfills').catch(() => {});
        await direct.end();
      }
    },
    180_000,
  );

  it('lists the cancel and resume routes in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${cairn.url}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    for (const verb of ['cancel', 'resume']) {
      const op = doc.paths[`/api/data-quality/backfills/{id}/${verb}`]?.post;
      expect(op, verb).toBeDefined();
      expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['404', '409', '403']));
    }
  });
});
