// Two server processes on one Postgres: they must start together on an EMPTY database (migrations,
// pg-boss schema and demo source made exactly once), both take traffic, deduplicate the same
// messageIds sent to both at once, and see sources created through the other one.
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, createSource, waitFor } from './support/http.ts';

// The migration files shipped with the server: the versions every start must end up with, once each.
async function shippedMigrationVersions(): Promise<number[]> {
  const dir = join(dirname(fileURLToPath(import.meta.resolve('@cairn/server'))), 'db', 'migrations');
  return (await readdir(dir))
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .map((f) => Number.parseInt(f.slice(0, 4), 10))
    .sort((a, b) => a - b);
}

const ready = async (s: ServerProcess) => (await fetch(`${s.url}/readyz`)).status === 200;

const post = (url: string, writeKey: string, path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });

/** Starts two servers at the same moment on one database and waits until both are ready. */
async function startPair(db: TestDatabase): Promise<[ServerProcess, ServerProcess]> {
  const started = await Promise.allSettled([spawnServer(db.env), spawnServer(db.env)]);
  const pair = started.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
  const failed = started.filter((r) => r.status === 'rejected');
  if (failed.length > 0) {
    const survivors = pair.filter((s) => s !== undefined);
    for (const s of survivors) s.proc.kill('SIGKILL');
    await Promise.all(survivors.map((s) => s.exited));
    throw new Error(`a server failed to start:\n${failed.map((r) => String(r.reason)).join('\n---\n')}`);
  }
  const [a, b] = pair as [ServerProcess, ServerProcess];
  await waitFor('both servers ready (/readyz 200)', async () => (await ready(a)) && (await ready(b)), 30_000);
  return [a, b];
}

async function stopAll(servers: ServerProcess[]): Promise<void> {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
  await Promise.all(servers.map((s) => s.exited));
}

/** The schema facts two simultaneous starts must agree on. */
async function expectSchemaMadeOnce(sql: postgres.Sql): Promise<void> {
  const versions = await sql<{ version: number; n: number }[]>`
    SELECT version, count(*)::int AS n
    FROM cairn_migrations
    GROUP BY version
    ORDER BY version`;
  expect(versions.map((v) => v.version)).toEqual(await shippedMigrationVersions());
  expect(versions.every((v) => v.n === 1)).toBe(true);
  const [boss] = await sql<{ schemas: number; versions: number; queues: number }[]>`
    SELECT
      (SELECT count(*)::int FROM pg_namespace WHERE nspname = 'pgboss') AS schemas,
      (SELECT count(*)::int FROM pgboss.version) AS versions,
      (SELECT count(*)::int FROM pgboss.queue WHERE name = 'identify') AS queues`;
  expect(boss).toEqual({ schemas: 1, versions: 1, queues: 1 });
  const [demo] = await sql<{ sources: number; claims: number }[]>`
    SELECT
      -- The two internal sources made by migrations (Cairn's own events, bulk imports) aside.
      (SELECT count(*)::int FROM sources WHERE id NOT IN ('cairn', 'import')) AS sources,
      (SELECT count(*)::int FROM settings WHERE key = 'demo_source_created') AS claims`;
  expect(demo).toEqual({ sources: 1, claims: 1 });
}

describe('two servers on one Postgres database', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let sql: postgres.Sql;
  let a: ServerProcess;
  let b: ServerProcess;
  let demoKey: string;
  let coldStartFailure: Error | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('test/two-servers.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
    try {
      [a, b] = await startPair(db);
    } catch (err) {
      // The first test reports this; the others still run, on servers started one after the other.
      coldStartFailure = err as Error;
      a = await spawnServer(db.env);
      b = await spawnServer(db.env);
      await waitFor('both servers ready after a staggered start', async () => (await ready(a)) && (await ready(b)));
    }
    const [demo] = await sql<{ write_key: string }[]>`SELECT write_key FROM sources WHERE id = 'src_demo'`;
    demoKey = demo!.write_key;
  });
  afterAll(async () => {
    await stopAll([a, b].filter(Boolean));
    await sql?.end();
    await db?.drop();
  });

  it('start together on an empty database: migrations, pg-boss schema and demo source made once', async () => {
    if (coldStartFailure) throw coldStartFailure;
    await expectSchemaMadeOnce(sql);
    for (const s of [a, b]) expect(s.output()).not.toMatch(/\berror\b/i);
  });

  it('both accept events', async () => {
    for (const [name, s] of [
      ['A', a],
      ['B', b],
    ] as const) {
      const res = await post(s.url, demoKey, '/v1/track', {
        userId: 'u',
        event: `Hello ${name}`,
        messageId: `hello-${name}`,
      });
      expect(res.status, name).toBe(200);
    }
    const rows = await sql`SELECT message_id FROM events WHERE message_id LIKE 'hello-%' ORDER BY message_id`;
    expect(rows.map((r) => r.message_id)).toEqual(['hello-A', 'hello-B']);
  });

  it('the same 200 messageIds sent to both servers at once are stored once each', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `both-${i}`);
    const event = (id: string) => ({ type: 'track', event: 'Both', userId: `u-${id}`, messageId: id });
    // A gets batches of 10 in order, B batches of 7 in reverse order, so every batch overlaps
    // several of the other server's batches; singles to both complete the interleaving.
    const toA = chunk(ids, 10).map((c) => ({ url: a.url, body: { batch: c.map(event) } }));
    const toB = chunk([...ids].reverse(), 7).map((c) => ({ url: b.url, body: { batch: c.map(event) } }));
    const requests = interleave(toA, toB).map((r) => post(r.url, demoKey, '/v1/batch', r.body));
    const singles = ids
      .filter((_, i) => i % 10 === 3)
      .flatMap((id) => [a.url, b.url].map((url) => post(url, demoKey, '/v1/track', event(id))));
    const statuses = (await Promise.all([...requests, ...singles])).map((r) => r.status);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    const rows = await sql<{ message_id: string; n: number }[]>`
      SELECT message_id, count(*)::int AS n
      FROM events
      WHERE message_id LIKE 'both-%'
      GROUP BY message_id`;
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
  });

  it('a source created through A is usable as a write key on B within a few seconds', async () => {
    const { writeKey } = await createSource(a.url, 'made-on-A');
    const seen: number[] = [];
    await waitFor(
      'B to accept the write key made on A',
      async () => {
        const res = await post(b.url, writeKey, '/v1/track', { userId: 'u', event: 'Cross', messageId: 'cross-1' });
        seen.push(res.status);
        return res.status === 200;
      },
      10_000,
    );
    // Before B saw it, the key could only be unknown (401), never anything else.
    expect(seen.filter((s) => s !== 200 && s !== 401)).toEqual([]);
    const [row] = await sql`SELECT count(*)::int AS n FROM events WHERE message_id = 'cross-1'`;
    expect(row!.n).toBe(1);
  });

  it('repeats the cold-start race on two more empty databases', async () => {
    for (const round of [1, 2]) {
      const fresh = await createTestDatabase(`test/two-servers.test.ts:race-${round}`, 'postgres');
      const client = postgres(fresh.url!, { max: 1, onnotice: () => {} });
      let pair: ServerProcess[] = [];
      try {
        pair = await startPair(fresh);
        await expectSchemaMadeOnce(client);
      } finally {
        await stopAll(pair);
        await client.end();
        await fresh.drop();
      }
    }
  });
});

function chunk<T>(xs: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, i * size + size));
}

function interleave<T>(xs: T[], ys: T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    if (i < xs.length) out.push(xs[i]!);
    if (i < ys.length) out.push(ys[i]!);
  }
  return out;
}
