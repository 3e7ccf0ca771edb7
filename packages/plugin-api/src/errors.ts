import type { ItemOutcome } from './types.ts';

// Errors are recognised by a brand, not by class identity: a third-party plugin has its own copy of this
// package (a peer dependency resolved next to the plugin), and the server's `instanceof` must still see
// its RetryableError as one. Symbol.for is shared by every copy in the process.
const KIND = Symbol.for('@cairn/plugin-api:error-kind');
type Kind = 'retryable' | 'permanent';

function isKind(value: unknown, kind: Kind): boolean {
  return typeof value === 'object' && value !== null && (value as { [KIND]?: unknown })[KIND] === kind;
}

/** Options both errors take. */
export interface PluginErrorOptions {
  /** The receiver's answer (an HTTP status, an SMTP reply code), kept on the delivery's ledger row. */
  statusCode?: number;
  /**
   * Whether every later item of the batch would meet the same failure (credentials refused, rate
   * limit, receiver down): then they are not tried and get this outcome as `not sent: …`. Unset, the
   * framework decides by {@link isSystemic}'s rule.
   */
  systemic?: boolean;
  cause?: unknown;
}

/**
 * A failure worth retrying (a timeout, a 5xx, a 429). `retryAfter` (seconds) asks for a minimum wait,
 * e.g. from a `Retry-After` header; Cairn otherwise backs off exponentially with jitter. `statusCode`
 * is the receiver's answer (an HTTP status, an SMTP reply code), kept on the delivery's ledger row.
 *
 * @example
 * if (res.status >= 500) throw new RetryableError(`receiver answered ${res.status}`, { statusCode: res.status });
 * if (res.status === 429) throw new RetryableError('rate limited', { retryAfter: 30 });
 */
export class RetryableError extends Error {
  readonly retryAfter: number | undefined;
  readonly statusCode: number | undefined;
  readonly systemic: boolean | undefined;
  readonly [KIND]: Kind = 'retryable';
  constructor(message: string, options: PluginErrorOptions & { retryAfter?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RetryableError';
    this.retryAfter = options.retryAfter;
    this.statusCode = options.statusCode;
    this.systemic = options.systemic;
  }
}

/**
 * A failure that will not go away by retrying (a 400, a rejected address, bad settings): the item goes
 * straight to the dead letters, where it can be replayed after the cause is fixed.
 *
 * @example
 * if (res.status === 400) throw new PermanentError(`receiver refused the payload: ${await res.text()}`);
 */
export class PermanentError extends Error {
  /** The receiver's answer (an HTTP status, an SMTP reply code), kept on the dead letter. */
  readonly statusCode: number | undefined;
  readonly systemic: boolean | undefined;
  readonly [KIND]: Kind = 'permanent';
  constructor(message: string, options: PluginErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'PermanentError';
    this.statusCode = options.statusCode;
    this.systemic = options.systemic;
  }
}

type ErrorClass = abstract new (...args: never[]) => Error;

// `instanceof RetryableError` (or PermanentError) also knows another copy's instances by their brand; a
// subclass (`this` is the class asked about) keeps ordinary instanceof.
function brandCheck(base: ErrorClass, kind: Kind) {
  return function hasInstance(this: ErrorClass, value: unknown): boolean {
    return this === base ? isKind(value, kind) : Function.prototype[Symbol.hasInstance].call(this, value);
  };
}
Object.defineProperty(RetryableError, Symbol.hasInstance, { value: brandCheck(RetryableError, 'retryable') });
Object.defineProperty(PermanentError, Symbol.hasInstance, { value: brandCheck(PermanentError, 'permanent') });

/**
 * Statuses that speak about one message (a malformed payload, a conflict, too large, refused content):
 * the rest of a batch is still worth sending after one of them. Every other failure is systemic.
 */
export const PER_MESSAGE_STATUSES: ReadonlySet<number> = new Set([400, 409, 413, 422]);

/**
 * The framework's rule for whether a thrown error stops the rest of a batch (see `sendEach`): the
 * error's own `systemic` when set; else an error with a per-message status ({@link PER_MESSAGE_STATUSES})
 * or a `PermanentError` without a status (bad data of this item) is about this item only; anything
 * else — 401/403/404/429, 5xx, no connection, a timeout, an unexpected error — would meet every later
 * item too.
 *
 * @example
 * isSystemic(new RetryableError('HTTP 503', { statusCode: 503 })); // true
 * isSystemic(new PermanentError('HTTP 400', { statusCode: 400 })); // false
 * isSystemic(new RetryableError('HTTP 500', { statusCode: 500, systemic: false })); // false
 */
export function isSystemic(err: unknown): boolean {
  const cairn = err instanceof RetryableError || err instanceof PermanentError;
  const own = cairn ? (err as { systemic?: unknown }).systemic : undefined;
  if (typeof own === 'boolean') return own;
  const code = cairn ? (err as { statusCode?: unknown }).statusCode : undefined;
  if (typeof code === 'number') return !PER_MESSAGE_STATUSES.has(code);
  return !(err instanceof PermanentError);
}

/** Longest error message an outcome carries (a receiver's body excerpt included). */
export const MAX_ERROR_LENGTH = 1000;

/**
 * The outcome a thrown error stands for: `PermanentError` → failed, anything else → retry (an
 * unexpected error is presumed transient until the retry window runs out), with the error's
 * `retryAfter` and `statusCode`, and its message cut to {@link MAX_ERROR_LENGTH} characters.
 *
 * @example
 * try { await post(item); outcomes[i] = { status: 'delivered' }; } catch (err) { outcomes[i] = errorOutcome(err); }
 */
export function errorOutcome(err: unknown): Exclude<ItemOutcome, { status: 'delivered' }> {
  const error = String((err as Error)?.message ?? err).slice(0, MAX_ERROR_LENGTH);
  const code = (err as { statusCode?: unknown })?.statusCode;
  const statusCode = err instanceof RetryableError || err instanceof PermanentError ? code : undefined;
  const extra = typeof statusCode === 'number' ? { statusCode } : {};
  if (err instanceof PermanentError) return { status: 'failed', error, ...extra };
  const retryAfter = err instanceof RetryableError ? err.retryAfter : undefined;
  return { status: 'retry', error, ...(retryAfter !== undefined ? { retryAfter } : {}), ...extra };
}

/**
 * Reads a `Retry-After` header (seconds or an HTTP date) into seconds, or undefined.
 *
 * @example
 * throw new RetryableError('busy', { retryAfter: parseRetryAfter(res.headers.get('retry-after')) });
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * Turns an HTTP response status into the retry decision most receivers deserve: 2xx ok; 408, 429 and
 * 5xx retryable (honouring Retry-After); any other status permanent.
 *
 * @example
 * checkResponse(await ctx.fetch(url, { method: 'POST', body }));
 */
export async function checkResponse(res: Response): Promise<void> {
  if (res.ok) return;
  // An excerpt: the message is the dead letter's record of what the receiver said.
  const body = (await res.text().catch(() => '')).slice(0, MAX_ERROR_LENGTH - 20);
  const message = `HTTP ${res.status}${body ? `: ${body}` : ''}`;
  const statusCode = res.status;
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    throw new RetryableError(message, { retryAfter: parseRetryAfter(res.headers.get('retry-after')), statusCode });
  }
  throw new PermanentError(message, { statusCode });
}
