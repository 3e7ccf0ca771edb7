// The paths the browser SDKs use besides /v1/batch and /v1/<type>: analytics.js 2.0's one-letter
// paths and /v1/b, RudderStack's /beacon/v1/batch?writeKey=. They go through the same handler, so
// they get the same key check, validation, limits, dedup, CORS and failed_events records.
import { LIMITS } from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  adminApi,
  basicAuth,
  createTestDatabase,
  startTestCairn,
  type TestDatabase,
  testModes,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: error bodies are checked by the assertions
const answer = (res: Response): Promise<any> => res.json();

describe.each(testModes())('browser SDK paths on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let key: string;
  let api: ReturnType<typeof adminApi>;
  /** A text/plain POST as browsers send it (no preflight needed for the body type). */
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${cairn.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const stored = (messageId: string) =>
    cairn.sql<{ type: string; payload: Record<string, unknown> }[]>`
      SELECT type, payload FROM events WHERE message_id = ${messageId}`;
  /** The failed_events rows of one code, newest first, with the request each came in. */
  const failed = async (code: string) =>
    (await api(`/failed-events?code=${code}&limit=500`)).body.data as {
      reason: string;
      request: { path: string };
      raw: { text: string } | null;
    }[];

  beforeAll(async () => {
    db = await createTestDatabase(`sdk-paths.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    key = cairn.demoSource!.writeKey;
    api = adminApi(cairn.url);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('stores each event type from its one-letter path (analytics.js 2.0), write key in the header', async () => {
    const bodies = {
      t: { type: 'track', event: 'Order Completed', properties: { total: 10 } },
      i: { type: 'identify', traits: { plan: 'pro' } },
      p: { type: 'page', name: 'Home' },
      s: { type: 'screen', name: 'Settings' },
      g: { type: 'group', groupId: 'acme' },
      a: { type: 'alias', previousId: 'anon-1' },
    };
    const types = { t: 'track', i: 'identify', p: 'page', s: 'screen', g: 'group', a: 'alias' };
    for (const [path, body] of Object.entries(bodies)) {
      const messageId = `short-${mode}-${path}`;
      // The plugin's body: the event, its writeKey and sentAt; and the key as the Basic username.
      const event = { ...body, userId: 'u1', messageId, writeKey: key, sentAt: new Date().toISOString() };
      const res = await post(`/v1/${path}`, event, { authorization: basicAuth(key) });
      expect(res.status, path).toBe(200);
      const [row] = await stored(messageId);
      expect(row?.type).toBe(types[path as keyof typeof types]);
      expect(row?.payload.writeKey).toBeUndefined();
    }
  });

  it('validates one-letter paths like their long names: a type that does not match is a 400, recorded', async () => {
    const res = await post(
      '/v1/t',
      { type: 'identify', userId: 'u1', messageId: `mismatch-${mode}` },
      {
        authorization: basicAuth(key),
      },
    );
    expect(res.status).toBe(400);
    expect((await answer(res)).error.message).toBe('type: must be "track" on this endpoint');
    expect(await stored(`mismatch-${mode}`)).toHaveLength(0);
    const row = (await failed('invalid_event')).find((f) => f.request.path === '/v1/t');
    expect(row?.reason).toBe('type: must be "track" on this endpoint');
    expect((await post('/v1/x', { type: 'track' }, { authorization: basicAuth(key) })).status).toBe(404);
  });

  it('takes the /v1/b batch (writeKey in the body, none in the events stored), once per messageId', async () => {
    const batch = [
      { type: 'track', event: 'Batched', anonymousId: 'b1', messageId: `b-${mode}-1`, writeKey: key },
      { type: 'page', name: 'Home', anonymousId: 'b1', messageId: `b-${mode}-2`, writeKey: key },
    ];
    const body = { batch, sentAt: new Date().toISOString(), writeKey: key };
    expect((await post('/v1/b', body)).status).toBe(200);
    expect((await post('/v1/b', body)).status).toBe(200); // a retry after a lost answer
    for (const e of batch) {
      const rows = await stored(e.messageId);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.payload.writeKey).toBeUndefined();
    }
  });

  it('refuses a bad /v1/b event and an oversized /v1/b batch like /v1/batch, and records both', async () => {
    const bad = await post('/v1/b', {
      writeKey: key,
      batch: [
        { type: 'track', event: 'Fine', anonymousId: 'b2', messageId: `b-${mode}-ok` },
        { type: 'track', event: 'Late', anonymousId: 'b2', timestamp: 'yesterday' },
      ],
    });
    expect(bad.status).toBe(400);
    expect((await answer(bad)).error.details.rejected[0].path).toBe('batch[1].timestamp');
    expect(await stored(`b-${mode}-ok`)).toHaveLength(1);
    expect((await failed('invalid_event')).some((f) => f.request.path === '/v1/b')).toBe(true);

    const many = Array.from({ length: LIMITS.maxBatchEvents + 1 }, () => ({ type: 'track', event: 'x' }));
    const tooMany = await post('/v1/b', { writeKey: key, batch: many });
    expect(tooMany.status).toBe(413);
    expect((await failed('too_many_events')).some((f) => f.request.path === '/v1/b')).toBe(true);
  });

  it('takes RudderStack beacons: /beacon/v1/batch with the write key in the query', async () => {
    const batch = [{ type: 'track', event: 'Beacon', anonymousId: 'r1', messageId: `beacon-${mode}-1` }];
    const res = await post(`/beacon/v1/batch?writeKey=${key}`, { batch, sentAt: new Date().toISOString() });
    expect(res.status).toBe(200);
    expect(await stored(`beacon-${mode}-1`)).toHaveLength(1);

    const none = await post('/beacon/v1/batch', { batch });
    expect(none.status).toBe(401);
    expect((await answer(none)).error.message).toMatch(/^missing write key: .* or the query$/);
    const wrong = await post('/beacon/v1/batch?writeKey=wk_nope', { batch });
    expect((await answer(wrong)).error.message).toBe('unknown write key');
    const paths = (await failed('unauthorized')).map((f) => f.request.path);
    expect(paths.filter((p) => p === '/beacon/v1/batch')).toHaveLength(2);
    // Only the beacon path reads the query: elsewhere a key in the URL is not a key.
    expect((await post(`/v1/batch?writeKey=${key}`, { batch })).status).toBe(401);
  });

  it('answers preflights with the headers the SDKs ask for, and keeps refusing origins a source does not allow', async () => {
    const created = await api('/sources', {
      method: 'POST',
      body: JSON.stringify({ name: `shop ${mode}`, allowedOrigins: ['https://shop.test'] }),
    });
    const shopKey = created.body.writeKey as string;
    const asked = 'authorization,content-type,x-retry-count,anonymousid,sentat';
    const preflight = (origin: string) =>
      fetch(`${cairn.url}/v1/t`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': asked },
      });
    await expect
      .poll(async () => (await preflight('https://shop.test')).headers.get('access-control-allow-origin'))
      .toBe('https://shop.test');
    const ok = await preflight('https://shop.test');
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-headers')).toBe(asked);
    // (A preflight cannot know the source; the demo source allows every origin, so no preflight check
    // of a refused origin here. The source's own list is enforced on the request itself:)

    const beacon = (origin: string) =>
      post(
        `/beacon/v1/batch?writeKey=${shopKey}`,
        { batch: [{ type: 'track', event: 'Origin', anonymousId: 'o1' }] },
        { origin },
      );
    const allowed = await beacon('https://shop.test');
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://shop.test');
    const denied = await beacon('https://evil.test');
    expect(denied.status).toBe(403);
    const row = (await failed('origin_not_allowed')).find((f) => f.request.path === '/beacon/v1/batch');
    expect(row?.reason).toBe('origin https://evil.test is not allowed for this source');
  });

  it("answers analytics.js 2.0's own usage counters (/v1/m) with 204 and stores nothing", async () => {
    const before = await cairn.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    const res = await post('/v1/m', { series: [{ type: 'Counter', metric: 'analytics_js.invoke', value: 1 }] });
    expect(res.status).toBe(204);
    const after = await cairn.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    expect(after[0]!.n).toBe(before[0]!.n);
  });
});
