// Per-profile order across worker processes: an ingest node and two worker processes
// (CAIRN_ROLE=worker) on one Postgres deliver many profiles' numbered events to two real webhook
// receivers (one event per request, and batches), which answer 503 to about one request in eight. A
// receiver checks, as each request arrives, that every earlier event of that profile was already
// answered 2xx: a profile's event sent before its predecessor was delivered is a violation, whichever
// process sent either. Events are sent in rounds (one per profile, its next sequence number), each
// round once the previous one is in the ledger, so the ledger's order is the sequence order.

import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  startReceiver,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createSource, sendUntilAnswered, waitFor } from './support/http.ts';

const PROFILES = 60;
const ROUNDS = 12;

// biome-ignore lint/suspicious/noExplicitAny: request bodies are checked by the receiver
type Any = any;

/** A receiver that checks per-profile order as requests arrive, and refuses some of them. */
async function orderingReceiver(seed: number) {
  const next = new Map<string, number>(); // profile → the next sequence number it may receive
  const violations: string[] = [];
  let duplicates = 0;
  let refused = 0;
  let requests = 0;
  let rng = seed;
  const random = () => {
    rng = (rng * 1_103_515_245 + 12_345) % 2_147_483_648;
    return rng / 2_147_483_648;
  };
  const hook = await startReceiver({
    answer: ({ body }) => {
      requests++;
      const items: Any[] = body.batch ?? [body];
      // Checked on arrival: what this request carries must follow what was already delivered.
      const expected = new Map<string, number>();
      for (const item of items) {
        const user = String(item.profile?.userId);
        const seq = Number(item.event?.properties?.seq);
        const want = expected.get(user) ?? next.get(user) ?? 0;
        if (seq > want) violations.push(`${user}: #${seq} arrived before #${want} was delivered`);
        if (seq < want) duplicates++;
        expected.set(user, Math.max(want, seq + 1));
      }
      const status = random() < 0.125 ? 503 : 200;
      if (status === 200) for (const [user, n] of expected) next.set(user, Math.max(next.get(user) ?? 0, n));
      else refused++;
      return { status, delayMs: Math.floor(random() * 10) };
    },
  });
  return {
    url: hook.url,
    violations,
    /** Profiles whose every event of `rounds` arrived. */
    complete: (rounds: number) => [...next.values()].filter((n) => n >= rounds).length,
    stats: () => ({ requests, refused, duplicates }),
    close: hook.close,
  };
}

async function sendCalls(server: ServerProcess, destinationId: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(
    `^cairn_delivery_send_duration_seconds_count\\{destination="${destinationId}"\\} (\\d+)`,
    'm',
  ).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('per-profile order with two worker processes (postgres)', { timeout: 240_000 }, () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let sql: postgres.Sql;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('test/deliver-order.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
    await Promise.all(servers.map((s) => s.exited));
    await sql?.end();
    await db?.drop();
  });

  it("never sends a profile's event before the previous one was delivered", async () => {
    const env = {
      ...db.env,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '1',
      // Refusals are random here, not an outage: keep the circuit breaker out of the way.
      CAIRN_CIRCUIT_THRESHOLD: '1000',
    };
    const ingest = await spawnServer({ ...env, CAIRN_ROLE: 'ingest' });
    servers.push(ingest);
    const { writeKey } = await createSource(ingest.url, 'order');
    const single = await orderingReceiver(7);
    const batch = await orderingReceiver(11);
    const destinations = [
      await admin(ingest.url, '/destinations', {
        method: 'POST',
        body: JSON.stringify({ name: 'single', plugin: 'webhook', concurrency: 4, settings: { url: single.url } }),
      }),
      await admin(ingest.url, '/destinations', {
        method: 'POST',
        body: JSON.stringify({
          name: 'batch',
          plugin: 'webhook',
          concurrency: 4,
          settings: { url: batch.url, mode: 'batch' },
        }),
      }),
    ];
    // Started after the destinations exist: a worker reads them before it starts working.
    const workers = [
      await spawnServer({ ...env, CAIRN_ROLE: 'worker' }),
      await spawnServer({ ...env, CAIRN_ROLE: 'worker' }),
    ];
    servers.push(...workers);

    const run = `ord-${Date.now()}`;
    let mostWaiting = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const events = Array.from({ length: PROFILES }, (_, p) => ({
        type: 'track',
        event: 'Step',
        userId: `${run}-p${p}`,
        messageId: `${run}-${round}-${p}`,
        properties: { seq: round },
      }));
      expect((await sendUntilAnswered(() => ingest.url, writeKey, { batch: events })).status).toBe(200);
      await waitFor(
        `round ${round} in the ledger`,
        async () => {
          const [r] = await sql<{ n: number; waiting: number }[]>`
            SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'waiting')::int AS waiting FROM deliveries`;
          mostWaiting = Math.max(mostWaiting, r!.waiting);
          return r!.n === (round + 1) * PROFILES * destinations.length;
        },
        60_000,
      );
    }
    await waitFor(
      'every event at both receivers',
      async () => single.complete(ROUNDS) === PROFILES && batch.complete(ROUNDS) === PROFILES,
      120_000,
    );
    const counts = await waitFor('a final ledger', async () => {
      const rows = await sql<
        { status: string; n: number }[]
      >`SELECT status, count(*)::int AS n FROM deliveries GROUP BY 1`;
      return rows.length === 1 && rows[0]!.status === 'delivered' ? rows[0] : undefined;
    });
    expect(counts!.n).toBe(ROUNDS * PROFILES * destinations.length);

    const calls = await Promise.all(workers.map((w) => sendCalls(w, destinations[0].id)));
    console.log(
      `[deliver-order] ${PROFILES} profiles × ${ROUNDS} events × 2 destinations; single: ${JSON.stringify(single.stats())}, ` +
        `batch: ${JSON.stringify(batch.stats())}; at most ${mostWaiting} rows waiting at once; ` +
        `send calls of the single destination per worker: ${calls.join(', ')}`,
    );
    expect(single.violations).toEqual([]);
    expect(batch.violations).toEqual([]);
    // The test proves something only if both processes sent, some requests were refused (retries),
    // and rows waited behind unfinished ones.
    for (const n of calls) expect(n).toBeGreaterThan(0);
    expect(single.stats().refused).toBeGreaterThan(0);
    expect(batch.stats().refused).toBeGreaterThan(0);
    expect(mostWaiting).toBeGreaterThan(0);
    await single.close();
    await batch.close();
  });
});
