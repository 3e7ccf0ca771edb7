// The all-in-one start on Postgres runs the pipeline in a supervised process of its own (issue 16).
// Killing that process must cost nothing: the tracking API, in the parent, answers 200 throughout; the
// parent restarts the pipeline; every event stored is processed and reaches the webhook; the parent's
// /metrics carries both processes' metrics.
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
import { admin, basic, createSource, sleep, waitFor } from './support/http.ts';

const READY = /pipeline process ready \(pid (\d+)\)/g;
const pipelinePids = (s: ServerProcess): number[] => [...s.output().matchAll(READY)].map((m) => Number(m[1]));

describe('the pipeline process of the all-in-one start (postgres)', { timeout: 300_000 }, () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let sql: postgres.Sql;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('test/pipeline-process.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  });
  afterAll(async () => {
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
    await server?.exited;
    await sql?.end();
    await db?.drop();
  });

  it('is restarted when killed; the tracking API answers 200 throughout and every event is delivered', async () => {
    const run = `pp-${Date.now()}`;
    const hook = await startReceiver();
    server = await spawnServer({ ...db.env, CAIRN_ROLE: 'all', CAIRN_DELIVERY_RETRY_DELAY_S: '1' });
    const s = server;
    const first = (await waitFor('the pipeline process ready', async () => pipelinePids(s)[0])) as number;
    expect(first).not.toBe(s.proc.pid);
    const { writeKey } = await createSource(s.url, 'pipeline-process');
    const dest = await admin(s.url, '/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'hook', plugin: 'webhook', settings: { url: hook.url } }),
    });

    // The pipeline process learns of a destination created through the API at its directory's next refresh
    // (≤ 2 s, as a worker node does): events fanned out before that do not go to it. Start once it delivers.
    const warm = `warm-${run}`;
    const sendWarm = () =>
      fetch(`${s.url}/v1/track`, {
        method: 'POST',
        headers: { authorization: basic(writeKey), 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'Warm', userId: `warm-${run}`, messageId: `${warm}-${Date.now()}` }),
      }).then((r) => r.arrayBuffer());
    await waitFor('the destination known to the pipeline', async () => {
      if (hook.accepted.length > 0) return true;
      await sendWarm();
      await sleep(400);
      return hook.accepted.length > 0;
    });

    // A steady stream of single events, one request at a time, before, during and after the kill.
    const statuses = new Map<number, number>();
    const messageIds: string[] = [];
    let sending = true;
    const sender = (async () => {
      for (let n = 0; sending; n++) {
        const messageId = `${run}-${n}`;
        const res = await fetch(`${s.url}/v1/track`, {
          method: 'POST',
          headers: { authorization: basic(writeKey), 'content-type': 'application/json' },
          body: JSON.stringify({ event: 'Viewed', userId: `${run}-u${n % 7}`, messageId, properties: { n } }),
        });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) messageIds.push(messageId);
        await sleep(5);
      }
    })();

    const before = hook.accepted.length;
    await waitFor('deliveries before the kill', async () => hook.accepted.length >= before + 20);
    process.kill(first, 'SIGKILL');
    const killedAt = Date.now();
    const second = await waitFor('the pipeline process restarted', async () => pipelinePids(s)[1]);
    const restartedMs = Date.now() - killedAt;
    expect(second).not.toBe(first);
    await sleep(500);
    sending = false;
    await sender;

    expect(Object.fromEntries(statuses)).toEqual({ 200: messageIds.length });
    // Every event stored is processed (attached to a profile) and delivered once the new process works.
    const stored = await sql<{ n: number; attached: number }[]>`
      SELECT count(*)::int AS n, count(profile_id)::int AS attached FROM events WHERE message_id LIKE ${`${run}-%`}`;
    expect(stored[0]!.n).toBe(messageIds.length);
    const missing = () => {
      const got = new Set(hook.accepted.map((r) => String(r.headers['idempotency-key']).split(':')[0]));
      return messageIds.filter((m) => !got.has(m));
    };
    // The killed process's jobs come back once pg-boss sees their heartbeat lapse.
    await waitFor('every event delivered', async () => missing().length === 0, 180_000).catch(async (err) => {
      // What was left, for whoever reads a failure: the ledger, the jobs, the server's last words.
      const ledger = await sql`SELECT status, count(*)::int AS n FROM deliveries GROUP BY status`;
      const jobs = await sql`SELECT name, state, count(*)::int AS n FROM pgboss.job GROUP BY 1, 2 ORDER BY 1, 2`;
      const unattached = await sql`SELECT count(*)::int AS n FROM events WHERE profile_id IS NULL`;
      console.log(
        `[pipeline-process] ${missing().length} of ${messageIds.length} never delivered; ledger ${JSON.stringify(ledger)}; ` +
          `jobs ${JSON.stringify(jobs)}; unattached events ${unattached[0]!.n}\n${s.output().split('\n').slice(-40).join('\n')}`,
      );
      throw err;
    });
    const [{ attached }] = await sql<[{ attached: number }]>`
      SELECT count(profile_id)::int AS attached FROM events WHERE message_id LIKE ${`${run}-%`}`;
    expect(attached).toBe(messageIds.length);
    const [{ open }] = await sql<[{ open: number }]>`
      SELECT count(*)::int AS open FROM deliveries WHERE destination_id = ${dest.id} AND status <> 'delivered'`;
    expect(open).toBe(0);

    // One /metrics for the node: the API's requests (parent) and the deliveries (pipeline process).
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/^cairn_http_requests_total\{.*route="\/v1\/:type".*\} \d+/m);
    expect(metrics).toMatch(/^cairn_deliveries_total\{.*\} \d+/m);
    console.log(
      `[pipeline-process] ${messageIds.length} single events, all answered 200; pipeline process killed and ` +
        `ready again ${(restartedMs / 1000).toFixed(1)} s later; all delivered`,
    );

    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    await hook.close();
  });

  it('holds the pipeline back while the API asks (every commit counted slow), and still processes it all', async () => {
    const run = `py-${Date.now()}`;
    // A bound of 0 ms: every group commit asks the pipeline process to hold back; batches wait their
    // longest (MAX_WAIT_MS) and still go, so nothing stored is left behind.
    const s = await spawnServer({ ...db.env, CAIRN_ROLE: 'all', CAIRN_PIPELINE_YIELD_AFTER_MS: '0' });
    server = s;
    await waitFor('the pipeline process ready', async () => pipelinePids(s)[0]);
    const { writeKey } = await createSource(s.url, 'pipeline-yield');
    const sent: string[] = [];
    const end = Date.now() + 4000;
    for (let n = 0; Date.now() < end; n++) {
      const messageId = `${run}-${n}`;
      const res = await fetch(`${s.url}/v1/track`, {
        method: 'POST',
        headers: { authorization: basic(writeKey), 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'Held', userId: `${run}-u${n % 5}`, messageId }),
      });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      sent.push(messageId);
      await sleep(20);
    }
    await waitFor('every event attached', async () => {
      const [r] = await sql<{ attached: number }[]>`
        SELECT count(profile_id)::int AS attached FROM events WHERE message_id LIKE ${`${run}-%`}`;
      return r!.attached === sent.length;
    });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const held = Number(/^cairn_pipeline_yield_seconds_total (\S+)$/m.exec(metrics)?.[1] ?? 0);
    expect(held).toBeGreaterThan(0);
    console.log(
      `[pipeline-process] ${sent.length} events while every commit asked: batches held ${held.toFixed(1)} s in all`,
    );
    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
