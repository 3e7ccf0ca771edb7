/**
 * A failure worth retrying (a timeout, a 5xx, a 429). `retryAfter` (seconds) asks for a minimum wait,
 * e.g. from a `Retry-After` header; Cairn otherwise backs off exponentially with jitter.
 *
 * @example
 * if (res.status >= 500) throw new RetryableError(`receiver answered ${res.status}`);
 * if (res.status === 429) throw new RetryableError('rate limited', { retryAfter: 30 });
 */
export class RetryableError extends Error {
  readonly retryAfter: number | undefined;
  constructor(message: string, options: { retryAfter?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RetryableError';
    this.retryAfter = options.retryAfter;
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
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PermanentError';
  }
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
  const body = (await res.text().catch(() => '')).slice(0, 300);
  const message = `HTTP ${res.status}${body ? `: ${body}` : ''}`;
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    throw new RetryableError(message, { retryAfter: parseRetryAfter(res.headers.get('retry-after')) });
  }
  throw new PermanentError(message);
}
