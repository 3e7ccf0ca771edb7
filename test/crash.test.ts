// Crash safety: "an event acknowledged with 200 is never lost, not on process kill". A client streams
// batches with many requests in flight, the server is SIGKILLed mid-stream, a new one starts on the
// same data, and the client (retrying like an SDK) follows it. Every acknowledged messageId must
// then be stored exactly once, and the hand-off to the pipeline must survive too.
import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  type DbMode,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSource, pool, sendUntilAnswered, serverEnv, trackBatch, waitFor } from './support/http.ts';

const PLAN = {
  // Embedded PGlite is one backend session, so it gets a smaller stream.
  postgres: { batches: 240, batchSize: 20, concurrency: 16 },
  embedded: { batches: 90, batchSize: 20, concurrency: 8 },
} as const;

describe.each(['postgres', 'embedded'] as const)('crash safety on %s', (mode: DbMode) => {
  if (mode === 'postgres' && POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  let inspector: Cairn | undefined;

  beforeAll(async () => {
    db = await createTestDatabase(`test/crash.test.ts:${mode}`, mode);
  });
  afterAll(async () => {
    for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.exited));
    await inspector?.close();
    await db?.drop();
  });

  it('stores every acknowledged event exactly once across a SIGKILL and a restart', async () => {
    const { batches, batchSize, concurrency } = PLAN[mode];
    const run = `crash-${mode}-${Date.now()}`;
    const first = await spawnServer(serverEnv(db));
    servers.push(first);
    let current = first.url;
    const { writeKey } = await createSource(first.url, 'crash');

    const acks = new Map<string, number>();
    const refusals: string[] = [];
    let ackedBatches = 0;
    let retriedBatches = 0;
    let restarted: Promise<void> | undefined;
    let inFlightAtKill = 0;
    let inFlight = 0;

    const killAndRestart = async () => {
      inFlightAtKill = inFlight;
      first.proc.kill('SIGKILL');
      expect(await first.exited).toBeNull(); // killed by the signal, not exited
      const second = await spawnServer(serverEnv(db));
      servers.push(second);
      current = second.url; // the client switches to the new address
    };

    await pool(batches, concurrency, async (b) => {
      const { batch, ids } = trackBatch(run, b, batchSize);
      inFlight++;
      const answer = await sendUntilAnswered(() => current, writeKey, { batch }).finally(() => inFlight--);
      if (answer.attempts > 1) retriedBatches++;
      if (answer.status !== 200) {
        refusals.push(`batch ${b}: HTTP ${answer.status} ${answer.body}`);
        return;
      }
      for (const id of ids) acks.set(id, (acks.get(id) ?? 0) + 1);
      if (++ackedBatches === Math.floor(batches / 3)) restarted = killAndRestart();
    });
    await restarted;

    console.log(
      `[crash ${mode}] ${batches} batches x ${batchSize}; ${inFlightAtKill} requests in flight at SIGKILL; ` +
        `${retriedBatches} batches needed retries`,
    );
    expect(refusals).toEqual([]);
    expect(restarted).toBeDefined();
    expect(servers).toHaveLength(2);
    expect(retriedBatches).toBeGreaterThan(0); // the kill really hit traffic in flight
    expect(acks.size).toBe(batches * batchSize);

    // Read the data back: directly on Postgres; through a fresh in-process server on the same
    // PGlite directory once the spawned one has let go of it.
    const second = servers[1]!;
    let sql: postgres.Sql | Cairn['sql'];
    let client: postgres.Sql | undefined;
    if (mode === 'postgres') {
      client = postgres(db.url!, { max: 2, onnotice: () => {} });
      sql = client;
    } else {
      second.proc.kill('SIGTERM');
      expect(await second.exited).toBe(0);
      inspector = await startTestCairn(db.env);
      sql = inspector.sql;
    }
    try {
      const rows = await sql<{ message_id: string; n: number }[]>`
        SELECT message_id, count(*)::int AS n
        FROM events
        WHERE message_id LIKE ${`${run}-%`}
        GROUP BY message_id`;
      const stored = new Map(rows.map((r) => [r.message_id, r.n]));
      const missing = [...acks.keys()].filter((id) => !stored.has(id));
      const twice = rows.filter((r) => r.n > 1).map((r) => r.message_id);
      expect(missing, 'acknowledged with 200 but not stored').toEqual([]);
      expect(twice, 'stored more than once').toEqual([]);
      expect(stored.size).toBe(acks.size);

      // The pipeline hand-off was committed with the events, so it survives the kill too.
      await waitFor(
        'every event handed to the pipeline (processed_at set)',
        async () => {
          const [r] = await sql<{ n: number }[]>`
            SELECT count(*)::int AS n
            FROM events
            WHERE message_id LIKE ${`${run}-%`}
              AND processed_at IS NULL`;
          return r!.n === 0;
        },
        45_000,
      );
    } finally {
      await client?.end();
    }
  });
});
