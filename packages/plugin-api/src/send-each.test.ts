import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePlugin, PluginValidationError, validatePlugin } from './define.ts';
import { errorOutcome, isSystemic, PermanentError, RetryableError } from './errors.ts';
import { runPlugin, WAITING } from './harness.ts';
import { HELD_BACK } from './run.ts';
import { testProfile } from './testing.ts';
import type { DeliveryItem } from './types.ts';

const base = {
  name: 'probe',
  version: '1.0.0',
  description: 'test plugin',
  settings: z.object({ url: z.string() }),
  purposes: [],
  accepts: ['track'] as const,
};

// Answers by the event's name: "ok", or a status to fail with.
async function byName(item: DeliveryItem): Promise<undefined> {
  const name = item.event.event ?? 'ok';
  if (name === 'ok') return undefined;
  if (name === 'boom') throw new Error('boom');
  const status = Number(name);
  const message = `HTTP ${status}`;
  throw status >= 500 || status === 429 || status === 408
    ? new RetryableError(message, { statusCode: status })
    : new PermanentError(message, { statusCode: status });
}

describe('sendOne: the framework owns the per-item loop', () => {
  const plugin = definePlugin({ ...base, batchSize: 10, sendOne: byName });

  it('maps each thrown error to its item and goes on after a per-message 4xx', async () => {
    const { outcomes } = await runPlugin(plugin, { url: 'x' }, [
      { event: 'ok' },
      { event: '400' },
      { event: '422' },
      {},
    ]);
    expect(outcomes).toEqual([
      { status: 'delivered' },
      { status: 'failed', error: 'HTTP 400', statusCode: 400 },
      { status: 'failed', error: 'HTTP 422', statusCode: 422 },
      { status: 'delivered' },
    ]);
  });

  it('stops the rest of the batch after a systemic failure, with "not sent: …" copies of its outcome', async () => {
    for (const [name, status] of [
      ['503', 'retry'],
      ['401', 'failed'],
      ['boom', 'retry'],
    ] as const) {
      const { outcomes } = await runPlugin(plugin, { url: 'x' }, [{}, { event: name }, {}, {}]);
      expect(outcomes.map((o) => o.status)).toEqual(['delivered', status, status, status]);
      const first = outcomes[1] as { error: string };
      expect(outcomes[2]).toEqual({ ...outcomes[1], error: `not sent: ${first.error}` });
    }
  });

  it('lets the thrown error or the plugin decide what is systemic', async () => {
    expect(isSystemic(new RetryableError('x', { statusCode: 503, systemic: false }))).toBe(false);
    expect(isSystemic(new PermanentError('x', { statusCode: 400, systemic: true }))).toBe(true);
    expect(isSystemic(new PermanentError('no email'))).toBe(false);
    expect(isSystemic(new RetryableError('request failed: ECONNREFUSED'))).toBe(true);
    const lenient = definePlugin({ ...base, name: 'lenient', batchSize: 10, sendOne: byName, systemic: () => false });
    const { outcomes } = await runPlugin(lenient, { url: 'x' }, [{ event: '503' }, {}]);
    expect(outcomes.map((o) => o.status)).toEqual(['retry', 'delivered']);
  });

  it('holds back a profile behind its own failure, sending other profiles in parallel (ordering: profile)', async () => {
    const order: string[] = [];
    let inFlight = 0;
    let most = 0;
    const ordered = definePlugin({
      ...base,
      name: 'ordered',
      batchSize: 10,
      ordering: 'profile',
      parallel: (s: { url: string }) => (s.url === 'x' ? 3 : 1),
      systemic: () => false,
      async sendOne(item) {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        order.push(item.event.messageId);
        return byName(item);
      },
    });
    const events = [
      { messageId: 'a1', event: '503' },
      { messageId: 'b1' },
      { messageId: 'a2' },
      { messageId: 'c1' },
      { messageId: 'b2' },
    ];
    const profiles = ['a', 'b', 'a', 'c', 'b'].map((id) => testProfile(id));
    const { outcomes } = await runPlugin(ordered, { url: 'x' }, events, { profiles });
    expect(outcomes).toEqual([
      { status: 'retry', error: 'HTTP 503', statusCode: 503 },
      { status: 'delivered' },
      { status: 'retry', error: HELD_BACK },
      { status: 'delivered' },
      { status: 'delivered' },
    ]);
    expect(order).not.toContain('a2');
    expect(order.indexOf('b1')).toBeLessThan(order.indexOf('b2'));
    expect(most).toBe(3);
  });

  it('runPlugin holds an ordered profile back across batches too, as the server does', async () => {
    const ordered = definePlugin({ ...base, name: 'ordered', batchSize: 1, ordering: 'profile', sendOne: byName });
    const p = testProfile('p');
    const { outcomes } = await runPlugin(ordered, { url: 'x' }, [{ event: '503' }, {}, {}], {
      profiles: [p, p, testProfile('q')],
    });
    expect(outcomes.map((o) => (o.status === 'delivered' ? o.status : o.error))).toEqual([
      'HTTP 503',
      WAITING,
      'delivered',
    ]);
    await expect(runPlugin(ordered, { url: 'x' }, [{}], { profiles: [] })).rejects.toThrow(/0 profiles for 1 events/);
  });

  it("recognises another copy's errors (a third-party plugin brings its own @cairn/plugin-api)", () => {
    const foreign = Object.assign(new Error('gone'), {
      [Symbol.for('@cairn/plugin-api:error-kind')]: 'permanent',
      statusCode: 410,
    });
    expect(foreign instanceof PermanentError).toBe(true);
    expect(foreign instanceof RetryableError).toBe(false);
    expect(errorOutcome(foreign)).toEqual({ status: 'failed', error: 'gone', statusCode: 410 });
    class Custom extends RetryableError {}
    expect(new RetryableError('x') instanceof Custom).toBe(false);
    expect(new Custom('x') instanceof RetryableError).toBe(true);
  });
});

describe('definePlugin and validatePlugin', () => {
  const send = async () => undefined;

  it('stamps the contract version and refuses send and sendOne together, or neither', () => {
    expect(definePlugin({ ...base, send }).apiVersion).toBe(1);
    expect(() => definePlugin({ ...base, send, sendOne: async () => undefined })).toThrow(/not both/);
    expect(() => definePlugin({ ...base } as never)).toThrow(/send or sendOne must be a function/);
  });

  it('checks a loaded value: shape, apiVersion, every problem named', () => {
    const good = definePlugin({ ...base, send });
    expect(validatePlugin(good)).toBe(good);
    expect(() => validatePlugin({ ...good, apiVersion: 2 })).toThrow(/apiVersion 2 is not supported \(supported: 1\)/);
    expect(() => validatePlugin({ ...good, apiVersion: undefined })).toThrow(/apiVersion is missing/);
    expect(() => validatePlugin(undefined)).toThrow(/expected a plugin definition \(an object\), got undefined/);
    const err = (() => {
      try {
        validatePlugin({ name: 'x', version: '1', settings: {}, purposes: [], accepts: ['nope'], apiVersion: 1 });
      } catch (e) {
        return e as PluginValidationError;
      }
    })();
    expect(err).toBeInstanceOf(PluginValidationError);
    expect(err!.problems).toEqual([
      'send or sendOne must be a function',
      'settings must be a zod schema',
      'accepts: unknown event types "nope"',
    ]);
    expect(err!.message).toMatch(/^plugin x: send or sendOne/);
  });
});
