import { type Receiver, type ReceiverOptions, startReceiver } from '@cairn/plugin-api/testing';
import { describe, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type DbMode, POSTGRES_SKIP_REASON } from './db.ts';
import { sendEvents } from './events.ts';
import { type ApiAnswer, adminApi, until } from './http.ts';
import { approveAndPublish } from './review.ts';
import { startTestCairn } from './server.ts';

/**
 * Runs a suite once per database mode (`%s` in the title is the mode). Postgres mode without DATABASE_URL
 * is skipped loudly, with a skipped test that says why, never passed.
 *
 * @example
 * describeOnDatabases('flow stats on %s', (mode) => {
 *   it('counts', async () => { ... });
 * });
 */
export function describeOnDatabases(title: string, body: (mode: DbMode) => void): void {
  describeOn(['postgres', 'embedded'], title, body);
}

/**
 * {@link describeOnDatabases} for a suite that needs Postgres (a second server or session on one database).
 *
 * @example
 * describeOnPostgres('two servers on one database', (mode) => { ... });
 */
export function describeOnPostgres(title: string, body: (mode: DbMode) => void): void {
  describeOn(['postgres'], title, body);
}

function describeOn(modes: DbMode[], title: string, body: (mode: DbMode) => void): void {
  describe.each(modes)(title, (mode) => {
    if (mode === 'postgres' && POSTGRES_SKIP_REASON !== null) {
      it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
      return;
    }
    body(mode);
  });
}

/** The runtime's clock as a test moves it: the server reads `now` (ms) on every tick. */
export interface MovableClock {
  /** The current instant in ms since the epoch; assign it to jump to a moment. */
  now: number;
  /** Moves the clock forward by `ms`. */
  advance(ms: number): void;
  /** The clock as `startCairn` takes it. */
  read(): Date;
}

/**
 * A clock standing at `start` (now by default) until the test moves it.
 *
 * @example
 * const clock = movableClock();
 * clock.advance(3_600_000); // a wait of an hour is due
 */
export function movableClock(start = Date.now()): MovableClock {
  const clock: MovableClock = {
    now: start,
    advance: (ms) => {
      clock.now += ms;
    },
    read: () => new Date(clock.now),
  };
  return clock;
}

/** What {@link flowHarness} takes besides the name and mode. */
export interface FlowHarnessOptions {
  /** The clock the servers read; the system clock when absent. */
  clock?: MovableClock;
  /** More server environment (e.g. `CAIRN_COMPUTE_SWEEP_S`). */
  env?: Record<string, string>;
}

/** A started Cairn on a database of its own, with the calls flow tests make; see {@link flowHarness}. */
export interface FlowHarness {
  cairn: Cairn;
  api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  /** Sends `body` as JSON to the admin API (POST unless `method` says otherwise). */
  post(path: string, body: unknown, method?: string): Promise<ApiAnswer>;
  /** Sends events in one batch with the demo write key. */
  send(...events: object[]): Promise<void>;
  /** The id of the profile of `id` (a userId, or the identity named by `by`), once it exists. */
  profileOf(id: string, by?: 'userId' | 'anonymousId'): Promise<string>;
  // biome-ignore lint/suspicious/noExplicitAny: runs as the API answers them; tests check them by assertions
  runsOf(flowId: string, profileId: string): Promise<any[]>;
  /** A receiver closed with the harness. */
  receiver(options?: ReceiverOptions): Promise<Receiver>;
  /** A receiver and a webhook destination ("hook") sending to it. */
  webhook(): Promise<{ receiver: Receiver; destinationId: string }>;
  /** Creates a flow from `definition` and publishes it; its id. */
  publish(definition: object): Promise<string>;
  /** One more server on the same database and clock, closed with the harness. */
  startServer(): Promise<Cairn>;
  /** Closes the servers and receivers and drops the database. */
  close(): Promise<void>;
}

/**
 * Starts Cairn for a flow test on a new database named from `name` and `mode` (call it in `beforeAll`,
 * close it in `afterAll`). Its helpers throw on an unexpected answer, with the status and body.
 *
 * @example
 * let h: FlowHarness;
 * const clock = movableClock();
 * beforeAll(async () => {
 *   h = await flowHarness('stats.test.ts', mode, { clock });
 *   const { receiver, destinationId } = await h.webhook();
 *   flowId = await h.publish({ version: 1, name: 'Welcome', trigger, entry, nodes, edges });
 * });
 * afterAll(() => h?.close());
 */
export async function flowHarness(name: string, mode: DbMode, options: FlowHarnessOptions = {}): Promise<FlowHarness> {
  const db = await createTestDatabase(`${name}:${mode}`, mode);
  const env = { ...db.env, ...options.env };
  const start = () => startTestCairn(env, options.clock ? { clock: options.clock.read } : {});
  const servers: Cairn[] = [];
  const receivers: Receiver[] = [];
  const close = async () => {
    try {
      for (const s of [...servers].reverse()) await s.close();
      for (const r of receivers) await r.close();
    } finally {
      await db.drop();
    }
  };
  let cairn: Cairn;
  try {
    cairn = await start();
  } catch (err) {
    await db.drop();
    throw err;
  }
  servers.push(cairn);
  const api = adminApi(cairn.url);
  const expectStatus = (what: string, res: ApiAnswer, status: number) => {
    if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${res.text}`);
  };
  const post = (path: string, body: unknown, method = 'POST') => api(path, { method, body: JSON.stringify(body) });
  const receiver = async (opts?: ReceiverOptions) => {
    const r = await startReceiver(opts);
    receivers.push(r);
    return r;
  };
  return {
    cairn,
    api,
    post,
    send: (...events) => sendEvents(cairn, cairn.demoSource!.writeKey, events),
    profileOf: (id, by = 'userId') =>
      until(`the profile of ${id}`, async () => (await api(`/profiles?${by}=${id}`)).body?.data?.[0]?.id),
    runsOf: async (flowId, profileId) => (await api(`/flows/${flowId}/runs?profile=${profileId}`)).body.data,
    receiver,
    async webhook() {
      const r = await receiver();
      const created = await post('/destinations', { name: 'hook', plugin: 'webhook', settings: { url: r.url } });
      expectStatus('creating the webhook destination', created, 201);
      return { receiver: r, destinationId: created.body.id as string };
    },
    async publish(definition) {
      const created = await post('/flows', { definition });
      expectStatus('creating the flow', created, 201);
      expectStatus('publishing the flow', await approveAndPublish(cairn.url, created.body.id), 200);
      return created.body.id as string;
    },
    async startServer() {
      const s = await start();
      servers.push(s);
      return s;
    },
    close,
  };
}
