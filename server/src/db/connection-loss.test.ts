// What the pool does when Postgres drops a connection under it (a restart, a crash, a terminated backend).
// postgres.js 3.4.9 is patched for these (patches/postgres+3.4.9.patch): unpatched, a transaction or reserved
// connection that outlived its backend wrote to a null socket (an uncaught TypeError from a timer, which
// ends the process) and left queries that never settle, and a reserve waiting while the pool reconnected
// was never served. Each case here hung or threw before the patch.
import { connect, createServer, type Server } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../testing/db.ts';
import { oneRoundTrip, reconnectDelay, type Sql } from './index.ts';

/**
 * Rejects naming `what` when `work` has not settled in `ms` (a hang is the failure these tests look for). Its
 * error has no `code`, which the driver's connection and Postgres errors all have.
 */
function within<T>(what: string, work: Promise<T>, ms = 5_000): Promise<T> {
  return Promise.race([
    work,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: did not settle in ${ms} ms`)), ms)),
  ]);
}

describe('the pool after a connection loss (postgres)', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let killer: postgres.Sql;
  const pools: postgres.Sql[] = [];
  // Resolved when the pool has seen a connection close: queries sent before that may still go to the
  // dying connection and fail, as they would in production; the tests look at what comes after.
  let closed: Promise<void>;
  let onClose: () => void;
  const pool = (max: number) => {
    closed = new Promise((resolve) => {
      onClose = resolve;
    });
    const sql = postgres(db.url!, { max, onnotice: () => {}, backoff: reconnectDelay, onclose: () => onClose() });
    pools.push(sql);
    return sql;
  };
  // Ends a backend as a restart would (57P01 to the client, then the socket closes).
  const terminate = (pid: number) => killer`SELECT pg_terminate_backend(${pid})`;

  beforeAll(async () => {
    db = await createTestDatabase('server/src/db/connection-loss.test.ts', 'postgres');
    killer = postgres(db.url!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
    await killer?.end();
    await db?.drop();
  });

  it('a transaction whose backend dies rejects, and the pool serves what comes next', async () => {
    const sql = pool(2);
    const tx = sql.begin(async (t) => {
      const [row] = await t<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      await terminate(row!.pid);
      await t`SELECT 1`;
    });
    await expect(within('the transaction', tx)).rejects.toHaveProperty('code');
    // The ROLLBACK postgres.js sends after the failure goes to the dead connection: rejected, not thrown
    // from a timer, and the connection is not counted as busy forever.
    await within('the close', closed);
    const results = await within(
      'transactions after the loss',
      Promise.all(Array.from({ length: 6 }, (_, i) => sql.begin((t) => t<{ n: number }[]>`SELECT ${i}::int AS n`))),
    );
    expect(results.map((r) => r[0]!.n)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a reserved connection whose backend dies is not handed back to the pool as open', async () => {
    const sql = pool(2);
    const lost = oneRoundTrip(sql as unknown as Sql, (c) => [
      (async () => {
        const [row] = await c<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
        await terminate(row!.pid);
        return c`SELECT 1`;
      })(),
    ]);
    await expect(within('the round trip', lost)).rejects.toHaveProperty('code');
    await within('the close', closed);
    // Both connections serve queries again, the one that died reconnected.
    const pids = await within(
      'queries after the loss',
      Promise.all(
        Array.from({ length: 8 }, () => sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid, pg_sleep(0.02)`),
      ),
    );
    expect(pids).toHaveLength(8);
  });

  it('a connection lost while it reads the array types fails its first query, and nothing is thrown uncaught', async () => {
    // A proxy that resets the connection when the client asks for the array types (the first thing postgres.js
    // does on a new connection): the moment a restart or a network cut may hit it.
    const url = new URL(db.url!);
    const proxy: Server = createServer((client) => {
      const upstream = connect(Number(url.port || 5432), url.hostname);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.pipe(client);
      client.on('data', (chunk) => {
        if (chunk.includes('typarray')) {
          client.resetAndDestroy();
          upstream.destroy();
        } else upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const through = new URL(db.url!);
      through.port = String((proxy.address() as { port: number }).port);
      const sql = postgres(through.toString(), { max: 1, onnotice: () => {}, backoff: reconnectDelay });
      pools.push(sql);
      // Unpatched, the failed types query was a rejection nobody handled: it ends the process (and the test run).
      await expect(within('the first query', sql`SELECT 1`)).rejects.toHaveProperty('code');
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('a reserve waiting while the pool reconnects is served', async () => {
    const sql = pool(1);
    const first = await sql.reserve();
    const [row] = await first<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    // Waits: the pool's only connection is reserved.
    const second = sql.reserve();
    await terminate(row!.pid);
    // The pool reconnects the closed connection for the waiting reserve; the first reservation's release
    // comes after that and must not hand the connection out a second time.
    await within('the close', closed);
    first.release();
    const reserved = await within('the waiting reserve', second);
    const [again] = await within('a query on it', reserved<{ one: number }[]>`SELECT 1 AS one`);
    expect(again!.one).toBe(1);
    reserved.release();
  });
});
