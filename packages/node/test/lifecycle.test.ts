import { describe, expect, it } from 'vitest';
import { Cairn, type CairnError } from '../src/index.ts';
import { setup, trackMany } from './helpers.ts';

describe('queue full', () => {
  it('drops the newest messages once maxQueueSize are held, reporting each with its message', async () => {
    const { receiver, client, errors } = await setup({ maxQueueSize: 5, flushAt: 100 });
    const ids = trackMany(client, 7);
    expect(errors.map((e) => e.code)).toEqual(['queue_full', 'queue_full']);
    expect(errors.flatMap((e) => e.messages.map((m) => m.messageId))).toEqual(ids.slice(5));
    await client.flush();
    expect(receiver.deliveredIds()).toEqual(ids.slice(0, 5));
  });

  it('counts messages being sent against the limit, and frees room once they are delivered', async () => {
    const { receiver, client, errors } = await setup({ maxQueueSize: 3, flushAt: 3 });
    receiver.reply({ status: 200, delayMs: 50 });
    const sent = trackMany(client, 3); // goes in flight at once
    const dropped = trackMany(client, 1);
    expect(errors.flatMap((e) => e.messages.map((m) => m.messageId))).toEqual(dropped);
    await client.flush();
    const later = trackMany(client, 2);
    await client.flush();
    expect(receiver.deliveredIds()).toEqual([...sent, ...later]);
  });
});

describe('rejected before queueing', () => {
  it('rejects an event over 32 KB and never sends it', async () => {
    const { receiver, client, errors } = await setup();
    client.track({ userId: 'u1', event: 'Huge', messageId: 'huge', properties: { blob: 'x'.repeat(40_000) } });
    const ok = trackMany(client, 1);
    await client.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'event_too_large' });
    expect(errors[0]?.messages[0]?.messageId).toBe('huge');
    expect(receiver.deliveredIds()).toEqual(ok);
  });

  it('measures size in UTF-8 bytes, not characters', async () => {
    const { client, errors } = await setup();
    client.track({ userId: 'u1', event: 'Wide', properties: { text: 'é'.repeat(20_000) } }); // 20k chars, 40k bytes
    expect(errors.map((e) => e.code)).toEqual(['event_too_large']);
  });

  it('rejects messages missing what the spec requires, without throwing', async () => {
    const { receiver, client, errors } = await setup();
    const untyped = client as unknown as Record<string, (p: unknown) => void>;
    untyped.track?.({ userId: 'u1' });
    untyped.identify?.({ traits: { a: 1 } });
    untyped.group?.({ userId: 'u1' });
    untyped.alias?.({ userId: 'u1' });
    untyped.track?.(null);
    client.track({ userId: 'u1', event: 'E', timestamp: 'yesterday' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    client.track({ userId: 'u1', event: 'E', properties: circular });
    await client.flush();
    expect(errors.map((e) => e.code)).toEqual(Array(7).fill('invalid_message'));
    expect(receiver.requests).toHaveLength(0);
  });
});

describe('flush() and close()', () => {
  it('flush() resolves after everything queued before it was delivered', async () => {
    const { receiver, client } = await setup({ flushAt: 4 });
    const ids = trackMany(client, 10);
    await client.flush();
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('close() drains the queue, then reports later calls as closed', async () => {
    const { receiver, client, errors } = await setup({ flushAt: 100 });
    const ids = trackMany(client, 25);
    await client.close();
    expect(receiver.deliveredIds()).toEqual(ids);
    client.track({ userId: 'u1', event: 'Too Late' });
    expect(errors.map((e) => e.code)).toEqual(['closed']);
    await client.close(); // idempotent
    expect(receiver.requests).toHaveLength(1);
  });

  it('close() resolves when the server stays down, once retries are exhausted', async () => {
    const { receiver, client, errors, retries } = await setup({ maxRetries: 2, flushAt: 2 });
    await receiver.close();
    const ids = trackMany(client, 5);
    await client.close();
    // Two batches: the first 2 (flushAt), then the 3 that piled up meanwhile; two retries each.
    expect(retries).toHaveLength(2 * 2);
    expect(errors.map((e) => e.code)).toEqual(['delivery_failed', 'delivery_failed']);
    expect(errors.map((e) => e.attempts)).toEqual([3, 3]);
    expect(errors.flatMap((e) => e.messages.map((m) => m.messageId))).toEqual(ids);
  });

  it('reports to onError and falls back to console.error with no listener', async () => {
    const seen: CairnError[] = [];
    const withOption = new Cairn({ writeKey: 'k', onError: (e) => seen.push(e) });
    withOption.track({ userId: 'u1', event: 'x'.repeat(40_000) });
    expect(seen.map((e) => e.code)).toEqual(['event_too_large']);

    const logged: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void logged.push(args.join(' '));
    try {
      new Cairn({ writeKey: 'k' }).track({ userId: 'u1', event: 'x'.repeat(40_000) });
    } finally {
      console.error = original;
    }
    expect(String(logged[0])).toMatch(/event_too_large/);
  });

  it('a throwing listener does not break delivery', async () => {
    const { receiver, client } = await setup();
    const original = console.error;
    console.error = () => {};
    try {
      client.on('sent', () => {
        throw new Error('listener bug');
      });
      const ids = trackMany(client, 2);
      await client.flush();
      expect(receiver.deliveredIds()).toEqual(ids);
    } finally {
      console.error = original;
    }
  });
});
