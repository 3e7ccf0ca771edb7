// Graceful shutdown: SIGTERM while many requests are in flight. The process must exit 0, every 200
// must correspond to stored events, and every other request must end in a 503 or a connection
// error — never a 200 without storage. In embedded mode (`npm start` with no DATABASE_URL) the data
// directory must still hold the events when Cairn starts again on it.
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
import { basic, createSource, serverEnv, trackBatch, waitFor } from './support/http.ts';

const CLIENTS: Record<DbMode, number> = { postgres: 32, embedded: 12 };
const BATCH = 10;

type Outcome = { kind: 'ok'; ids: string[] } | { kind: 'unavailable' } | { kind: 'refused'; detail: string };

describe.each(['postgres', 'embedded'] as const)('graceful shutdown on %s', (mode: DbMode) => {
  if (mode === 'postgres' && POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let server: ServerProcess | undefined;
  let inspector: Cairn | undefined;

  beforeAll(async () => {
    db = await createTestDatabase(`test/shutdown.test.ts:${mode}`, mode);
  });
  afterAll(async () => {
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
    await server?.exited;
    await inspector?.close();
    await db?.drop();
  });

  it('SIGTERM with requests in flight: exit 0, every 200 stored, the rest 503 or a connection error', async () => {
    server = await spawnServer(serverEnv(db));
    const s = server;
    const { writeKey } = await createSource(s.url, 'shutdown');
    const run = `shutdown-${mode}-${Date.now()}`;
    const outcomes: Outcome[] = [];
    const unexpected: string[] = [];
    let exited = false;
    let inFlight = 0;
    let inFlightAtSigterm = -1;
    let acksAfterSigterm = 0;
    let sigtermSent = false;
    let next = 0;

    const client = async () => {
      while (!exited) {
        const { batch, ids } = trackBatch(run, next++, BATCH);
        inFlight++;
        try {
          const res = await fetch(`${s.url}/v1/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
            body: JSON.stringify({ batch }),
            signal: AbortSignal.timeout(30_000),
          });
          const text = await res.text();
          if (res.status === 200) {
            outcomes.push({ kind: 'ok', ids });
            if (sigtermSent) acksAfterSigterm++;
          } else if (res.status === 503) outcomes.push({ kind: 'unavailable' });
          else unexpected.push(`HTTP ${res.status} ${text.slice(0, 200)}`);
        } catch (err) {
          // The server has stopped listening or closed the connection: the client would retry elsewhere.
          outcomes.push({ kind: 'refused', detail: String((err as Error).cause ?? err) });
          if (sigtermSent) return;
        } finally {
          inFlight--;
        }
      }
    };
    const clients = Array.from({ length: CLIENTS[mode] }, client);

    await waitFor('some events acknowledged before SIGTERM', async () => outcomes.length >= 3 * CLIENTS[mode], 30_000);
    inFlightAtSigterm = inFlight;
    sigtermSent = true;
    s.proc.kill('SIGTERM');
    const code = await s.exited;
    exited = true;
    await Promise.all(clients);

    const acked = outcomes.flatMap((o) => (o.kind === 'ok' ? o.ids : []));
    const count = (k: Outcome['kind']) => outcomes.filter((o) => o.kind === k).length;
    console.log(
      `[shutdown ${mode}] ${inFlightAtSigterm} requests in flight at SIGTERM; ${count('ok')} x 200 ` +
        `(${acksAfterSigterm} after SIGTERM), ${count('unavailable')} x 503, ${count('refused')} connection errors; exit code ${code}`,
    );
    expect(code, s.output().slice(-2000)).toBe(0);
    expect(unexpected).toEqual([]);
    expect(inFlightAtSigterm).toBeGreaterThan(0);

    let sql: postgres.Sql | Cairn['sql'];
    let direct: postgres.Sql | undefined;
    if (mode === 'postgres') {
      direct = postgres(db.url!, { max: 1, onnotice: () => {} });
      sql = direct;
    } else {
      // `npm start` again on the same data directory (in-process, so its database can be read).
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
      expect(
        acked.filter((id) => !stored.has(id)),
        'acknowledged with 200 but not stored',
      ).toEqual([]);
      expect(rows.filter((r) => r.n > 1)).toEqual([]);
    } finally {
      await direct?.end();
    }
  });
});
