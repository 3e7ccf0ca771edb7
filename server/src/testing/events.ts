import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { basicAuth } from './http.ts';

/** A server to send to: its base URL, or anything carrying one (a started Cairn, a spawned server). */
export type Target = string | { url: string };

const baseOf = (target: Target): string => (typeof target === 'string' ? target : target.url);

/**
 * POSTs `body` to the tracking API (`/v1` + path) with a write key and returns the response as it is, for
 * tests that check how a request is answered. A string or bytes are sent as they are (malformed JSON, a
 * gzipped body); anything else as JSON.
 *
 * @example
 * const res = await postTracking(cairn, key, '/track', { userId: 'u1', event: 'Signed Up' });
 * expect(res.status).toBe(200);
 */
export function postTracking(
  target: Target,
  writeKey: string,
  path: string,
  body: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${baseOf(target)}/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: basicAuth(writeKey), ...init.headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    signal: init.signal,
  });
}

/** Options of {@link sendEvents}. */
export interface SendOptions {
  /**
   * Gives each event without a `messageId` a random one (true by default), so a test can send the same
   * literal twice as two events; false sends the events exactly as given (the server assigns ids).
   */
  messageIds?: boolean;
}

/**
 * Sends events in one `POST /v1/batch` and throws unless it is answered 200 (the message names the status
 * and body), as every test that only feeds the pipeline expects.
 *
 * @example
 * await sendEvents(cairn, cairn.demoSource!.writeKey, [{ type: 'track', userId: 'u1', event: 'Order Completed' }]);
 */
export async function sendEvents(
  target: Target,
  writeKey: string,
  events: readonly object[],
  { messageIds = true }: SendOptions = {},
): Promise<void> {
  const batch = messageIds ? events.map((e) => ({ messageId: randomUUID(), ...e })) : events;
  const res = await postTracking(target, writeKey, '/batch', { batch });
  if (res.status !== 200) throw new Error(`POST /v1/batch: HTTP ${res.status} ${await res.text()}`);
}

/** A client that can read the server's database: `cairn.sql`, or a postgres.js client of the test database. */
type Reader = postgres.Sql<Record<string, never>> | postgres.Sql;

/** Options of {@link pipelineIdle} and {@link settle}. */
export interface IdleOptions {
  /** Queues whose jobs must be done too (none in `created`, `retry` or `active` state); none by default. */
  queues?: readonly string[];
}

/**
 * Whether the pipeline has caught up: no event waits for identity resolution (`processed_at IS NULL`) and,
 * when `queues` are named, none of their jobs is waiting, retrying or running. One look, no waiting.
 *
 * @example
 * while (!(await pipelineIdle(sql, { queues: ['ingest.committed'] }))) await sleep(100);
 */
export async function pipelineIdle(sql: Reader, { queues = [] }: IdleOptions = {}): Promise<boolean> {
  const run = sql as postgres.Sql;
  const [row] = await run<{ n: number }[]>`
    SELECT count(*)::int AS n
    FROM events
    WHERE processed_at IS NULL`;
  if (row!.n > 0) return false;
  if (queues.length === 0) return true;
  const [jobs] = await run<{ n: number }[]>`
    SELECT count(*)::int AS n
    FROM pgboss.job
    WHERE name = ANY(${queues as string[]}::text[])
      AND state IN ('created', 'retry', 'active')`;
  return jobs!.n === 0;
}

/**
 * Waits until {@link pipelineIdle} holds, polling every 50 ms; throws after `timeoutMs` (20 s by default).
 *
 * @example
 * await sendEvents(cairn, key, events);
 * await settle(cairn.sql); // every event is attached to a profile
 * await settle(cairn.sql, { queues: ['compute.profiles', 'compute.definition'], timeoutMs: 30_000 });
 */
export async function settle(sql: Reader, { timeoutMs = 20_000, ...idle }: IdleOptions & { timeoutMs?: number } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pipelineIdle(sql, idle)) return;
    if (Date.now() > end) {
      const jobs = idle.queues?.length ? ` and their ${idle.queues.join(', ')} jobs` : '';
      throw new Error(`events not processed${jobs} in ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
