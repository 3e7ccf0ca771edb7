import type { CairnError } from './errors.ts';

/**
 * Server limits (DESIGN.md), read strictly (decimal KB, uncompressed UTF-8 bytes) so the server never refuses a
 * batch for a size we let through.
 */
export const MAX_EVENT_BYTES = 32_000;
export const MAX_BATCH_BYTES = 500_000;
export const MAX_BATCH_EVENTS = 2_500;

export const DEFAULT_HOST = 'http://localhost:8787';
export const DEFAULT_FLUSH_AT = 20;
export const DEFAULT_FLUSH_INTERVAL_MS = 10_000;
export const DEFAULT_MAX_QUEUE_SIZE = 10_000;
export const DEFAULT_MAX_RETRIES = 5;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRY_BASE_DELAY_MS = 500;
export const DEFAULT_RETRY_MAX_DELAY_MS = 30_000;

/**
 * Options of `new Cairn(options)`. Only `writeKey` is required.
 *
 * @example
 * const options: CairnOptions = {
 *   writeKey: process.env.CAIRN_WRITE_KEY!,
 *   host: 'https://cairn.example.com',
 *   flushAt: 50,
 *   onError: (err) => console.warn(err.code, err.message),
 * };
 */
export interface CairnOptions {
  /** The source's write key, sent as the HTTP Basic username. */
  writeKey: string;
  /** Base URL of the Cairn server; `/v1/batch` is appended. Default `http://localhost:8787`. */
  host?: string;
  /** Send as soon as this many messages are waiting (1..2500). Default 20. */
  flushAt?: number;
  /** Send whatever is waiting this many milliseconds after the first message was queued. Default 10000. */
  flushInterval?: number;
  /** Most messages held in memory (waiting + being sent). When full, new messages are dropped. Default 10000. */
  maxQueueSize?: number;
  /** Retries after the first attempt, for network errors, timeouts, 408, 429 and 5xx. Default 5. */
  maxRetries?: number;
  /** Per-request timeout in milliseconds; a timeout counts as a retryable network error. Default 10000. */
  timeout?: number;
  /** First backoff delay in milliseconds; doubles per retry, with jitter. Default 500. */
  retryBaseDelay?: number;
  /** Largest backoff delay in milliseconds. Default 30000. */
  retryMaxDelay?: number;
  /** Gzip request bodies (`Content-Encoding: gzip`). Default true. */
  gzip?: boolean;
  /** Called with every {@link CairnError}; same as `cairn.on('error', fn)`. */
  onError?: (error: CairnError) => void;
  /** A `fetch` implementation to use instead of the global one (proxies, instrumentation). */
  fetch?: typeof fetch;
}

/** Options after defaults and validation; frozen. */
export interface ResolvedOptions {
  readonly writeKey: string;
  readonly endpoint: string;
  readonly flushAt: number;
  readonly flushInterval: number;
  readonly maxQueueSize: number;
  readonly maxRetries: number;
  readonly timeout: number;
  readonly retryBaseDelay: number;
  readonly retryMaxDelay: number;
  readonly gzip: boolean;
  readonly fetch: typeof fetch;
}

function integer(name: string, value: number | undefined, fallback: number, min: number, max = Infinity): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `between ${min} and ${max}`;
    throw new RangeError(`@cairn/node: ${name} must be an integer ${range}, got ${String(value)}`);
  }
  return v;
}

/**
 * Applies defaults and validates once, up front. A misconfiguration is a programming error, so this (and only this)
 * throws.
 */
export function resolveOptions(options: CairnOptions): ResolvedOptions {
  if (typeof options?.writeKey !== 'string' || options.writeKey === '') {
    throw new TypeError('@cairn/node: writeKey is required');
  }
  const host = (options.host ?? DEFAULT_HOST).replace(/\/+$/, '');
  if (!URL.canParse(host) || !/^https?:$/.test(new URL(host).protocol)) {
    throw new TypeError(`@cairn/node: host must be an http(s) URL, got ${JSON.stringify(options.host)}`);
  }
  const retryBaseDelay = integer('retryBaseDelay', options.retryBaseDelay, DEFAULT_RETRY_BASE_DELAY_MS, 0);
  return Object.freeze({
    writeKey: options.writeKey,
    endpoint: `${host}/v1/batch`,
    flushAt: integer('flushAt', options.flushAt, DEFAULT_FLUSH_AT, 1, MAX_BATCH_EVENTS),
    flushInterval: integer('flushInterval', options.flushInterval, DEFAULT_FLUSH_INTERVAL_MS, 1),
    maxQueueSize: integer('maxQueueSize', options.maxQueueSize, DEFAULT_MAX_QUEUE_SIZE, 1),
    maxRetries: integer('maxRetries', options.maxRetries, DEFAULT_MAX_RETRIES, 0),
    timeout: integer('timeout', options.timeout, DEFAULT_TIMEOUT_MS, 1),
    retryBaseDelay,
    retryMaxDelay: integer('retryMaxDelay', options.retryMaxDelay, DEFAULT_RETRY_MAX_DELAY_MS, retryBaseDelay),
    gzip: options.gzip ?? true,
    fetch: options.fetch ?? globalThis.fetch,
  });
}
