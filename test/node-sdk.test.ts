// @cairn/node against the real Cairn server on Postgres: nothing listening yet, a server killed with SIGKILL in the
// middle of a stream, and close() as the drain a service runs on shutdown. The server's port stays fixed (the
// client's host) while processes come and go on one database. Every event carries an index `i`, so "each exactly
// once" is checked per event, not only per messageId (a retry under a new messageId would be a duplicate).
import { Cairn as CairnClient, type CairnError, type CairnOptions, type RetryEvent } from '@cairn/node';
import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  freePort,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Polls `cond` until it holds; fails naming `what` after `timeout` ms. */
async function until(cond: () => unknown, what: string, timeout = 30_000) {
  for (const end = Date.now() + timeout; !(await cond()); await new Promise((r) => setTimeout(r, 50)))
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

describe('@cairn/node against the real server', { timeout: 180_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let sql: postgres.Sql;
  let env: Record<string, string>;
  let host: string;
  let writeKey: string;
  let inProcess: Cairn | undefined;
  let child: ServerProcess | undefined;

  /** A client that retries quickly and (nearly) forever, recording what it reports. */
  const client = (options: Partial<CairnOptions> = {}) => {
    const errors: CairnError[] = [];
    const retries: RetryEvent[] = [];
    let sent = 0;
    const c = new CairnClient({
      writeKey,
      host,
      retryBaseDelay: 100,
      retryMaxDelay: 1000,
      maxRetries: 1000,
      onError: (e) => errors.push(e),
      ...options,
    });
    c.on('retry', (r) => retries.push(r));
    c.on('sent', ({ messages }) => (sent += messages.length));
    return { c, errors, retries, sent: () => sent };
  };
  /** How many times each index of the event `name` is stored, by index. */
  const counts = async (name: string) =>
    (
      await sql<{ i: number; n: number }[]>`
        SELECT (payload -> 'properties' ->> 'i')::int AS i, count(*)::int AS n
        FROM events
        WHERE event = ${name}
        GROUP BY 1
        ORDER BY 1`
    ).map((r) => [r.i, r.n]);
  const eachOnce = (n: number) => [...Array(n).keys()].map((i) => [i, 1]);
  const stopChild = async (signal: NodeJS.Signals) => {
    const s = child!;
    child = undefined;
    s.proc.kill(signal);
    await s.exited;
  };

  beforeAll(async () => {
    db = await createTestDatabase('test/node-sdk.test.ts', 'postgres');
    const port = await freePort();
    env = { ...db.env, PORT: String(port) };
    host = `http://127.0.0.1:${port}`;
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
    // A first start migrates the database and creates the demo source, whose write key the clients use.
    const first = await startTestCairn(env);
    writeKey = first.demoSource!.writeKey;
    await first.close();
  });
  afterAll(async () => {
    await inProcess?.close();
    if (child) await stopChild('SIGTERM');
    await sql?.end();
    await db?.drop();
  });

  it('nothing listening: the client retries, then delivers each event once when the server comes up', async () => {
    const { c, errors, retries } = client({ flushAt: 10 });
    for (let i = 0; i < 25; i++) c.track({ userId: 'node-user', event: 'While Down', properties: { i } });
    await until(() => retries.length >= 3, 'three failed attempts', 30_000);
    expect(retries[0]!.status).toBeUndefined(); // connection refused, no HTTP status

    inProcess = await startTestCairn(env);
    await c.flush();
    expect(await counts('While Down')).toEqual(eachOnce(25));
    expect(errors).toEqual([]);
    await c.close();
    await inProcess.close();
    inProcess = undefined;
  });

  it('server killed (SIGKILL) mid-stream and restarted: every event stored once when close() resolves', async () => {
    child = await spawnServer(env);
    const { c, errors, retries, sent } = client({ flushAt: 5, flushInterval: 50 });
    let made = 0;
    const ticker = setInterval(
      () => c.track({ anonymousId: 'node-anon', event: 'Through Kill', properties: { i: made++ } }),
      5,
    );
    try {
      await until(() => sent() >= 50, '50 events delivered before the kill');
      await stopChild('SIGKILL');
      const before = retries.length;
      await until(() => retries.length >= before + 2, 'failed attempts while the server is dead', 30_000);
      child = await spawnServer(env);
      const resumed = sent();
      await until(() => sent() >= resumed + 50, '50 more events delivered after the restart', 60_000);
    } finally {
      clearInterval(ticker);
    }
    await c.close();
    // No polling: close() resolves only once everything was acknowledged, i.e. committed.
    expect(await counts('Through Kill')).toEqual(eachOnce(made));
    expect(errors).toEqual([]);
  });

  it('close() drains: events waiting for flushAt/flushInterval are all stored when it resolves', async () => {
    child ??= await spawnServer(env);
    const { c, errors, sent } = client({ flushAt: 2500, flushInterval: 600_000 });
    c.identify({ userId: 'drain-user', traits: { plan: 'pro' } });
    for (let i = 0; i < 300; i++) c.track({ userId: 'drain-user', event: 'Drained', properties: { i } });
    // Neither trigger has fired: nothing went out yet.
    expect(sent()).toBe(0);
    expect(await counts('Drained')).toEqual([]);

    await c.close();
    expect(await counts('Drained')).toEqual(eachOnce(300));
    expect((await sql`SELECT 1 FROM events WHERE type = 'identify' AND user_id = 'drain-user'`).length).toBe(1);
    expect(errors).toEqual([]);

    c.track({ userId: 'drain-user', event: 'After Close' });
    expect(errors.map((e) => e.code)).toEqual(['closed']);
  });
});
