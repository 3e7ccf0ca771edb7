import { gunzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import pkg from '../package.json' with { type: 'json' };
import { setup, trackMany } from './helpers.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('batching', () => {
  it('sends once flushAt messages are waiting, and holds fewer until flush()', async () => {
    const { receiver, client, sent } = await setup({ flushAt: 3 });
    const ids = trackMany(client, 3);
    await vi.waitFor(() => expect(sent).toHaveLength(1));
    const more = trackMany(client, 2); // below flushAt: held (flushInterval is an hour in these tests)
    expect(receiver.requests.map((r) => r.body.batch.length)).toEqual([3]);
    await client.flush();
    expect(receiver.requests.map((r) => r.body.batch.length)).toEqual([3, 2]);
    expect(receiver.deliveredIds()).toEqual([...ids, ...more]);
  });

  it('while a request is in flight, the next batch takes everything that piled up', async () => {
    const { receiver, client } = await setup({ flushAt: 3 });
    const ids = trackMany(client, 8); // the 3rd call starts a request; 5 more pile up behind it
    await client.flush();
    expect(receiver.requests.map((r) => r.body.batch.length)).toEqual([3, 5]);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('sends what is waiting after flushInterval without flush()', async () => {
    const { receiver, client } = await setup({ flushAt: 100, flushInterval: 30 });
    const ids = trackMany(client, 2);
    await vi.waitFor(() => expect(receiver.deliveredIds()).toEqual(ids));
    expect(receiver.requests).toHaveLength(1);
  });

  it('flush() with nothing queued resolves without a request', async () => {
    const { receiver, client } = await setup();
    await client.flush();
    expect(receiver.requests).toHaveLength(0);
  });
});

describe('wire format', () => {
  it('gzips the body and sends the Segment batch shape with Basic auth', async () => {
    const seen: Buffer[] = [];
    const { receiver, client } = await setup({
      // Wrap fetch only to look at the bytes actually put on the wire.
      fetch: async (url, init) => {
        seen.push(Buffer.from(init?.body as Uint8Array));
        return fetch(url, init);
      },
    });
    client.track({ userId: 'u1', event: 'Order Completed', properties: { total: 10 } });
    await client.flush();
    const [request] = receiver.requests;
    expect(request?.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(seen[0] as Buffer).toString()).toBe(request?.text);
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('wk_test:').toString('base64')}`);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(Number.isNaN(Date.parse(request?.body.sentAt ?? ''))).toBe(false);
    const [message] = request?.body.batch ?? [];
    expect(message).toMatchObject({
      type: 'track',
      userId: 'u1',
      event: 'Order Completed',
      properties: { total: 10 },
      context: { library: { name: '@cairn/node', version: pkg.version } },
    });
    expect(message?.messageId).toMatch(UUID);
    expect(Number.isNaN(Date.parse(message?.timestamp ?? ''))).toBe(false);
  });

  it('sends plain JSON when gzip is off', async () => {
    const { receiver, client } = await setup({ gzip: false });
    client.identify({ userId: 'u1', traits: { plan: 'pro' } });
    await client.flush();
    expect(receiver.requests[0]?.headers['content-encoding']).toBeUndefined();
    expect(receiver.requests[0]?.body.batch[0]).toMatchObject({ type: 'identify', traits: { plan: 'pro' } });
  });

  it('supports every call type and keeps caller fields, timestamp and context', async () => {
    const { receiver, client, errors } = await setup();
    const at = new Date('2025-03-01T12:00:00.000Z');
    const context = { ip: '203.0.113.7' };
    client.identify({ userId: 'u1', traits: { email: 'a@example.com' }, timestamp: at, context });
    client.track({ anonymousId: 'a1', event: 'Viewed', timestamp: '2025-03-01T13:00:00+01:00' });
    client.page({ userId: 'u1', name: 'Home', properties: { url: 'https://example.com/' } });
    client.screen({ userId: 'u1', name: 'Checkout' });
    client.group({ userId: 'u1', groupId: 'acme', traits: { name: 'Acme' } });
    client.alias({ previousId: 'a1', userId: 'u1' });
    await client.flush();
    expect(errors).toEqual([]);
    const batch = receiver.requests.flatMap((r) => r.body.batch);
    expect(batch.map((m) => m.type)).toEqual(['identify', 'track', 'page', 'screen', 'group', 'alias']);
    expect(batch[0]).toMatchObject({ timestamp: at.toISOString(), context: { ip: '203.0.113.7' } });
    expect(batch[1]?.timestamp).toBe('2025-03-01T12:00:00.000Z');
    expect(batch[4]).toMatchObject({ groupId: 'acme' });
    expect(batch[5]).toMatchObject({ previousId: 'a1', userId: 'u1' });
  });

  it('snapshots a message when it is queued, so later mutation does not change what is sent', async () => {
    const { receiver, client } = await setup();
    const properties = { total: 1 };
    client.track({ userId: 'u1', event: 'E', properties });
    properties.total = 2;
    await client.flush();
    expect(receiver.requests[0]?.body.batch[0]?.properties).toEqual({ total: 1 });
  });
});

describe('batch limits', () => {
  it('chunks batches under 500 KB', async () => {
    const { receiver, client } = await setup({ flushAt: 2_500 });
    const ids = trackMany(client, 60, { padding: 'x'.repeat(20_000) });
    await client.flush();
    expect(receiver.deliveredIds()).toEqual(ids);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(3);
    for (const r of receiver.requests) expect(Buffer.byteLength(r.text)).toBeLessThanOrEqual(500_000);
  });

  it('chunks batches at 2,500 events', async () => {
    const { receiver, client } = await setup({ flushAt: 2_500 });
    // One request in flight makes the next 3,001 messages pile up, so the cap (not flushAt) splits them.
    const first = trackMany(client, 1);
    const flushed = client.flush();
    // Minimal events (~170 bytes) so 2,500 of them stay under 500 KB and the count limit is what splits.
    const rest = Array.from({ length: 3_001 }, (_, i) => `id-${i}`);
    for (const messageId of rest) client.track({ userId: 'u', event: 'e', messageId });
    await flushed;
    await client.flush();
    expect(receiver.requests.map((r) => r.body.batch.length)).toEqual([1, 2_500, 501]);
    expect(receiver.deliveredIds()).toEqual([...first, ...rest]);
  });
});
