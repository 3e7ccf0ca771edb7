import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../src/options.ts';
import { backoffDelay, isRetryableStatus, parseRetryAfter, RETRY_AFTER_CEILING_MS, retryDelay } from '../src/retry.ts';

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('2', now)).toBe(2_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('1.5', now)).toBe(1_500);
  });
  it('reads an HTTP date, never negative', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:03 GMT', now)).toBe(3_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now)).toBe(0);
  });
  it('ignores absent or unreadable values', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});

describe('backoff', () => {
  it('doubles per retry up to the cap, with jitter in the upper half', () => {
    expect(backoffDelay(1, 100, 1_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 1_000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 1_000, () => 1)).toBe(400);
    expect(backoffDelay(10, 100, 1_000, () => 1)).toBe(1_000);
    expect(backoffDelay(10, 100, 1_000, () => 0)).toBe(500);
  });
  it('prefers Retry-After, capped', () => {
    expect(retryDelay(1, 3_000, 100, 200)).toBe(3_000);
    expect(retryDelay(1, 10 * RETRY_AFTER_CEILING_MS, 100, 200)).toBe(RETRY_AFTER_CEILING_MS);
    expect(retryDelay(1, undefined, 100, 200)).toBeLessThanOrEqual(100);
  });
  it('classifies statuses', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 413, 422].some(isRetryableStatus)).toBe(false);
  });
});

describe('resolveOptions', () => {
  it('applies defaults and builds the endpoint', () => {
    const o = resolveOptions({ writeKey: 'k', host: 'https://cairn.example.com/base/' });
    expect(o).toMatchObject({ endpoint: 'https://cairn.example.com/base/v1/batch', flushAt: 20, gzip: true });
    expect(Object.isFrozen(o)).toBe(true);
  });
  it('throws on a misconfiguration', () => {
    expect(() => resolveOptions({ writeKey: '' })).toThrow(/writeKey/);
    expect(() => resolveOptions({ writeKey: 'k', host: 'ftp://x' })).toThrow(/host/);
    expect(() => resolveOptions({ writeKey: 'k', flushAt: 2_501 })).toThrow(/flushAt/);
    expect(() => resolveOptions({ writeKey: 'k', maxRetries: -1 })).toThrow(/maxRetries/);
    expect(() => resolveOptions({ writeKey: 'k', retryBaseDelay: 100, retryMaxDelay: 10 })).toThrow(/retryMaxDelay/);
  });
});
