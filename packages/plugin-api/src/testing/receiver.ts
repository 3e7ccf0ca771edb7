// The scripted HTTP receiver of `@cairn/plugin-api/testing`: the far end of a plugin author's tests and of
// Cairn's own delivery and browser tests (the server's testing kit re-exports it), so there is one receiver
// whose recording and answering every test trusts. Only node:http, so the packed testing entry needs nothing more.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a receiver got, recorded the moment its body has arrived (before it is answered). */
export interface ReceivedRequest {
  method: string;
  /** The path and query string as sent (`/hook?x=1`). */
  path: string;
  headers: IncomingHttpHeaders;
  /** The body exactly as it arrived (what a signature covers). */
  raw: string;
  /** The body parsed as JSON; undefined when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: tests check the shape with their assertions
  body: any;
  /** The status it was answered with; undefined while it is still open (delayed, or the sender went away). */
  status: number | undefined;
}

/** How a receiver answers one request. Every field is optional: the default is an empty 200, at once. */
export interface ScriptedAnswer {
  status?: number;
  /** An array sends the header once per value (`set-cookie`). */
  headers?: Record<string, string | string[]>;
  /** A string or bytes as they are; any other value is sent as JSON. */
  body?: string | Uint8Array | object;
  /** Waits this long before answering (the request counts as open meanwhile). */
  delayMs?: number;
  /**
   * Answers by hand instead, ignoring the fields above: for an answer that streams, stalls halfway or waits
   * for the test to release it. The request counts as open until the response has finished (its status is
   * then recorded) or its connection has closed.
   */
  respond?: (res: ServerResponse) => void;
}

/**
 * A fixed answer, or a function choosing one per request (returning nothing means the default 200). The
 * function runs when the request arrives, so it may also check or record what arrived in that order.
 */
export type AnswerScript = ScriptedAnswer | ((request: ReceivedRequest) => ScriptedAnswer | undefined);

/** Options of {@link startReceiver}. */
export interface ReceiverOptions {
  /** How requests are answered until `answer()` changes it; an empty 200 by default. */
  answer?: AnswerScript;
  /** The path `url` points at (any path is received): `/hook` by default. */
  path?: string;
  /** The address to listen on: `127.0.0.1` by default; `null` listens on every address (IPv4 and IPv6). */
  host?: string | null;
  /**
   * How long an idle keep-alive connection is kept: 1 s by default, so a killed sender's connections go
   * quickly. undici (ctx.fetch) reuses a connection only when this is over 2 s: give Node's 5 s to test reuse.
   */
  keepAliveTimeoutMs?: number;
}

/** Which requests `waitFor` looks at. */
export interface WaitOptions {
  /** 30 s by default. */
  timeoutMs?: number;
  /** `accepted` (answered 2xx: what a sender counts as delivered, the default) or `all` (every arrival). */
  among?: 'accepted' | 'all';
}

/** A running receiver: see {@link startReceiver}. */
export interface Receiver {
  /** `http://127.0.0.1:<port><path>`: the address to give a destination. */
  url: string;
  /** `http://<host>:<port>`, without the path. */
  origin: string;
  port: number;
  /** Every request, in the order they arrived, recorded before being answered. */
  requests: ReceivedRequest[];
  /** The requests answered 2xx, in the order they were answered. */
  accepted: ReceivedRequest[];
  /** The requests that arrived and are not answered yet. */
  open(): ReceivedRequest[];
  /** The most requests that were open at once. */
  peakOpen(): number;
  /** The TCP connections accepted since the start (keep-alive reuse shows as fewer connections than requests). */
  connections(): number;
  /** Changes how the requests arriving from now on are answered. */
  answer(script: AnswerScript): void;
  /** Answers the next requests with these, one each, in order, before falling back to the script. */
  queue(...answers: ScriptedAnswer[]): void;
  /**
   * Forgets what arrived (requests, accepted, the peak) and the queued answers, keeping the script: one
   * receiver can then serve a whole test file. Requests still open are answered as before but not recorded.
   */
  reset(): void;
  /** Resolves once `n` requests are there (with them), or with the first request matching `match`; throws on timeout. */
  waitFor(n: number, options?: WaitOptions): Promise<ReceivedRequest[]>;
  waitFor(match: (request: ReceivedRequest) => unknown, options?: WaitOptions): Promise<ReceivedRequest>;
  /** Drops open connections (a sender still waiting sees its connection closed) and stops listening. */
  close(): Promise<void>;
}

function encode(answer: ScriptedAnswer): { headers: Record<string, string | string[]>; body: string | Uint8Array } {
  const headers = { ...answer.headers };
  const body = answer.body;
  if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) {
    return { headers, body: body ?? '' };
  }
  if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  return { headers, body: JSON.stringify(body) };
}

function parse(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/**
 * A real HTTP server on loopback that records every request and answers as the test scripts it: the
 * destination end of delivery tests, or a small site for browser tests. Requests are recorded when they
 * arrive, so a sender killed while waiting for its answer still shows in `requests`; `accepted` holds
 * those answered 2xx, what the sender saw delivered.
 *
 * @example
 * const hook = await startReceiver();
 * // destination settings: { url: hook.url }
 * hook.answer({ status: 503 }); // an outage from now on
 * hook.queue({ status: 429, headers: { 'retry-after': '1' } }); // only the next request
 * const hit = await hook.waitFor((r) => r.body?.event?.event === 'Order Completed');
 * await hook.close();
 *
 * @example
 * // A site: the answer is chosen from the request.
 * const site = await startReceiver({ answer: (r) => ({ headers: { 'content-type': 'text/html' }, body: pages[r.path] }) });
 */
export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const accepted: ReceivedRequest[] = [];
  const open = new Set<ReceivedRequest>();
  const queued: ScriptedAnswer[] = [];
  const waiters = new Set<() => void>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let script: AnswerScript = options.answer ?? {};
  let peakOpen = 0;
  const changed = () => {
    for (const check of [...waiters]) check();
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    // A sender that goes away mid-request must not crash the test process.
    req.on('error', () => {});
    res.on('error', () => {});
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const request: ReceivedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        raw,
        body: parse(raw),
        status: undefined,
      };
      requests.push(request);
      open.add(request);
      peakOpen = Math.max(peakOpen, open.size);
      const answer = queued.shift() ?? (typeof script === 'function' ? script(request) : script) ?? {};
      const answered = (status: number) => {
        request.status = status;
        // A request from before a reset() is answered, but no longer counted.
        if (open.delete(request) && status >= 200 && status < 300) accepted.push(request);
        changed();
      };
      changed();
      if (answer.respond) {
        res.on('finish', () => answered(res.statusCode));
        res.on('close', () => {
          if (open.delete(request)) changed();
        });
        answer.respond(res);
        return;
      }
      const status = answer.status ?? 200;
      const send = () => {
        answered(status);
        const { headers, body } = encode(answer);
        if (!res.destroyed) res.writeHead(status, headers).end(body);
      };
      if (answer.delayMs && answer.delayMs > 0) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          send();
        }, answer.delayMs);
        timers.add(timer);
      } else send();
    });
  });
  // Idle keep-alive sockets (a killed sender's among them) are dropped after 1 s rather than Node's 5 s
  // unless told otherwise (see keepAliveTimeoutMs).
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 1000;
  let connections = 0;
  server.on('connection', () => connections++);
  const host = options.host === undefined ? '127.0.0.1' : options.host;
  await new Promise<void>((resolve) => {
    if (host === null) server.listen(0, resolve);
    else server.listen(0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://${host === null ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${port}`;

  function waitFor(
    target: number | ((request: ReceivedRequest) => unknown),
    { timeoutMs = 30_000, among = 'accepted' }: WaitOptions = {},
  ): Promise<ReceivedRequest | ReceivedRequest[]> {
    const list = among === 'all' ? requests : accepted;
    const what = typeof target === 'number' ? `${target} requests (${among})` : `a matching request (${among})`;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      const check = () => {
        if (typeof target === 'number') {
          if (list.length >= target) {
            done();
            resolve(list.slice());
          }
          return;
        }
        const found = list.find((r) => target(r));
        if (found) {
          done();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; ${requests.length} arrived, ${accepted.length} accepted`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  }

  return {
    url: `${origin}${options.path ?? '/hook'}`,
    origin,
    port,
    requests,
    accepted,
    open: () => [...open],
    peakOpen: () => peakOpen,
    connections: () => connections,
    answer: (next) => {
      script = next;
    },
    queue: (...answers) => {
      queued.push(...answers);
    },
    reset: () => {
      requests.length = 0;
      accepted.length = 0;
      queued.length = 0;
      open.clear();
      peakOpen = 0;
    },
    waitFor: waitFor as Receiver['waitFor'],
    close: () =>
      new Promise<void>((resolve) => {
        // Answers still delayed are dropped with their connections: they stay open (status undefined).
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
