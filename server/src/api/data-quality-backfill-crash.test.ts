import { execFileSync } from 'node:child_process';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { describeOnPostgres } from '../testing/flows.ts';
import { type ServerProcess, spawnServer, TEST_ADMIN_KEY } from '../testing/server.ts';

// A server (and its pipeline process) SIGKILLed in the middle of a backfill; a new server's pg-boss retries the job (its heartbeat
// lapsed) and the backfill resumes after the last committed chunk: every profile changed once, every
// count and backfill event exactly once, two attempts.

const PROFILES = 20_000;

interface BackfillJson {
  id: string;
  status: string;
  rowsDone: number;
  total: number;
  attempts: number;
  profilesChanged: number;
  changes: Record<string, { normalized: number; failed: number }>;
}

describeOnPostgres('data-quality backfill after SIGKILL on %s', (mode) => {
  let db: TestDatabase;
  let server: ServerProcess | undefined;
  let sql: postgres.Sql;
  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${server!.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    });
    return { status: res.status, body: (await res.json()) as BackfillJson & { error?: unknown } };
  };
  const state = async (id: string) => (await call(`/data-quality/backfills/${id}`)).body;

  beforeAll(async () => {
    db = await createTestDatabase('api/data-quality-backfill-crash.test.ts', mode);
    server = await spawnServer(db.env);
    sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    // Stored profiles written directly: a backfill reads stored states only (how stage 2 or an import
    // wrote them is data-quality-backfill.test.ts's part), and 20,000 go in at once this way.
    await sql`
      INSERT INTO profiles (id, traits_through_ts, traits_through_id)
      SELECT gen_random_uuid(), now(), g FROM generate_series(1, ${PROFILES}) AS g`;
    await sql`
      INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
      SELECT id, 'country', '"Germany"'::jsonb, now(), traits_through_id, 'identify' FROM profiles`;
  }, 120_000);
  afterAll(async () => {
    server?.proc.kill('SIGKILL');
    await server?.exited;
    await sql?.end();
    await db?.drop();
  });

  it('resumes from the last committed chunk without doing anything twice', async () => {
    const rule = await call('/data-quality/rules/country', {
      method: 'PUT',
      body: JSON.stringify({ normalize: [{ op: 'country' }] }),
    });
    expect(rule.status).toBe(201);
    const started = await call('/data-quality/backfills', {
      method: 'POST',
      body: JSON.stringify({ keys: ['country'] }),
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const { id } = started.body;
    // Killed once a few chunks are committed, well before the end.
    for (;;) {
      const s = await state(id);
      if (s.rowsDone >= 2000) break;
      expect(s.status).not.toBe('failed');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The backfill runs in the server's pipeline process (supervisor.ts), which drains its jobs when its
    // parent goes away: it is killed too, right after the parent (which would otherwise restart it).
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(server!.proc.pid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((pid) => pid > 0);
    expect(children.length).toBeGreaterThan(0);
    server!.proc.kill('SIGKILL');
    for (const pid of children) process.kill(pid, 'SIGKILL');
    await server!.exited;
    const [atKill] = await sql<{ rows_done: number; status: string }[]>`
      SELECT rows_done, status FROM trait_backfills WHERE id = ${id}`;
    expect(atKill!.status).toBe('running');
    expect(atKill!.rows_done).toBeLessThan(PROFILES);

    server = await spawnServer(db.env);
    let done: BackfillJson | undefined;
    for (let i = 0; i < 1200 && !done; i++) {
      const s = await state(id);
      if (s.status === 'done') done = s;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(done, 'the backfill finished after the restart').toBeDefined();
    expect(done).toMatchObject({ attempts: 2, rowsDone: PROFILES, total: PROFILES, profilesChanged: PROFILES });
    expect(done!.changes.country).toMatchObject({ normalized: PROFILES, failed: 0 });
    const [c] = await sql<{ de: number; events: number; people: number }[]>`
      SELECT (SELECT count(*)::int FROM profile_traits WHERE key = 'country' AND value = '"DE"') AS de,
        (SELECT count(*)::int FROM events WHERE event = 'traits.backfilled') AS events,
        (SELECT count(DISTINCT profile_id)::int FROM events WHERE event = 'traits.backfilled') AS people`;
    expect(c).toEqual({ de: PROFILES, events: PROFILES, people: PROFILES });
  }, 300_000);
});
