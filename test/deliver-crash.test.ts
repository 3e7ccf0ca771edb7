// Delivery crash safety: "a worker killed mid-delivery resumes; nothing is lost; the receiver sees at
// most one duplicate per idempotency key". A server process delivers a few hundred events to a real
// webhook receiver that answers slowly; it is SIGKILLed while requests are in flight at the receiver;
// a new process starts on the same database. Once the ledger shows every delivery `delivered`, every
// event must have reached the receiver, and no idempotency key may have arrived more than twice (the
// batch a killed worker was sending is sent again, with the same keys: at least once, not exactly once).
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type ReceivedRequest,
  type ServerProcess,
  spawnServer,
  startReceiver,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createSource, pool, sendUntilAnswered, sleep, waitFor } from './support/http.ts';

const EVENTS = 200;
const BATCH = 20;
const USERS = 40;

/** The Idempotency-Key a request carried ('' when absent). */
const keyOf = (r: ReceivedRequest): string => String(r.headers['idempotency-key'] ?? '');

describe('delivery survives a SIGKILL mid-delivery (postgres)', { timeout: 240_000 }, () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let sql: postgres.Sql;
  const servers: ServerProcess[] = [];
  const env = (): Record<string, string> => ({
    ...db.env,
    CAIRN_DELIVERY_RETRY_DELAY_S: '1',
    CAIRN_DELIVERY_RETRY_MAX_S: '2',
  });

  beforeAll(async () => {
    db = await createTestDatabase('test/deliver-crash.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.exited));
    await sql?.end();
    await db?.drop();
  });

  it('resumes after the kill: every event delivered, each idempotency key seen at most twice', async () => {
    const run = `dc-${Date.now()}`;
    const t0 = Date.now();
    const phases: string[] = [];
    const mark = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const hook = await startReceiver({ answer: () => ({ delayMs: 100 + Math.floor(Math.random() * 100) }) });
    const first = await spawnServer(env());
    servers.push(first);
    let current = first.url;
    const { writeKey } = await createSource(first.url, 'deliver-crash');
    const dest = await admin(first.url, '/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'slow receiver',
        plugin: 'webhook',
        concurrency: 4,
        settings: { url: hook.url, secret: 'crash-test-secret-0123456789' },
      }),
    });

    // Stream the events; kill the server once a quarter of them reached the receiver and requests
    // are in flight there (the sender is waiting for an answer it will never read).
    const messageIds: string[] = [];
    let killed: { seen: number; inFlight: string[] } | undefined;
    let killedAt = 0;
    let restarted: Promise<void> | undefined;
    const watcher = (async () => {
      for (;;) {
        // The keys whose requests are open right now: their answers will never be read.
        const open = hook.open().map(keyOf);
        if (hook.requests.length >= EVENTS / 4 && open.length > 0) {
          first.proc.kill('SIGKILL');
          killedAt = Date.now();
          killed = { seen: hook.requests.length, inFlight: open };
          mark('killed');
          restarted = (async () => {
            expect(await first.exited).toBeNull(); // died of the signal
            const second = await spawnServer(env());
            mark('restarted');
            servers.push(second);
            current = second.url;
          })();
          return;
        }
        if (messageIds.length === EVENTS && hook.accepted.length >= EVENTS) return; // never got the chance
        await sleep(10);
      }
    })();
    await pool(EVENTS / BATCH, 2, async (b) => {
      const batch = Array.from({ length: BATCH }, (_, i) => {
        const n = b * BATCH + i;
        const messageId = `${run}-${n}`;
        messageIds.push(messageId);
        return { type: 'track', event: 'Paid', userId: `${run}-u${n % USERS}`, messageId, properties: { n } };
      });
      const answer = await sendUntilAnswered(() => current, writeKey, { batch });
      expect(answer.status).toBe(200);
    });
    await watcher;
    expect(killed, 'the server was killed while deliveries were in flight').toBeDefined();
    await restarted;
    expect(servers).toHaveLength(2);
    // How long the killed worker's jobs waited: from the kill until every request that was open at the kill
    // has arrived again (sent by the new process once pg-boss failed the lapsed jobs). Printed, not asserted
    // (timings are benchmarks' business); the target is under 15 s (issue 16).
    await waitFor(
      'the requests open at the kill sent again',
      async () => killed!.inFlight.every((k) => hook.requests.filter((r) => keyOf(r) === k).length >= 2),
      180_000,
    );
    mark(`open requests resent ${((Date.now() - killedAt) / 1000).toFixed(1)}s after the kill, at`);

    // The new process picks up the killed worker's jobs (once their heartbeat lapses) and the rest.
    const counts = await waitFor(
      'every delivery delivered according to the ledger',
      async () => {
        const rows = await sql<{ status: string; n: number }[]>`
          SELECT status, count(*)::int AS n FROM deliveries WHERE destination_id = ${dest.id} GROUP BY status`;
        const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
        return by.delivered === EVENTS && rows.length === 1 && by;
      },
      180_000,
    );
    expect(counts).toEqual({ delivered: EVENTS });
    mark('all delivered');

    const expected = messageIds.map((m) => `${m}:${dest.id}`);
    const delivered = new Set(hook.accepted.map(keyOf));
    const missing = expected.filter((k) => !delivered.has(k));
    expect(missing, 'keys the receiver never got').toEqual([]);
    expect(hook.accepted.map(keyOf).filter((k) => !expected.includes(k))).toEqual([]);

    const arrivals = new Map<string, number>();
    for (const k of hook.requests.map(keyOf)) arrivals.set(k, (arrivals.get(k) ?? 0) + 1);
    const twice = [...arrivals].filter(([, n]) => n === 2).map(([k]) => k);
    const more = [...arrivals].filter(([, n]) => n > 2);
    const keys = await sql<{ idempotency_key: string; attempts: number }[]>`
      SELECT idempotency_key, attempts FROM deliveries WHERE destination_id = ${dest.id}`;
    console.log(
      `[deliver-crash] ${EVENTS} events; killed after ${killed!.seen} arrivals with ${killed!.inFlight.length} ` +
        `requests open at the receiver; ${hook.requests.length} arrivals in all; ${twice.length} keys arrived twice; ` +
        `${keys.filter((k) => k.attempts > 1).length} ledger rows with more than one attempt; at most ` +
        `${hook.peakOpen()} requests open at once; ${phases.join(', ')}`,
    );
    expect(more, 'keys that arrived more than twice').toEqual([]);
    // The requests open at the kill were sent again by the new process, with the same keys.
    for (const k of killed!.inFlight) expect(arrivals.get(k), k).toBe(2);
    expect(twice.length).toBeGreaterThanOrEqual(killed!.inFlight.length);
    // Every row's key is the one the receiver saw.
    expect(new Set(keys.map((k) => k.idempotency_key))).toEqual(new Set(expected));

    const last = servers[1]!;
    last.proc.kill('SIGTERM');
    expect(await last.exited).toBe(0);
    await hook.close();
  });
});
