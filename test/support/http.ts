// Small HTTP helpers shared by the end-to-end tests: a tracking client that retries like a real SDK,
// admin calls, and polling for a condition (tests wait for states, never for fixed times).
import { basicAuth, TEST_ADMIN_KEY } from '@cairn/server/testing';

/** The HTTP Basic header carrying a write key as username (Segment's convention): the testing kit's `basicAuth`. */
export const basic = basicAuth;

/** A promise that resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Calls the admin API of a server with the test admin key and returns the parsed JSON body.
 *
 * @example
 * const src = await admin(url, '/sources', { method: 'POST', body: JSON.stringify({ name: 'x' }) });
 */
// biome-ignore lint/suspicious/noExplicitAny: admin responses are checked by the callers
export async function admin(url: string, path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(`${url}/api${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    signal: AbortSignal.timeout(15_000),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`admin ${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * Creates a source through the admin API and returns its write key.
 *
 * @example
 * const key = await createSource(server.url, 'crash');
 */
export async function createSource(url: string, name: string): Promise<{ id: string; writeKey: string }> {
  return admin(url, '/sources', { method: 'POST', body: JSON.stringify({ name }) });
}

/**
 * Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws with `what`).
 *
 * @example
 * await waitFor('server ready', async () => (await fetch(`${url}/readyz`)).ok);
 */
export async function waitFor<T>(what: string, check: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

/** A batch of `size` track events with messageIds `${run}-${batch}-${i}`. */
export function trackBatch(run: string, batch: number, size: number): { batch: object[]; ids: string[] } {
  const ids = Array.from({ length: size }, (_, i) => `${run}-${batch}-${i}`);
  return {
    ids,
    batch: ids.map((messageId, i) => ({
      type: 'track',
      event: 'Load',
      userId: `${run}-u${(batch * size + i) % 97}`,
      messageId,
      properties: { batch, i },
    })),
  };
}

/** What one tracking request finally got. */
export interface Answer {
  status: number;
  body: string;
  attempts: number;
}

/**
 * Sends a tracking request the way a careful SDK does: retries connection errors and 5xx (with a
 * short backoff, reading `url()` afresh each time so it can follow a replacement server) until it
 * gets a 200 or a 4xx, or `giveUpAt` passes.
 *
 * @example
 * const a = await sendUntilAnswered(() => server.url, key, { batch });
 */
export async function sendUntilAnswered(
  url: () => string,
  writeKey: string,
  body: unknown,
  giveUpAt = Date.now() + 50_000,
): Promise<Answer> {
  const text = JSON.stringify(body);
  let attempts = 0;
  for (;;) {
    attempts++;
    let failure: string;
    try {
      const res = await fetch(`${url()}/v1/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
        body: text,
        signal: AbortSignal.timeout(20_000),
      });
      const answer = await res.text();
      if (res.status < 500) return { status: res.status, body: answer, attempts };
      failure = `HTTP ${res.status} ${answer}`;
    } catch (err) {
      failure = String((err as Error).cause ?? err);
    }
    if (Date.now() > giveUpAt) throw new Error(`gave up after ${attempts} attempts; last: ${failure}`);
    await sleep(Math.min(1000, 25 * 2 ** Math.min(attempts, 6)) * (0.5 + Math.random()));
  }
}

/**
 * Runs `work(i)` for i in [0, n) with at most `concurrency` running at once.
 *
 * @example
 * await pool(100, 16, async (i) => send(i));
 */
export async function pool(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(n, concurrency) }, async () => {
    while (next < n) await work(next++);
  });
  await Promise.all(runners);
}

/**
 * The environment to spawn a server on `db` with. spawnServer() starts from the parent's
 * process.env, so an embedded database must blank an inherited DATABASE_URL, or the child would
 * silently run on that Postgres instead of its PGlite directory.
 *
 * @example
 * const s = await spawnServer(serverEnv(db));
 */
export function serverEnv(db: { mode: 'postgres' | 'embedded'; env: Record<string, string> }): Record<string, string> {
  return db.mode === 'embedded' ? { DATABASE_URL: '', ...db.env } : db.env;
}
