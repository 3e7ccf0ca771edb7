import { describe, expect, it } from 'vitest';
import { setup, trackMany } from './helpers.ts';

describe('retries', () => {
  it('retries a 500 and then delivers each messageId, repeats only under the same messageId', async () => {
    const { receiver, client, errors, retries } = await setup({ flushAt: 100 });
    receiver.reply({ status: 500 }, { status: 503 });
    const ids = trackMany(client, 5);
    await client.flush();
    expect(errors).toEqual([]);
    expect(retries.map((r) => r.status)).toEqual([500, 503]);
    expect(receiver.requests.map((r) => r.status)).toEqual([500, 503, 200]);
    // Every attempt carried exactly the same messages, so server-side dedup makes the retries harmless.
    for (const r of receiver.requests) expect(r.body.batch.map((m) => m.messageId)).toEqual(ids);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('keeps messageIds and refreshes sentAt when a response is lost to a timeout', async () => {
    const { receiver, client, errors, retries } = await setup({ timeout: 100 });
    receiver.reply({ status: 200, delayMs: 1_000 });
    client.track({ userId: 'u1', event: 'Slow' });
    await client.flush();
    expect(errors).toEqual([]);
    expect(retries[0]?.reason).toMatch(/timed out/);
    const [first, second] = receiver.requests;
    expect(first?.body.batch[0]?.messageId).toBe(second?.body.batch[0]?.messageId);
    expect(first?.body.batch[0]?.timestamp).toBe(second?.body.batch[0]?.timestamp);
    expect(Date.parse(second?.body.sentAt ?? '')).toBeGreaterThanOrEqual(Date.parse(first?.body.sentAt ?? ''));
  });

  it('delivers after the server was down (port closed) and came back', async () => {
    const { receiver, client, errors } = await setup({ maxRetries: 1_000 });
    await receiver.close();
    let downReason = '';
    const reopened = new Promise<void>((resolve) => {
      const off = client.on('retry', (r) => {
        downReason = r.reason;
        off();
        void receiver.open().then(resolve);
      });
    });
    const ids = trackMany(client, 3);
    const flushed = client.flush();
    await reopened;
    await flushed;
    expect(downReason).toMatch(/network error.*ECONNREFUSED/);
    expect(errors).toEqual([]);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it.each([400, 401, 413])('does not retry a %i and reports it with the server error', async (status) => {
    const { receiver, client, errors, retries } = await setup();
    const serverError = { code: 'invalid_event', message: 'batch[0].timestamp: not an ISO-8601 date' };
    receiver.reply({ status, body: { error: serverError } });
    const ids = trackMany(client, 2);
    await client.flush();
    expect(receiver.requests).toHaveLength(1);
    expect(retries).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'delivery_failed', status, attempts: 1, serverError });
    expect(errors[0]?.message).toContain('not an ISO-8601 date');
    expect(errors[0]?.messages.map((m) => m.messageId)).toEqual(ids);
    // The client carries on with later messages.
    const later = trackMany(client, 1);
    await client.flush();
    expect(receiver.deliveredIds()).toEqual(later);
  });

  it('retries 408 and 429', async () => {
    const { receiver, client, errors } = await setup();
    receiver.reply({ status: 408 }, { status: 429 });
    const ids = trackMany(client, 1);
    await client.flush();
    expect(errors).toEqual([]);
    expect(receiver.requests.map((r) => r.status)).toEqual([408, 429, 200]);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('honours Retry-After in seconds', async () => {
    const { receiver, client, errors, retries } = await setup();
    receiver.reply({ status: 429, headers: { 'retry-after': '1' } });
    const ids = trackMany(client, 1);
    await client.flush();
    expect(errors).toEqual([]);
    // Backoff alone would wait at most retryMaxDelay (5 ms); the server's answer wins.
    expect(retries.map((r) => r.delayMs)).toEqual([1_000]);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('honours Retry-After as an HTTP date', async () => {
    const { receiver, client, retries } = await setup();
    receiver.reply({ status: 503, headers: { 'retry-after': new Date(Date.now() + 2_000).toUTCString() } });
    const ids = trackMany(client, 1);
    await client.flush();
    expect(retries).toHaveLength(1);
    expect(retries[0]?.delayMs).toBeGreaterThan(500);
    expect(retries[0]?.delayMs).toBeLessThanOrEqual(2_000);
    expect(receiver.deliveredIds()).toEqual(ids);
  });

  it('reports delivery_failed after maxRetries and moves on', async () => {
    const { receiver, client, errors } = await setup({ maxRetries: 2 });
    receiver.reply({ status: 500 }, { status: 500 }, { status: 500 });
    const failed = trackMany(client, 2);
    await client.flush();
    expect(receiver.requests).toHaveLength(3);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'delivery_failed', status: 500, attempts: 3 });
    expect(errors[0]?.messages.map((m) => m.messageId)).toEqual(failed);
    const later = trackMany(client, 1);
    await client.flush();
    expect(receiver.deliveredIds()).toEqual(later);
  });

  it('uses growing, capped, jittered backoff delays when no Retry-After is sent', async () => {
    const { receiver, client, retries } = await setup({ retryBaseDelay: 2, retryMaxDelay: 8, maxRetries: 5 });
    receiver.reply(...Array.from({ length: 5 }, () => ({ status: 502 })));
    trackMany(client, 1);
    await client.flush();
    expect(receiver.deliveredIds()).toHaveLength(1);
    expect(retries).toHaveLength(5);
    const ceilings = [2, 4, 8, 8, 8];
    retries.forEach((r, i) => {
      expect(r.delayMs).toBeGreaterThanOrEqual((ceilings[i] ?? 0) / 2);
      expect(r.delayMs).toBeLessThanOrEqual(ceilings[i] ?? 0);
    });
  });
});
