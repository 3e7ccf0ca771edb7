/** Ceiling on a server's Retry-After, so a misbehaving proxy cannot stall `close()` for hours. */
export const RETRY_AFTER_CEILING_MS = 60_000;

/** Network errors, timeouts, 408, 429 and 5xx may succeed later; any other status is final. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Exponential backoff with "equal jitter": half the doubled delay is fixed, half random, so retries from many
 * processes spread out without ever collapsing to zero.
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Parses `Retry-After` (delta-seconds or an HTTP date) into milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before the next attempt: the server's Retry-After when it sent one (capped), else jittered backoff. */
export function retryDelay(retry: number, retryAfterMs: number | undefined, baseMs: number, maxMs: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, RETRY_AFTER_CEILING_MS);
  return backoffDelay(retry, baseMs, maxMs);
}
