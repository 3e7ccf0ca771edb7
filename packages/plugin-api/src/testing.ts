// `@cairn/plugin-api/testing`: what a plugin's own tests need besides runPlugin — a scripted HTTP
// receiver on loopback and a profile builder — so no plugin author hand-writes an HTTP server.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeliveryProfile } from './types.ts';

/** One answer of a {@link Receiver}. */
export interface Answer {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is (text/plain unless a content-type header says otherwise); anything else as JSON. */
  body?: unknown;
  /** Wait this long before answering (a slow receiver, a plugin's timeout). */
  delayMs?: number;
}

/** One request a {@link Receiver} saw. */
export interface ReceivedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The body as text. */
  body: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
  /** The status it was answered with. */
  status: number;
}

/** A real HTTP server on 127.0.0.1 that records requests and answers from a script. */
export interface Receiver {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Every request so far, in arrival order. */
  requests: ReceivedRequest[];
  /** Queues answers for the next requests, one each; once used up, the default answer applies. */
  reply(...answers: Array<Answer | number>): void;
  /** Replaces the default answer (a fixed one, or one chosen per request). */
  answerWith(answer: Answer | number | ((request: ReceivedRequest) => Answer | number)): void;
  /** Resolves once `count` requests have arrived (rejects after `timeoutMs`, default 5 s). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  /** Forgets the recorded requests and the queued answers. */
  reset(): void;
  close(): Promise<void>;
}

const asAnswer = (a: Answer | number): Answer => (typeof a === 'number' ? { status: a } : a);

/**
 * Starts a scripted receiver: answers 200 "ok" unless told otherwise (`reply` for the next requests,
 * `answerWith` for all), records every request with its body, and closes with its connections.
 *
 * @example
 * const receiver = await startReceiver();
 * receiver.reply(200, { status: 503, headers: { 'retry-after': '7' } });
 * const { outcomes } = await runPlugin(plugin, { url: receiver.url }, [{}, {}]);
 * expect(receiver.requests[0]!.json).toMatchObject({ event: { type: 'track' } });
 * await receiver.close();
 */
export async function startReceiver(options: { answer?: Answer | number } = {}): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const script: Answer[] = [];
  let fallback: (request: ReceivedRequest) => Answer = () => asAnswer(options.answer ?? 200);
  const waiters = new Set<() => void>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = new URL(req.url ?? '/', 'http://receiver');
      let json: unknown;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      const request: ReceivedRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        path: parsed.pathname,
        query: parsed.searchParams,
        headers: req.headers,
        body,
        json,
        status: 0,
      };
      const answer = script.shift() ?? fallback(request);
      request.status = answer.status ?? 200;
      requests.push(request);
      for (const wake of waiters) wake();
      const text =
        typeof answer.body === 'string' ? answer.body : answer.body === undefined ? 'ok' : JSON.stringify(answer.body);
      const type = typeof answer.body === 'string' || answer.body === undefined ? 'text/plain' : 'application/json';
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(request.status, { 'content-type': type, ...answer.headers }).end(text);
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    reply: (...answers) => void script.push(...answers.map(asAnswer)),
    answerWith(answer) {
      fallback = typeof answer === 'function' ? (r) => asAnswer(answer(r)) : () => asAnswer(answer);
    },
    waitFor(count, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (requests.length < count) return;
          cleanup();
          resolve(requests.slice(0, count));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`receiver: ${requests.length} of ${count} requests after ${timeoutMs} ms`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    reset() {
      requests.length = 0;
      script.length = 0;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A profile for tests: `id` as the id and user id, no contact points, no traits unless given.
 *
 * @example
 * await runPlugin(plugin, settings, [{}, {}], { profiles: [testProfile('a'), testProfile('b', { email: 'b@x.test' })] });
 */
export function testProfile(id: string, over: Partial<DeliveryProfile> = {}): DeliveryProfile {
  return { id, userId: id, email: null, phone: null, anonymousIds: [], traits: {}, ...over };
}
