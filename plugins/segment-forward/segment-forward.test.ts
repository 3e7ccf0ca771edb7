import { PluginSettingsError, runPlugin } from '@cairn/plugin-api';
import { type ReceivedRequest, type Receiver, type ScriptedAnswer, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import forward, { batchUrl, forwardable, LIMITS } from './index.ts';

const WRITE_KEY = 'wk_live_123';

// The write key of a request's Basic auth (the key as user name, no password), as Segment reads it.
function writeKeyOf(request: ReceivedRequest): string | undefined {
  const auth = request.headers.authorization ?? '';
  const decoded = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : '';
  return decoded.endsWith(':') ? decoded.slice(0, -1) : undefined;
}

// Answers like Segment's /v1/batch (always JSON): a wrong write key is refused, anything else accepted.
// The tests queue their failures (receiver.queue) only for requests with the right key.
function segment(request: ReceivedRequest): ScriptedAnswer {
  if (writeKeyOf(request) !== WRITE_KEY) return { status: 401, body: { error: 'invalid write key' } };
  return { status: 200, body: { success: true } };
}

// A stored event as Cairn delivers it: corrected timestamp plus the clock fields of its ingestion.
const stored = (messageId: string, extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Order Completed',
  messageId,
  userId: 'u1',
  anonymousId: 'a1',
  timestamp: '2026-11-22T09:59:58.000Z',
  originalTimestamp: '2026-11-22T10:04:58.000Z',
  sentAt: '2026-11-22T10:05:00.000Z',
  receivedAt: '2026-11-22T10:00:00.000Z',
  properties: { total: 42 },
  context: { library: { name: 'analytics.js' }, ip: '203.0.113.9' },
  integrations: { All: true },
  ...extra,
});

describe('segment-forward plugin against a Segment-spec receiver', () => {
  let receiver: Receiver;
  let endpoint: string;
  const received = () => receiver.requests;
  const batchOf = (request: ReceivedRequest): Array<Record<string, unknown>> => request.body.batch;

  beforeAll(async () => {
    receiver = await startReceiver({ answer: segment });
    endpoint = receiver.origin;
  });
  afterAll(() => receiver.close());
  beforeEach(() => receiver.reset());

  it('posts one /v1/batch with Basic auth, every original field and messageId kept', async () => {
    const { outcomes } = await runPlugin(forward, { endpoint: `${endpoint}/`, writeKey: WRITE_KEY }, [
      stored('m1'),
      { type: 'identify', messageId: 'm2', userId: 'u1', traits: { plan: 'pro' }, timestamp: '2026-11-22T10:00:01Z' },
    ]);
    expect(outcomes).toEqual([{ status: 'delivered' }, { status: 'delivered' }]);
    expect(received()).toHaveLength(1);
    const [r] = received();
    expect(r!.path).toBe('/v1/batch');
    expect(writeKeyOf(r!)).toBe(WRITE_KEY);
    expect(batchOf(r!)).toEqual([
      {
        type: 'track',
        event: 'Order Completed',
        messageId: 'm1',
        userId: 'u1',
        anonymousId: 'a1',
        timestamp: '2026-11-22T09:59:58.000Z',
        properties: { total: 42 },
        context: { library: { name: 'analytics.js' }, ip: '203.0.113.9' },
        integrations: { All: true },
      },
      { type: 'identify', messageId: 'm2', userId: 'u1', traits: { plan: 'pro' }, timestamp: '2026-11-22T10:00:01Z' },
    ]);
  });

  it('sends the same messageIds on a retry, so the receiver can drop what it already has', async () => {
    receiver.queue({ status: 503, body: {} });
    const events = [stored('m1'), stored('m2')];
    expect((await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, events)).outcomes.map((o) => o.status)).toEqual(
      ['retry', 'retry'],
    );
    await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, events);
    expect(received().map((r) => batchOf(r).map((e) => e.messageId))).toEqual([
      ['m1', 'm2'],
      ['m1', 'm2'],
    ]);
  });

  it('splits a batch into requests under 500 KB and fails an event over 32 KB alone', async () => {
    const big = 'x'.repeat(30 * 1024);
    const events = Array.from({ length: 20 }, (_, i) => stored(`big${i}`, { properties: { big } }));
    events.splice(5, 0, stored('huge', { properties: { huge: 'y'.repeat(LIMITS.eventBytes) } }));
    const { outcomes } = await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, events);
    expect(outcomes[5]).toMatchObject({
      status: 'failed',
      error: expect.stringContaining("receiver's limit is 32768"),
    });
    expect(outcomes.filter((o) => o.status === 'delivered')).toHaveLength(20);
    expect(received().length).toBeGreaterThan(1);
    for (const r of received()) expect(Buffer.byteLength(r.raw)).toBeLessThanOrEqual(LIMITS.requestBytes);
    expect(received().flatMap((r) => batchOf(r).map((e) => e.messageId))).toEqual(
      events.map((e) => e.messageId).filter((id) => id !== 'huge'),
    );
  });

  it('retries 429 (Retry-After) and 5xx, holding later requests back to keep order', async () => {
    const big = 'x'.repeat(30 * 1024);
    const events = Array.from({ length: 20 }, (_, i) => stored(`e${i}`, { properties: { big } }));
    receiver.queue({ status: 429, headers: { 'retry-after': '20' }, body: {} });
    const { outcomes } = await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, events);
    expect(received()).toHaveLength(1); // the second request was not made
    expect(outcomes.every((o) => o.status === 'retry' && o.retryAfter === 20)).toBe(true);
    expect(outcomes.at(-1)).toMatchObject({ error: expect.stringMatching(/^not sent: HTTP 429/) });
  });

  it('dead-letters a refused batch, and a refused write key', async () => {
    receiver.queue({ status: 400, body: { error: 'invalid batch' } });
    const r1 = await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, [stored('m1'), stored('m2')]);
    expect(r1.outcomes).toEqual([
      { status: 'failed', error: 'HTTP 400: {"error":"invalid batch"}', statusCode: 400 },
      { status: 'failed', error: 'HTTP 400: {"error":"invalid batch"}', statusCode: 400 },
    ]);
    const r2 = await runPlugin(forward, { endpoint, writeKey: 'wrong' }, [stored('m1')]);
    expect(r2.outcomes).toEqual([
      { status: 'failed', error: 'HTTP 401: {"error":"invalid write key"}', statusCode: 401 },
    ]);
  });

  it('reads a Cairn partial refusal: only the refused events fail', async () => {
    receiver.queue({
      status: 400,
      body: {
        error: {
          code: 'invalid_events',
          message: '1 of 3 events rejected (first: batch[1].userId: too long); the other 2 were stored',
          details: { accepted: 2, rejected: [{ index: 1, path: 'batch[1].userId', message: 'too long' }] },
        },
      },
    });
    const { outcomes } = await runPlugin(forward, { endpoint, writeKey: WRITE_KEY }, [
      stored('m1'),
      stored('m2'),
      stored('m3'),
    ]);
    expect(outcomes).toEqual([
      { status: 'delivered' },
      { status: 'failed', error: 'refused by the receiver: batch[1].userId: too long' },
      { status: 'delivered' },
    ]);
  });

  it('retries when the receiver cannot be reached', async () => {
    const { outcomes } = await runPlugin(forward, { endpoint: 'http://127.0.0.1:1', writeKey: WRITE_KEY }, [{}]);
    expect(outcomes[0]).toMatchObject({ status: 'retry', error: expect.stringContaining('request failed') });
  });

  it('builds the URL and the forwarded event as documented', async () => {
    expect(batchUrl('https://api.segment.io')).toBe('https://api.segment.io/v1/batch');
    expect(batchUrl('https://cairn.example/v1/batch/')).toBe('https://cairn.example/v1/batch');
    const event = forwardable(stored('m1'));
    for (const clock of ['sentAt', 'receivedAt', 'originalTimestamp']) expect(event).not.toHaveProperty(clock);
    expect(event).toMatchObject({ messageId: 'm1', timestamp: '2026-11-22T09:59:58.000Z' });
    await expect(runPlugin(forward, { endpoint, writeKey: '' }, [])).rejects.toThrow(/writeKey/);
    await expect(runPlugin(forward, { endpoint: 'nope', writeKey: 'k' }, [])).rejects.toThrow(PluginSettingsError);
  });
});
