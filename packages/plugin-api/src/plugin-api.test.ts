import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePlugin } from './define.ts';
import { errorOutcome, MAX_ERROR_LENGTH, PermanentError, parseRetryAfter, RetryableError } from './errors.ts';
import { runPlugin } from './harness.ts';

const base = {
  name: 'probe',
  version: '1.0.0',
  description: 'test plugin',
  settings: z.object({ mode: z.enum(['ok', 'retry', 'permanent', 'crash', 'mixed', 'short']) }),
  purposes: ['analytics'],
  accepts: ['track'] as const,
};

const probe = definePlugin({
  ...base,
  batchSize: 2,
  async send(items, ctx) {
    await ctx.kv.set('seen', (((await ctx.kv.get('seen')) as number | undefined) ?? 0) + items.length);
    ctx.log.info('batch', { size: items.length });
    switch (ctx.settings.mode) {
      case 'retry':
        throw new RetryableError('busy', { retryAfter: 5, statusCode: 503 });
      case 'permanent':
        throw new PermanentError('bad address', { statusCode: 550 });
      case 'crash':
        throw new Error('boom');
      case 'mixed':
        return items.map((_, i) => (i === 0 ? undefined : { status: 'failed' as const, error: 'nope' }));
      case 'short':
        return [];
      default:
        return undefined;
    }
  },
});

describe('definePlugin', () => {
  it('refuses a malformed definition when it is loaded', () => {
    expect(() => definePlugin({ ...base, name: 'Bad Name', send: async () => undefined })).toThrow(/name must be/);
    expect(() => definePlugin({ ...base, accepts: [], send: async () => undefined })).toThrow(/accepts/);
    expect(() => definePlugin({ ...base, batchSize: 0, send: async () => undefined })).toThrow(/batchSize/);
  });
});

describe('runPlugin and sendBatch', () => {
  it('batches by batchSize, keeps kv and logs', async () => {
    const r = await runPlugin(probe, { mode: 'ok' }, [{}, {}, {}]);
    expect(r.outcomes).toEqual([{ status: 'delivered' }, { status: 'delivered' }, { status: 'delivered' }]);
    expect(r.kv.get('seen')).toBe(3);
    expect(r.logs.map((l) => l.data?.size)).toEqual([2, 1]);
    expect(r.items[0]!.idempotencyKey).toBe(`${r.items[0]!.event.messageId}:test`);
  });

  it('maps thrown errors to the retry decision for every item of the batch', async () => {
    expect((await runPlugin(probe, { mode: 'retry' }, [{}])).outcomes).toEqual([
      { status: 'retry', error: 'busy', retryAfter: 5, statusCode: 503 },
    ]);
    expect((await runPlugin(probe, { mode: 'permanent' }, [{}])).outcomes).toEqual([
      { status: 'failed', error: 'bad address', statusCode: 550 },
    ]);
    expect((await runPlugin(probe, { mode: 'crash' }, [{}])).outcomes).toEqual([{ status: 'retry', error: 'boom' }]);
  });

  it('errorOutcome keeps the status code and cuts long messages', () => {
    const long = new RetryableError(`HTTP 500: ${'x'.repeat(5000)}`, { statusCode: 500 });
    const outcome = errorOutcome(long);
    expect(outcome).toMatchObject({ status: 'retry', statusCode: 500 });
    expect(outcome.error).toHaveLength(MAX_ERROR_LENGTH);
    // Only Cairn's errors speak for the receiver: a statusCode on any other error is not taken.
    expect(errorOutcome(Object.assign(new Error('x'), { statusCode: 'nope' }))).toEqual({
      status: 'retry',
      error: 'x',
    });
  });

  it('takes per-item results, and refuses a wrong number of them', async () => {
    expect((await runPlugin(probe, { mode: 'mixed' }, [{}, {}])).outcomes).toEqual([
      { status: 'delivered' },
      { status: 'failed', error: 'nope' },
    ]);
    const short = await runPlugin(probe, { mode: 'short' }, [{}]);
    expect(short.outcomes[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('returned 0 results') });
  });

  it('validates settings with the plugin schema', async () => {
    await expect(runPlugin(probe, { mode: 'nope' }, [])).rejects.toThrow(/invalid settings for probe: mode/);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('30')).toBe(30);
    expect(parseRetryAfter('Sun, 22 Nov 2026 10:00:30 GMT', Date.parse('2026-11-22T10:00:00Z'))).toBe(30);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
