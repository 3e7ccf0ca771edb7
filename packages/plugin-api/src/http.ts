import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { RetryableError } from './errors.ts';
import type { PluginFetch } from './types.ts';

/**
 * The HTTP client behind `ctx.fetch`: `undici`'s `request()` on one shared keep-alive `Agent`, wrapped
 * so that a plugin still calls `fetch(url, init)` and gets a standard `Response` back. Node's global
 * `fetch` is the same library underneath, but its WHATWG machinery (Request objects, web streams for
 * every body, per-call signal plumbing) cost about as much CPU as the rest of a delivery together;
 * this path skips it.
 *
 * What differs from the global `fetch`, on purpose:
 * - The response body is read in full before the `Response` is returned (up to
 *   {@link MAX_RESPONSE_BYTES}), so the socket goes back to the pool at once even when a plugin never
 *   reads the body (most only look at the status), and the per-call timeout covers the body too.
 * - No `accept-encoding` is sent (receivers answer uncompressed); a `gzip`, `deflate` or `br` body
 *   that comes anyway is decoded, like `fetch` does.
 * - Bodies other than a string, bytes, `URLSearchParams` or `Blob` (a `FormData`, a stream) are
 *   handed to the global `fetch` unchanged, so nothing a plugin could send before breaks.
 */

/** A response larger than this fails the call (retryable): the whole body is held in memory. */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Redirects followed before giving up, as `fetch` does. */
export const MAX_REDIRECTS = 20;

let shared: Agent | undefined;

/**
 * The process-wide keep-alive `Agent` all plugin calls share: one pool per origin of up to 128
 * connections (more requests to one origin wait for a free one, within their timeout); idle sockets
 * are kept 4 s unless the receiver's `Keep-Alive` header says otherwise (at most 60 s).
 *
 * @example
 * const { statusCode, body } = await pluginAgent().request({ origin, path: '/', method: 'GET' });
 * await body.dump();
 */
export function pluginAgent(): Agent {
  shared ??= new Agent({
    connections: 128,
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
    connectTimeout: 10_000,
    maxResponseSize: MAX_RESPONSE_BYTES,
  });
  return shared;
}

/**
 * Closes the shared `Agent` (waits for calls in flight); the next call opens a new one. For graceful
 * shutdown and tests: idle keep-alive sockets do not keep the process alive anyway.
 *
 * @example
 * await closePluginAgent();
 */
export async function closePluginAgent(): Promise<void> {
  const agent = shared;
  shared = undefined;
  await agent?.close();
}

// One abort listener per outside signal (the delivery's), whatever the number of calls in flight:
// a listener per call would trip Node's "possible EventTarget memory leak" warning at 11 calls.
const followers = new WeakMap<AbortSignal, Set<AbortController>>();

function follow(outside: AbortSignal, controller: AbortController): () => void {
  let set = followers.get(outside);
  if (!set) {
    const members = new Set<AbortController>();
    set = members;
    followers.set(outside, members);
    outside.addEventListener(
      'abort',
      () => {
        for (const c of members) c.abort(outside.reason);
        members.clear();
      },
      { once: true },
    );
  }
  set.add(controller);
  const members = set;
  return () => members.delete(controller);
}

type Init = NonNullable<Parameters<PluginFetch>[1]>;
type Pairs = Array<[string, string]>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([204, 205, 304]);
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const NORMALISED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH']);
const BODY_HEADERS = new Set(['content-type', 'content-encoding', 'content-language', 'content-location']);
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

function headerPairs(headers: Init['headers']): Pairs {
  const pairs: Pairs = [];
  if (!headers) return pairs;
  if (headers instanceof Headers || Array.isArray(headers)) {
    for (const [k, v] of headers as Iterable<[string, string]>) pairs.push([String(k).toLowerCase(), String(v)]);
  } else {
    for (const k of Object.keys(headers))
      pairs.push([k.toLowerCase(), String((headers as Record<string, unknown>)[k])]);
  }
  return pairs;
}

function has(pairs: Pairs, name: string): boolean {
  for (const [k] of pairs) if (k === name) return true;
  return false;
}

/**
 * The body as undici takes it (a promise only for a `Blob`), or `undefined` when it is a kind only the
 * global `fetch` handles. Adds the content type `fetch` would.
 */
function bodyOf(body: Init['body'], pairs: Pairs): string | Uint8Array | null | undefined | Promise<Uint8Array> {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') {
    if (!has(pairs, 'content-type')) pairs.push(['content-type', 'text/plain;charset=UTF-8']);
    return body;
  }
  if (body instanceof Uint8Array) return body;
  if (body instanceof URLSearchParams) {
    if (!has(pairs, 'content-type')) pairs.push(['content-type', 'application/x-www-form-urlencoded;charset=UTF-8']);
    return body.toString();
  }
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Blob) {
    if (body.type && !has(pairs, 'content-type')) pairs.push(['content-type', body.type]);
    return body.arrayBuffer().then((b) => new Uint8Array(b));
  }
  return undefined;
}

function flat(pairs: Pairs): string[] {
  const out: string[] = [];
  for (const [k, v] of pairs) out.push(k, v);
  return out;
}

const decoders: Record<string, (b: Uint8Array) => Promise<Buffer>> = {
  gzip: (b) => promisify(zlib.gunzip)(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  'x-gzip': (b) => promisify(zlib.gunzip)(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  deflate: (b) =>
    promisify(zlib.inflate)(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).catch(() =>
      promisify(zlib.inflateRaw)(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
    ),
  br: (b) => promisify(zlib.brotliDecompress)(b),
};

function responseOf(
  url: URL,
  redirected: boolean,
  data: { statusCode: number; statusText?: string; headers: Record<string, string | string[] | undefined> },
  bytes: Uint8Array | null,
): Response {
  const headers = new Headers();
  for (const k of Object.keys(data.headers)) {
    const v = data.headers[k];
    if (Array.isArray(v)) for (const one of v) headers.append(k, one);
    else if (v !== undefined) headers.append(k, v);
  }
  // An empty body as null: no stream to set up for the many receivers that answer with nothing.
  if (bytes?.byteLength === 0) bytes = null;
  let res: Response;
  try {
    res = new Response(bytes, { status: data.statusCode, statusText: data.statusText ?? '', headers });
  } catch {
    // A reason phrase the Response constructor refuses (odd bytes): keep the status, drop the phrase.
    res = new Response(bytes, { status: data.statusCode, headers });
  }
  Object.defineProperty(res, 'url', { value: url.href });
  if (redirected) Object.defineProperty(res, 'redirected', { value: true });
  return res;
}

async function exchange(
  dispatcher: Dispatcher,
  input: string | URL,
  init: Init,
  pairs: Pairs,
  body: string | Uint8Array | null,
  signal: AbortSignal,
): Promise<Response> {
  let url = new URL(input);
  let method = init.method ?? 'GET';
  const upper = method.toUpperCase();
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`method ${method} is not allowed`);
  if (NORMALISED_METHODS.has(upper)) method = upper;
  if (body !== null && (method === 'GET' || method === 'HEAD')) {
    throw new TypeError('a GET or HEAD request cannot have a body');
  }
  if (!has(pairs, 'accept')) pairs.push(['accept', '*/*']);
  if (!has(pairs, 'user-agent')) pairs.push(['user-agent', 'node']);
  const mode = init.redirect ?? 'follow';
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`unsupported URL ${url.href}`);
    if (url.username || url.password) throw new TypeError('a URL with credentials cannot be fetched');
    const data = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: method as Dispatcher.HttpMethod,
      headers: flat(pairs),
      body,
      signal,
    });
    const location = data.headers.location;
    if (mode !== 'manual' && REDIRECTS.has(data.statusCode) && typeof location === 'string') {
      await data.body.dump();
      if (mode === 'error') throw new TypeError(`redirected (${data.statusCode}) while redirect is "error"`);
      if (hop >= MAX_REDIRECTS) throw new TypeError(`more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, url);
      // As fetch: 303, and 301/302 after a POST, become a GET without a body.
      if (
        (data.statusCode === 303 && method !== 'GET' && method !== 'HEAD') ||
        ((data.statusCode === 301 || data.statusCode === 302) && method === 'POST')
      ) {
        method = 'GET';
        body = null;
        pairs = pairs.filter(([k]) => !BODY_HEADERS.has(k));
      }
      if (next.origin !== url.origin) pairs = pairs.filter(([k]) => !CREDENTIAL_HEADERS.has(k));
      url = next;
      continue;
    }
    const nullBody = method === 'HEAD' || NULL_BODY.has(data.statusCode);
    let bytes: Uint8Array | null = null;
    if (nullBody) await data.body.dump();
    else {
      bytes = await data.body.bytes();
      const coding = data.headers['content-encoding'];
      const decode = typeof coding === 'string' ? decoders[coding.trim().toLowerCase()] : undefined;
      if (decode && bytes.byteLength > 0) bytes = await decode(bytes);
    }
    return responseOf(url, hop > 0, data, bytes);
  }
}

function failure(err: unknown, timedOut: boolean, timeoutMs: number): RetryableError {
  if (err instanceof RetryableError) return err;
  // Network errors, timeouts and aborts are worth retrying; say which.
  const e = err as { message?: string; code?: string; cause?: { code?: string } } | undefined;
  const reason = timedOut ? `timed out after ${timeoutMs} ms` : String(e?.message ?? err);
  const code = [e?.code, e?.cause?.code].find((c) => typeof c === 'string');
  const suffix = code && !reason.includes(code) ? ` (${code})` : '';
  return new RetryableError(`request failed: ${reason}${suffix}`, { cause: err });
}

/**
 * One plugin HTTP call: `fetch(input, init)` semantics on the shared keep-alive agent, aborted after
 * `timeoutMs` (connecting, sending and reading the whole response) or when `signal` or `init.signal`
 * aborts. Any failure to get a response — timeout, abort, refused or reset connection, DNS, a bad
 * URL — throws a `RetryableError` saying why; a response of any status is returned as is.
 *
 * @example
 * const res = await pluginHttp('https://hooks.example.test/in', { method: 'POST', body: '{}' }, {
 *   signal: controller.signal,
 *   timeoutMs: 10_000,
 * });
 * if (res.status === 200) console.log(await res.json());
 */
export async function pluginHttp(
  input: string | URL,
  init: Init,
  options: { signal: AbortSignal; timeoutMs: number; dispatcher?: Dispatcher },
): Promise<Response> {
  const { timeoutMs } = options;
  const pairs = headerPairs(init.headers);
  let body: ReturnType<typeof bodyOf>;
  try {
    body = bodyOf(init.body, pairs);
    if (body instanceof Promise) body = await body;
  } catch (err) {
    throw failure(err, false, timeoutMs);
  }
  if (body === undefined) return viaGlobalFetch(input, init, options.signal, timeoutMs);

  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  timer.unref();
  const unfollow = follow(options.signal, controller);
  const unfollowOwn = init.signal ? follow(init.signal, controller) : undefined;
  try {
    if (options.signal.aborted) controller.abort(options.signal.reason);
    if (init.signal?.aborted) controller.abort(init.signal.reason);
    controller.signal.throwIfAborted();
    return await exchange(options.dispatcher ?? pluginAgent(), input, init, pairs, body, controller.signal);
  } catch (err) {
    throw failure(err, timedOut, timeoutMs);
  } finally {
    clearTimeout(timer);
    unfollow();
    unfollowOwn?.();
  }
}

/** The former path, for bodies undici does not take as they are (FormData, streams). */
async function viaGlobalFetch(
  input: string | URL,
  init: Init,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Response> {
  const { timeoutMs: _, signal: own, ...rest } = init;
  const signals = [signal, AbortSignal.timeout(timeoutMs), ...(own ? [own] : [])];
  try {
    return await fetch(input, { ...rest, signal: AbortSignal.any(signals) });
  } catch (err) {
    throw failure(err, (err as Error)?.name === 'TimeoutError', timeoutMs);
  }
}
