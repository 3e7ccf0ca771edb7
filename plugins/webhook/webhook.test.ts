import { createHmac } from 'node:crypto';
import { createPluginFetch, PluginSettingsError, runPlugin, sendBatch } from '@cairn/plugin-api';
import { type Receiver, startReceiver, testProfile } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import webhook, { sign } from './index.ts';

describe('webhook plugin against a real HTTP receiver', () => {
  let receiver: Receiver;
  let url: string;
  const received = () => receiver.requests;
  const nope = (status: number) => ({
    status,
    body: 'nope',
    ...(status === 429 ? { headers: { 'retry-after': '7' } } : {}),
  });

  beforeAll(async () => {
    receiver = await startReceiver();
    url = receiver.url;
  });
  beforeEach(() => receiver.reset());
  afterAll(() => receiver.close());

  it('posts each event signed, with its idempotency key and custom headers', async () => {
    const secret = 'a-very-secret-key-123';
    const now = new Date('2026-11-22T10:00:00Z');
    const { outcomes, items } = await runPlugin(
      webhook,
      { url, secret, headers: { 'X-Team': 'growth' } },
      [
        { event: 'Signed Up', messageId: 'm1' },
        { event: 'Order Completed', messageId: 'm2' },
      ],
      { now: () => now },
    );
    expect(outcomes).toEqual([{ status: 'delivered' }, { status: 'delivered' }]);
    expect(received()).toHaveLength(2);
    const [first] = received();
    expect(first!.headers['idempotency-key']).toBe(items[0]!.idempotencyKey);
    expect(first!.headers['x-team']).toBe('growth');
    const t = Math.floor(now.getTime() / 1000);
    const mac = createHmac('sha256', secret).update(`${t}.${first!.raw}`).digest('hex');
    expect(first!.headers['cairn-signature']).toBe(`t=${t},v1=${mac}`);
    expect(sign(secret, first!.raw, t)).toBe(first!.headers['cairn-signature']);
    expect(first!.body).toMatchObject({ idempotencyKey: 'm1:test', event: { event: 'Signed Up' } });
  });

  it('sends batches in one request when asked', async () => {
    const { outcomes } = await runPlugin(webhook, { url, mode: 'batch' }, [{ messageId: 'a' }, { messageId: 'b' }]);
    expect(outcomes).toEqual([{ status: 'delivered' }, { status: 'delivered' }]);
    expect(received()).toHaveLength(1);
    expect(received()[0]!.body.batch.map((b: { idempotencyKey: string }) => b.idempotencyKey)).toEqual([
      'a:test',
      'b:test',
    ]);
  });

  it('retries 5xx and 429 (with Retry-After), dead-letters 4xx, and keeps order after a failure', async () => {
    receiver.queue({ status: 200 }, nope(503));
    const r1 = await runPlugin(webhook, { url }, [{ messageId: '1' }, { messageId: '2' }, { messageId: '3' }]);
    expect(r1.outcomes.map((o) => o.status)).toEqual(['delivered', 'retry', 'retry']);
    expect(received()).toHaveLength(2); // the third was held back behind the failed second
    receiver.queue(nope(429));
    expect((await runPlugin(webhook, { url }, [{}])).outcomes[0]).toMatchObject({ status: 'retry', retryAfter: 7 });
    receiver.queue(nope(400));
    expect((await runPlugin(webhook, { url }, [{}])).outcomes[0]).toMatchObject({
      status: 'failed',
      error: 'HTTP 400: nope',
    });
  });

  it('retries when the receiver is down or too slow', async () => {
    const closed = `http://127.0.0.1:1/hook`;
    const { outcomes } = await runPlugin(webhook, { url: closed }, [{}]);
    expect(outcomes[0]).toMatchObject({ status: 'retry', error: expect.stringContaining('request failed') });
  });

  it('refuses bad settings with the field named', async () => {
    await expect(runPlugin(webhook, { url: 'ftp://x' }, [])).rejects.toThrow(PluginSettingsError);
    await expect(runPlugin(webhook, { url, secret: 'short' }, [])).rejects.toThrow(/secret/);
  });

  it('sends different profiles in parallel but holds back a profile behind its own failure', async () => {
    const failing = new Set(['a1']);
    receiver.answer((r) => ({ status: failing.has(r.body.event.messageId) ? 503 : 200 }));
    const items = [
      { messageId: 'a1', userId: 'a' },
      { messageId: 'b1', userId: 'b' },
      { messageId: 'a2', userId: 'a' },
      { messageId: 'b2', userId: 'b' },
    ];
    // One batch mixing two profiles, as the server sends it.
    const settings = webhook.settings.parse({ url });
    const ctx = {
      settings,
      destination: { id: 'd', name: 'd' },
      fetch: createPluginFetch(new AbortController().signal),
      log: { info() {}, warn() {}, error() {} },
      kv: { get: async () => undefined, set: async () => {}, delete: async () => {} },
      unsubscribeUrl: () => 'http://localhost/u/x',
      now: () => new Date(),
      signal: new AbortController().signal,
    };
    const batch = items.map((e) => ({
      idempotencyKey: `${e.messageId}:d`,
      attempt: 1,
      profile: testProfile(e.userId),
      event: { type: 'track', timestamp: new Date().toISOString(), ...e },
    }));
    try {
      const outcomes = await sendBatch(webhook, batch, ctx);
      expect(outcomes.map((o) => o.status)).toEqual(['retry', 'delivered', 'retry', 'delivered']);
      expect(outcomes[2]).toMatchObject({ error: 'not sent: an earlier event of this profile failed' });
      const seen = received().map((r) => r.body.event.messageId);
      expect(seen.sort()).toEqual(['a1', 'b1', 'b2']);
    } finally {
      receiver.answer({});
    }
  });

  it('runPlugin with a profile per event: one profile held back, the other delivered', async () => {
    receiver.queue(nope(503));
    const { outcomes } = await runPlugin(
      webhook,
      { url, parallel: 1 },
      [{ messageId: 'a1' }, { messageId: 'b1' }, { messageId: 'a2' }],
      {
        profiles: [testProfile('a'), testProfile('b'), testProfile('a')],
      },
    );
    expect(outcomes.map((o) => o.status)).toEqual(['retry', 'delivered', 'retry']);
    expect(received().map((r) => r.body.event.messageId)).toEqual(['a1', 'b1']);
  });
});
