import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
const json = (res: Response): Promise<any> => res.json();

describe.each(['postgres', 'embedded'] as const)('tracking API on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let key: string;
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${cairn.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth(key), ...headers },
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
  const storedRows = async (messageId: string) =>
    cairn.sql<{ payload: Record<string, unknown> }[]>`SELECT payload FROM events WHERE message_id = ${messageId}`;
  const stored = async (messageId: string) =>
    cairn.sql<{ type: string; payload: Record<string, any>; processed: boolean }[]>`
      SELECT type, payload, processed_at IS NOT NULL AS processed FROM events WHERE message_id = ${messageId}`;

  beforeAll(async () => {
    db = await createTestDatabase(`ingest.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    key = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('stores each event type from its own endpoint, with the Segment fields', async () => {
    const bodies: Record<string, object> = {
      track: { userId: 'u1', event: 'Order Completed', properties: { total: 10 } },
      identify: { userId: 'u1', traits: { email: 'a@b.test' } },
      page: { anonymousId: 'a1', name: 'Home', category: 'Docs' },
      screen: { userId: 'u1', name: 'Settings' },
      group: { userId: 'u1', groupId: 'acme', traits: { plan: 'pro' } },
      alias: { userId: 'u1', previousId: 'a1' },
    };
    for (const [type, body] of Object.entries(bodies)) {
      const res = await post(`/v1/${type}`, { ...body, messageId: `single-${type}` });
      expect(res.status, type).toBe(200);
      expect(await json(res)).toEqual({ success: true });
      const [row] = await stored(`single-${type}`);
      expect(row?.type).toBe(type);
      // Sensitive traits are sealed at rest (server/src/pii): the stored payload opens to what was sent.
      expect(cairn.pii.openPayload(row!.payload)).toMatchObject(body);
    }
    const [identify] = await stored('single-identify');
    expect(JSON.stringify(identify!.payload)).not.toContain('a@b.test');
  });

  it('accepts the write key in the body and text/plain bodies (sendBeacon)', async () => {
    const res = await fetch(`${cairn.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      body: JSON.stringify({
        writeKey: key,
        batch: [{ type: 'track', event: 'Beacon', anonymousId: 'a', messageId: 'beacon-1' }],
      }),
    });
    expect(res.status).toBe(200);
    const [row] = await stored('beacon-1');
    expect(row?.payload.writeKey).toBeUndefined();
  });

  it('accepts gzip bodies', async () => {
    const body = gzipSync(
      JSON.stringify({ batch: [{ type: 'track', event: 'Zipped', userId: 'u', messageId: 'gz-1' }] }),
    );
    const res = await post('/v1/batch', body, { 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(await stored('gz-1')).toHaveLength(1);
  });

  it('corrects clock skew, generates a messageId, and enriches context', async () => {
    const sentAt = new Date(Date.now() - 3_600_000); // device clock one hour behind
    const res = await post('/v1/batch', {
      sentAt: sentAt.toISOString(),
      batch: [
        {
          type: 'page',
          anonymousId: 'skewed',
          timestamp: new Date(sentAt.getTime() - 5000).toISOString(),
          context: {
            userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
            page: { url: 'https://shop.test/?utm_source=news&utm_medium=email&utm_campaign=spring' },
          },
        },
      ],
    });
    expect(res.status).toBe(200);
    const [row] = await cairn.sql<{ payload: Record<string, any>; message_id: string }[]>`
      SELECT payload, message_id FROM events WHERE anonymous_id = 'skewed'`;
    expect(row!.message_id).toMatch(/^[0-9a-f-]{36}$/);
    const p = row!.payload;
    const skewCorrected = Date.parse(p.timestamp);
    expect(Math.abs(Date.parse(p.receivedAt) - 5000 - skewCorrected)).toBeLessThan(2);
    expect(Date.parse(p.originalTimestamp)).toBe(sentAt.getTime() - 5000);
    expect(p.context.campaign).toEqual({ source: 'news', medium: 'email', name: 'spring' });
    expect(p.context.os).toEqual({ name: 'iOS', version: '17.0' });
    expect(p.context.device).toMatchObject({ type: 'mobile' });
    expect(p.context.ip).toBe('127.0.0.1');
  });

  it('stores the valid events of a batch and answers 400 listing the rejected ones', async () => {
    const res = await post('/v1/batch', {
      batch: [
        { type: 'track', event: 'Good', userId: 'u', messageId: 'mixed-0' },
        { type: 'track', event: 'Bad', userId: 'u', messageId: 'mixed-1', timestamp: 'yesterday' },
        { type: 'identify', anonymousId: 'x', messageId: 'mixed-2' },
        { type: 'track', userId: 'u', messageId: 'mixed-3' },
      ],
    });
    expect(res.status).toBe(400);
    const body = await json(res);
    expect(body.error.code).toBe('invalid_events');
    expect(body.error.details).toEqual({
      accepted: 2,
      rejected: [
        { index: 1, path: 'batch[1].timestamp', message: 'not an ISO-8601 date' },
        { index: 3, path: 'batch[3].event', message: 'is required' },
      ],
    });
    expect(await stored('mixed-0')).toHaveLength(1);
    expect(await stored('mixed-2')).toHaveLength(1);
    expect(await stored('mixed-1')).toHaveLength(0);
    const failed = await json(await admin('/failed-events?code=invalid_event'));
    const reasons = failed.data.map((f: { reason: string }) => f.reason);
    expect(reasons).toContain('batch[1].timestamp: not an ISO-8601 date');
    expect(reasons).toContain('batch[3].event: is required');
    const one = failed.data.find((f: { reason: string }) => f.reason.startsWith('batch[1]'));
    expect(one.event).toMatchObject({ messageId: 'mixed-1', timestamp: 'yesterday' });
  });

  it('replays a refused event, corrected, exactly once', async () => {
    const bad = { type: 'track', userId: 'replayer', event: 'Replayed', timestamp: 'not-a-date', properties: { n: 1 } };
    expect((await post('/v1/batch', { batch: [bad] })).status).toBe(400);
    const listed = await json(await admin('/failed-events?code=invalid_event&replayed=false&limit=500'));
    const row = listed.data.find((f: { event: { userId?: string } | null }) => f.event?.userId === 'replayer');
    expect(row).toBeDefined();
    const asStored = await admin(`/failed-events/${row.id}/replay`, { method: 'POST', body: '{}' });
    expect(asStored.status).toBe(400);
    expect((await json(asStored)).error.message).toBe('timestamp: not an ISO-8601 date');
    const fixed = { ...bad, timestamp: new Date(Date.now() - 60_000).toISOString() };
    const replay = () =>
      admin(`/failed-events/${row.id}/replay`, { method: 'POST', body: JSON.stringify({ event: fixed }) });
    const first = await json(await replay());
    expect(first).toEqual({ status: 'stored', messageId: `failed-${row.id}` });
    expect((await json(await replay())).status).toBe('duplicate');
    const [stored] = await storedRows(`failed-${row.id}`);
    expect(stored?.payload).toMatchObject({ event: 'Replayed', properties: { n: 1 } });
    const after = await json(await admin('/failed-events?replayed=true&limit=500'));
    expect(after.data.map((f: { id: string }) => f.id)).toContain(row.id);
    expect((await admin('/failed-events/999999999/replay', { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('refuses events too far in the future after clock correction', async () => {
    const res = await post('/v1/track', { userId: 'u', event: 'Future', timestamp: '2999-01-01T00:00:00Z' });
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/^timestamp: \d+ h in the future after clock-skew correction$/);
  });

  it('answers 413 to an oversized body sent without Content-Length, and the connection still gets its answer', async () => {
    const chunk = new TextEncoder().encode(`{"pad":"${'y'.repeat(64 * 1024)}`);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(chunk); // 640 KB, over the 500 KB limit
        controller.close();
      },
    });
    const res = await fetch(`${cairn.url}/v1/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth(key) },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('payload_too_large');
    // The server reads on: the next request is served.
    expect((await post('/v1/track', { userId: 'u', event: 'After', messageId: 'after-chunked' })).status).toBe(200);
  });

  it('enforces the size limits with 413 and records them', async () => {
    const big = { type: 'track', event: 'Big', userId: 'u', properties: { blob: 'x'.repeat(33 * 1024) } };
    const one = await post('/v1/batch', { batch: [big] });
    expect(one.status).toBe(413);
    expect((await json(one)).error.code).toBe('event_too_large');
    const many = await post('/v1/batch', { batch: Array.from({ length: 2501 }, () => ({ type: 'track' })) });
    expect(many.status).toBe(413);
    expect((await json(many)).error.code).toBe('too_many_events');
    const huge = await post('/v1/batch', `{"batch":[],"pad":"${'y'.repeat(600 * 1024)}"}`);
    expect(huge.status).toBe(413);
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 32)); // 20 MB of spaces, ~20 KB compressed
    const zipped = await post('/v1/batch', bomb, { 'content-encoding': 'gzip' });
    expect(zipped.status).toBe(413);
    const failed = await json(await admin('/failed-events?limit=500'));
    const codes = failed.data.map((f: { code: string }) => f.code);
    expect(codes).toEqual(expect.arrayContaining(['event_too_large', 'too_many_events', 'payload_too_large']));
  });

  it.each([
    ['malformed JSON', '{"batch": [', {}, 400, 'invalid_json'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), {}, 400, 'invalid_utf8'],
    ['a JSON array body', '[1,2]', {}, 400, 'invalid_body'],
    ['batch not an array', '{"batch":{}}', {}, 400, 'invalid_body'],
    ['a form body', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ['brotli', 'x', { 'content-encoding': 'br' }, 415, 'unsupported_encoding'],
    ['an empty body', '', {}, 400, 'empty_body'],
  ] as const)('answers %s with a clear 4xx', async (_name, body, headers, status, code) => {
    const res = await post('/v1/batch', body, headers);
    expect(res.status).toBe(status);
    expect((await json(res)).error.code).toBe(code);
  });

  it('answers 401 for missing and unknown write keys, and records them', async () => {
    const none = await fetch(`${cairn.url}/v1/track`, { method: 'POST', body: '{"userId":"u","event":"x"}' });
    expect(none.status).toBe(401);
    const wrong = await post('/v1/track', { userId: 'u', event: 'x' }, { authorization: basicAuth('wk_nope') });
    expect(wrong.status).toBe(401);
    expect((await json(wrong)).error.message).toBe('unknown write key');
    const failed = await json(await admin('/failed-events?code=unauthorized'));
    expect(failed.data.length).toBeGreaterThanOrEqual(2);
    expect(failed.data[0].raw.text).toBe('{"userId":"u","event":"x"}');
  });

  it('stores each messageId once across 20 simultaneous requests with overlapping ids', async () => {
    const requests = Array.from({ length: 20 }, (_, r) =>
      post('/v1/batch', {
        batch: Array.from({ length: 10 }, (_, i) => ({
          type: 'track',
          event: 'Overlap',
          userId: `u${i}`,
          messageId: `overlap-${(r + i) % 15}`,
        })),
      }),
    );
    const statuses = (await Promise.all(requests)).map((r) => r.status);
    expect(statuses).toEqual(Array(20).fill(200));
    const rows = await cairn.sql<{ message_id: string; n: number }[]>`
      SELECT message_id, count(*)::int AS n FROM events WHERE message_id LIKE 'overlap-%' GROUP BY message_id`;
    expect(rows).toHaveLength(15);
    expect(rows.every((r) => r.n === 1)).toBe(true);
  });

  it('hands committed events to the pipeline, which marks them processed', async () => {
    expect((await post('/v1/track', { userId: 'u', event: 'Handoff', messageId: 'handoff-1' })).status).toBe(200);
    await expect.poll(async () => (await stored('handoff-1'))[0]?.processed, { timeout: 15_000 }).toBe(true);
  });

  it('serves CORS from the source allowed origins', async () => {
    const created = await json(
      await admin('/sources', {
        method: 'POST',
        body: JSON.stringify({ name: 'web', allowedOrigins: ['https://*.shop.test'] }),
      }),
    );
    const send = (origin: string) =>
      post('/v1/track', { anonymousId: 'a', event: 'CORS' }, { origin, authorization: basicAuth(created.writeKey) });
    const ok = await send('https://www.shop.test');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://www.shop.test');
    const denied = await send('https://evil.test');
    expect(denied.status).toBe(403);
    expect(denied.headers.get('access-control-allow-origin')).toBe('https://evil.test');
    expect(denied.headers.get('access-control-expose-headers')).toBe('Retry-After');
    expect((await json(denied)).error.code).toBe('origin_not_allowed');
    const preflight = await fetch(`${cairn.url}/v1/batch`, {
      method: 'OPTIONS',
      headers: { origin: 'https://www.shop.test', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://www.shop.test');
  });

  it('rotates write keys (with an optional grace period) and disables sources', async () => {
    const src = await json(await admin('/sources', { method: 'POST', body: JSON.stringify({ name: 'rotating' }) }));
    const send = (k: string) => post('/v1/track', { userId: 'u', event: 'Rotate' }, { authorization: basicAuth(k) });
    expect((await send(src.writeKey)).status).toBe(200);
    const graced = await json(
      await admin(`/sources/${src.id}/rotate-key`, { method: 'POST', body: JSON.stringify({ graceSeconds: 60 }) }),
    );
    expect(graced.writeKey).not.toBe(src.writeKey);
    expect((await send(src.writeKey)).status).toBe(200);
    expect((await send(graced.writeKey)).status).toBe(200);
    const rotated = await json(await admin(`/sources/${src.id}/rotate-key`, { method: 'POST', body: '{}' }));
    expect((await send(graced.writeKey)).status).toBe(401);
    expect((await send(rotated.writeKey)).status).toBe(200);
    await admin(`/sources/${src.id}/disable`, { method: 'POST' });
    const disabled = await send(rotated.writeKey);
    expect(disabled.status).toBe(403);
    expect((await json(disabled)).error.code).toBe('source_disabled');
  });

  it('lists recent events newest first through the admin API', async () => {
    expect((await post('/v1/track', { userId: 'u', event: 'Listed', messageId: 'listed-1' })).status).toBe(200);
    const page = await json(await admin('/events?messageId=listed-1'));
    expect(page.data).toHaveLength(1);
    expect(page.data[0]).toMatchObject({ type: 'track', messageId: 'listed-1', payload: { event: 'Listed' } });
    const recent = await json(await admin('/events?limit=2'));
    expect(recent.data).toHaveLength(2);
    expect(Number(recent.data[0].id)).toBeGreaterThan(Number(recent.data[1].id));
    expect(recent.next).toBe(recent.data[1].id);
  });

  it('protects the admin API and describes itself in OpenAPI', async () => {
    expect((await fetch(`${cairn.url}/api/sources`)).status).toBe(401);
    expect((await fetch(`${cairn.url}/api/sources`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const invalid = await admin('/sources', { method: 'POST', body: JSON.stringify({ name: '' }) });
    expect(invalid.status).toBe(400);
    expect((await json(invalid)).error.message).toMatch(/^name: /);
    const doc = await json(await fetch(`${cairn.url}/api/openapi.json`));
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/batch', '/v1/track', '/api/sources', '/api/failed-events']),
    );
  });

  it('reports health, readiness and metrics', async () => {
    expect((await fetch(`${cairn.url}/healthz`)).status).toBe(200);
    expect(await json(await fetch(`${cairn.url}/readyz`))).toEqual({ status: 'ready' });
    const metrics = await (await fetch(`${cairn.url}/metrics`)).text();
    expect(metrics).toMatch(/cairn_events_accepted_total\{type="track"\} \d+/);
    expect(metrics).toMatch(/cairn_events_rejected_total\{reason="invalid_event"\} \d+/);
    expect(metrics).toMatch(/cairn_ingest_commit_duration_seconds_count \d+/);
    expect(metrics).toMatch(/cairn_queue_depth\{queue="identify"\} \d+/);
  });
});
