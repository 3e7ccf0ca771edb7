// Chaos: a Postgres cluster of the test's own (never the shared one), an ingest node and a worker process
// on it, load from the Node SDK, two webhook destinations at a real receiver. The worker is SIGKILLed
// mid-delivery and restarted; then the postmaster is killed with `kill -9` and restarted. Afterwards every
// event the SDK saw acknowledged must be stored exactly once, processed, and delivered to both webhooks;
// nothing else may have been stored twice, and both processes must stop cleanly on SIGTERM.
//
// The recovery times (issue 16 item 4) are measured and printed, never asserted: how soon the killed
// worker's in-flight deliveries were sent again, how long a tracking request waited for its 503 while
// the database was down, and how soon ingest, the pipeline and each destination moved again once
// Postgres was back.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cairn as CairnClient, type CairnError } from '@cairn/node';
import { type ReceivedRequest, type ServerProcess, spawnServer, startReceiver } from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, basic, createSource, sleep, waitFor } from './support/http.ts';
import { createPgCluster, PG_CLUSTER_SKIP_REASON, type PgCluster } from './support/pg-cluster.ts';

const USERS = 200;
/** How long Postgres stays down after the kill. */
const DOWN_MS = 5_000;
/**
 * Seconds of load before the faults (`CHAOS_WARMUP_S`, default 0). A worker killed soon after its start finds
 * pg-boss's monitor passes freshly due; one that ran for a while (over pg-boss's 60 s default interval) shows
 * what a long-running worker gets.
 */
const WARMUP_MS = Number(process.env.CHAOS_WARMUP_S ?? 0) * 1000;

// biome-ignore lint/suspicious/noExplicitAny: webhook bodies are read field by field below
type Any = any;

/** The idempotency keys a webhook request carries (`<messageId>:<destination id>`), single or batch mode. */
function keysOf(r: ReceivedRequest): string[] {
  const items: Any[] = r.body?.batch ?? [r.body];
  return items.map((i) => String(i?.idempotencyKey ?? ''));
}

/** One tracking request straight to the ingest node: its status, Retry-After and how long it took. */
async function probe(url: string, writeKey: string, messageId: string) {
  const started = Date.now();
  try {
    const res = await fetch(`${url}/v1/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
      body: JSON.stringify({ userId: 'probe', event: 'Probe', messageId }),
      signal: AbortSignal.timeout(60_000),
    });
    await res.text();
    const answeredAt = Date.now();
    return {
      messageId,
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      ms: answeredAt - started,
      answeredAt,
    };
  } catch (err) {
    return { messageId, status: 0, retryAfter: String(err), ms: Date.now() - started, answeredAt: Date.now() };
  }
}

/** Deliveries and live jobs by state, and the deliveries that are not delivered (for a failure's report). */
async function stateOf(sql: postgres.Sql) {
  const deliveries = await sql`SELECT status, count(*)::int AS n FROM deliveries GROUP BY 1 ORDER BY 1`;
  const jobs = await sql`
    SELECT name, state, count(*)::int AS n, min(start_after) AS due, min(heartbeat_on) AS beat
    FROM pgboss.job
    WHERE state < 'completed'
    GROUP BY 1, 2
    ORDER BY 1, 2`;
  const open = await sql`
    SELECT idempotency_key, status, attempts, updated_at
    FROM deliveries
    WHERE status <> 'delivered'
    ORDER BY id
    LIMIT 10`;
  return { deliveries, jobs, open };
}

describe('chaos: kill -9 of Postgres and SIGKILL of a worker under load', { timeout: 300_000 + WARMUP_MS }, () => {
  if (PG_CLUSTER_SKIP_REASON !== null) {
    it.skip(`needs a Postgres of its own: ${PG_CLUSTER_SKIP_REASON}`, () => {});
    return;
  }

  let pg: PgCluster;
  let sql: postgres.Sql;
  const servers: ServerProcess[] = [];
  let closeHook: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    pg = await createPgCluster();
    sql = postgres(pg.url(), { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    // CHAOS_LOGS=<dir> keeps what every server printed, to read a slow recovery from.
    if (process.env.CHAOS_LOGS) {
      await mkdir(process.env.CHAOS_LOGS, { recursive: true });
      for (const [i, s] of servers.entries())
        await writeFile(join(process.env.CHAOS_LOGS, `server-${i}.log`), s.output());
      if (pg)
        await copyFile(join(pg.dir, 'postgres.log'), join(process.env.CHAOS_LOGS, 'postgres.log')).catch(() => {});
    }
    for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.exited));
    await closeHook?.();
    await sql?.end({ timeout: 1 });
    await pg?.remove();
  });

  it('loses no acknowledged event, stores none twice, delivers all, and prints the recovery times', async () => {
    const run = `chaos-${Date.now()}`;
    const t0 = Date.now();
    const timeline: string[] = [];
    const mark = (what: string) => timeline.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

    // Every arrival at the receiver, by key, with its time (recorded as it arrives, before the answer).
    const arrivals = new Map<string, number[]>();
    const hook = await startReceiver({
      answer: (r) => {
        for (const k of keysOf(r)) arrivals.set(k, [...(arrivals.get(k) ?? []), Date.now()]);
        // Slow enough that requests are open at the receiver when the worker is killed.
        return { delayMs: 50 + Math.floor(Math.random() * 100) };
      },
    });
    closeHook = hook.close;
    // The default retry delays: the recovery times printed are the ones a default install gets.
    const env = { DATABASE_URL: pg.url() };
    const ingest = await spawnServer({ ...env, CAIRN_ROLE: 'ingest' });
    servers.push(ingest);
    const { writeKey } = await createSource(ingest.url, 'chaos');
    const destination = (name: string, settings: object) =>
      admin(ingest.url, '/destinations', {
        method: 'POST',
        body: JSON.stringify({ name, plugin: 'webhook', concurrency: 4, settings }),
      });
    const single = await destination('single', { url: `${hook.origin}/single` });
    const batch = await destination('batch', { url: `${hook.origin}/batch`, mode: 'batch' });
    const destinations = [single.id as string, batch.id as string];
    // Started once the destinations exist: a worker reads them before it starts working.
    let worker = await spawnServer({ ...env, CAIRN_ROLE: 'worker' });
    servers.push(worker);
    mark('started');

    // Load: the SDK retries (5xx, connection errors) until acknowledged; what it saw acknowledged is what
    // must be stored once and delivered.
    const acked = new Map<string, number>(); // messageId → when the SDK saw it acknowledged
    const errors: CairnError[] = [];
    const client = new CairnClient({
      writeKey,
      host: ingest.url,
      flushAt: 5,
      flushInterval: 50,
      maxRetries: 10_000,
      retryBaseDelay: 100,
      retryMaxDelay: 1_000,
      onError: (e) => errors.push(e),
    });
    client.on('sent', ({ messages }) => {
      for (const m of messages) acked.set(m.messageId, Date.now());
    });
    let made = 0;
    const ticker = setInterval(() => {
      const i = made++;
      client.track({ userId: `${run}-u${i % USERS}`, event: 'Chaos', messageId: `${run}-${i}`, properties: { i } });
    }, 10);

    /** Keys of acknowledged events not yet delivered to every destination (among `ids`). */
    const deliveredKeys = () => new Set(hook.accepted.flatMap(keysOf));
    const undelivered = (ids: Iterable<string>) => {
      const got = deliveredKeys();
      return [...ids].flatMap((m) => destinations.map((d) => `${m}:${d}`)).filter((k) => !got.has(k));
    };
    const acceptedCount = () => deliveredKeys().size;

    try {
      await waitFor('150 deliveries before the faults', async () => acceptedCount() >= 150, 60_000);
      await sleep(WARMUP_MS);
      mark('warm');

      // 1. SIGKILL of the worker while deliveries are open at the receiver; a new one starts at once.
      await waitFor('requests open at the receiver', async () => hook.open().length > 0, 30_000);
      const openAtKill = hook.open().flatMap(keysOf);
      worker.proc.kill('SIGKILL');
      const killedAt = Date.now();
      expect(await worker.exited).toBeNull();
      mark('worker killed');
      worker = await spawnServer({ ...env, CAIRN_ROLE: 'worker' });
      servers.push(worker);
      mark('worker restarted');
      await waitFor(
        "the killed worker's open deliveries sent again",
        async () => openAtKill.every((k) => (arrivals.get(k)?.filter((t) => t > killedAt).length ?? 0) >= 1),
        180_000,
      );
      const workerRetry = Date.now() - killedAt;
      mark('open deliveries resent');

      // 2. kill -9 of the postmaster under load; while it is down, tracking requests are probed for their 503.
      const before = acceptedCount();
      await waitFor('deliveries flowing again', async () => acceptedCount() >= before + 100, 60_000);
      await waitFor('requests open at the receiver', async () => hook.open().length > 0, 30_000);
      const openAtCrash = hook.open().flatMap(keysOf);
      await pg.crash();
      const crashedAt = Date.now();
      mark('postgres killed');
      // The last one with a key the server has not cached: looking it up needs the database too.
      const probes = [500, 2_000, 3_500].map(async (delay, n) => {
        await sleep(delay);
        return probe(ingest.url, n === 2 ? 'a-key-nobody-has' : writeKey, `${run}-down-${n}`);
      });
      await sleep(DOWN_MS);
      await pg.start();
      const backAt = Date.now();
      mark('postgres back');
      // Deliveries open at the receiver when Postgres died whose outcome could not be written (backends of a
      // killed postmaster may still commit for a moment, so some were recorded): their jobs must be retried.
      const interrupted = (
        await sql<{ key: string }[]>`
          SELECT idempotency_key AS key FROM deliveries WHERE idempotency_key IN ${sql(openAtCrash)} AND status <> 'delivered'`
      ).map((r) => r.key);

      // Ingest: single requests until one is acknowledged.
      let ingestBack = 0;
      for (let n = 0; !ingestBack; n++) {
        const p = await probe(ingest.url, writeKey, `${run}-back-${n}`);
        if (p.status === 200) {
          acked.set(p.messageId, Date.now());
          ingestBack = Date.now() - backAt;
        } else await sleep(100);
      }
      const down = await Promise.all(probes);
      for (const p of down) if (p.status === 200) acked.set(p.messageId, Date.now());
      // Answered while Postgres was down: a 503 the client retries, never a 500 or a 401 it would not.
      for (const p of down.filter((p) => p.answeredAt < backAt)) {
        expect({ status: p.status, retryAfter: Boolean(p.retryAfter) }, p.messageId).toEqual({
          status: 503,
          retryAfter: true,
        });
      }
      // The pipeline and each destination: an event acknowledged after Postgres came back, delivered there.
      const movingAgain = await Promise.all(
        destinations.map((d) =>
          waitFor(
            `destination ${d} delivering events acknowledged after the restart`,
            async () => {
              const fresh = [...acked].filter(([, t]) => t > backAt).map(([m]) => `${m}:${d}`);
              const first = fresh.map((k) => arrivals.get(k)?.[0]).filter((t): t is number => t !== undefined);
              return first.length > 0 && Math.min(...first) - backAt;
            },
            180_000,
          ),
        ),
      );
      mark('destinations moving');
      // Those go out again once their jobs are retried (after their heartbeat lapses).
      await waitFor(
        'the deliveries interrupted by the crash sent again',
        async () => interrupted.every((k) => (arrivals.get(k)?.filter((t) => t > crashedAt).length ?? 0) >= 1),
        90_000,
      );
      const interruptedRetry = Date.now() - backAt;
      mark('interrupted deliveries resent');
      const ackedBeforeCrash = [...acked].filter(([, t]) => t < crashedAt).map(([m]) => m);
      await waitFor(
        'everything acknowledged before the crash delivered',
        async () => undelivered(ackedBeforeCrash).length === 0,
        180_000,
      );
      const backlogCleared = Date.now() - backAt;
      mark('backlog delivered');

      // 3. The load stops; the client drains (close() resolves once everything was acknowledged).
      clearInterval(ticker);
      await client.close();
      mark('client closed');
      await waitFor(
        'every acknowledged event delivered to both destinations',
        async () => undelivered(acked.keys()).length === 0,
        180_000,
      );
      mark('all delivered');

      const dup = [...arrivals].filter(([, ts]) => ts.length > 1).length;
      console.log(
        `[chaos] ${made} events made, ${acked.size} acknowledged, ${hook.requests.length} webhook requests; ` +
          `${dup} keys arrived more than once\n` +
          `[chaos] killed worker's open deliveries (${openAtKill.length}) sent again ${seconds(workerRetry)} after the kill\n` +
          `[chaos] while Postgres was down: ${down
            .map((p) => `${p.status} in ${p.ms} ms (Retry-After ${p.retryAfter})`)
            .join(', ')}\n` +
          `[chaos] after Postgres was back: ingest acknowledging in ${seconds(ingestBack)}, destinations delivering ` +
          `new events in ${movingAgain.map((ms) => seconds(Number(ms))).join(' and ')}, the ${interrupted.length} ` +
          `deliveries in flight at the crash (of ${openAtCrash.length}) without an outcome sent again in ` +
          `${seconds(interruptedRetry)}, ` +
          `pre-crash backlog delivered in ${seconds(backlogCleared)}\n` +
          `[chaos] ${timeline.join(', ')}`,
      );

      // Correctness: what was acknowledged is stored once, processed and delivered; nothing stored twice.
      expect(errors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
      const rows = await sql<{ message_id: string; n: number }[]>`
        SELECT message_id, count(*)::int AS n
        FROM events
        WHERE message_id LIKE ${`${run}-%`}
        GROUP BY message_id`;
      const stored = new Map(rows.map((r) => [r.message_id, r.n]));
      expect(
        [...acked.keys()].filter((m) => !stored.has(m)),
        'acknowledged but not stored',
      ).toEqual([]);
      expect(
        rows.filter((r) => r.n > 1).map((r) => r.message_id),
        'stored more than once',
      ).toEqual([]);
      await waitFor(
        'every stored event processed',
        async () => {
          const [r] = await sql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM events WHERE message_id LIKE ${`${run}-%`} AND processed_at IS NULL`;
          return r!.n === 0;
        },
        60_000,
      );
      const delivered = deliveredKeys();
      for (const d of destinations) {
        const missing = [...acked.keys()].filter((m) => !delivered.has(`${m}:${d}`));
        expect(missing, `acknowledged but never delivered to ${d}`).toEqual([]);
      }
      const [ledger] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM deliveries WHERE status <> 'delivered'`;
      expect(ledger!.n, 'ledger rows not delivered').toBe(0);
    } catch (err) {
      // What happened before the failure, and what the servers said: a stall is read from their logs.
      console.log(`[chaos] failed after: ${timeline.join(', ')}`);
      console.log(`[chaos] state: ${JSON.stringify(await stateOf(sql).catch(String))}`);
      for (const s of servers) console.log(`[chaos] output of ${s.url}:\n${s.output().slice(-6000)}`);
      throw err;
    } finally {
      clearInterval(ticker);
    }

    // Neither process died on its own (an uncaught exception would have ended it), and each stops on SIGTERM.
    for (const s of [ingest, worker]) expect(s.proc.exitCode, s.output().slice(-3000)).toBeNull();
    const stops = await Promise.all(
      [ingest, worker].map(async (s) => {
        const started = Date.now();
        s.proc.kill('SIGTERM');
        const code = await Promise.race([s.exited, sleep(60_000).then(() => 'hung' as const)]);
        return { code, ms: Date.now() - started, output: s.output() };
      }),
    );
    console.log(`[chaos] SIGTERM: ingest exited in ${stops[0]!.ms} ms, worker in ${stops[1]!.ms} ms`);
    for (const s of stops) expect(s.code, s.output.slice(-3000)).toBe(0);
  });
});
