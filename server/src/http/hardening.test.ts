import { r } from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { type Cairn, startCairn } from '../server.ts';
import { createTestDatabase, postTracking, TEST_ADMIN_KEY, type TestDatabase, testModes } from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const PASSWORD = 'correct horse battery staple';
const FOREIGN = 'https://evil.example';
const ALLOWED = 'https://shop.example';

// One mode is enough here: nothing below depends on the database kind (Postgres when there is one).
const mode = testModes()[0]!;

describe(`hardening on ${mode}`, () => {
  let db: TestDatabase;
  let cairn: Cairn;
  const logged: string[] = [];
  // A real logger's sink, kept in memory: the 500 test reads what the server logged.
  const log: Logger = {
    info: () => {},
    debug: () => {},
    error: (m, err) => logged.push(`${m}: ${err instanceof Error ? err.stack : String(err)}`),
  };

  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
  const track = (key: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    postTracking(cairn, key, path, body, { headers });
  const createSource = async (name: string, allowedOrigins: string[] = []) => {
    const res = await admin('/sources', { method: 'POST', body: JSON.stringify({ name, allowedOrigins }) });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; writeKey: string };
  };
  const batchOf = (prefix: string, n: number) => ({
    batch: Array.from({ length: n }, (_, i) => ({
      type: 'track',
      event: 'Clicked',
      userId: 'u1',
      messageId: `${prefix}-${i}`,
    })),
  });
  // Sorted here, as the expected lists are: the database's collation may order differently.
  const storedIds = async (sourceId: string) =>
    (await cairn.sql<{ message_id: string }[]>`SELECT message_id FROM events WHERE source_id = ${sourceId}`)
      .map((r) => r.message_id)
      .sort();

  beforeAll(async () => {
    db = await createTestDatabase(`hardening.test.ts:${mode}`, mode);
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY,
      CAIRN_LOG: 'silent',
      CAIRN_SOURCE_REFRESH_MS: '200',
      // 1,250 events/s in bursts of 2,500 (the least: the largest batch): windows of 2 s.
      CAIRN_INGEST_RATE_PER_S: '1250',
      CAIRN_INGEST_BURST: '2500',
      CAIRN_BODY_LIMIT_BYTES: '4096',
      // The demo page is one of the routes whose headers are checked (off by default on Postgres).
      CAIRN_DEMO: '1',
      ...db.env,
    });
    cairn = await startCairn(config, log);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  describe('ingest rate limit per write key', () => {
    it('refuses a whole batch over the budget with 429 and Retry-After, then accepts it after the wait', async () => {
      const source = await createSource('limited');
      const other = await createSource('unaffected');
      expect((await track(source.writeKey, '/batch', batchOf('a', 2000))).status).toBe(200);

      const refused = await track(source.writeKey, '/batch', batchOf('b', 1000));
      expect(refused.status).toBe(429);
      const wait = Number(refused.headers.get('retry-after'));
      expect(Number.isInteger(wait)).toBe(true);
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(wait).toBeLessThanOrEqual(2);
      const body = (await refused.json()) as Any;
      expect(body.error.code).toBe('rate_limited');
      expect(body.error.message).toContain('nothing of this request was stored');
      expect(body.error.details).toEqual({ retryAfterSeconds: wait });
      // The refused batch took nothing from the budget: the 500 events left in this window still pass.
      expect((await track(source.writeKey, '/batch', batchOf('c', 500))).status).toBe(200);
      // Single-event endpoints share the budget.
      expect((await track(source.writeKey, '/track', { event: 'X', userId: 'u1', messageId: 'c-0' })).status).toBe(429);
      // Another source has its own budget.
      expect((await track(other.writeKey, '/batch', batchOf('o', 2500))).status).toBe(200);
      // Nothing of a refused batch was stored, and a refusal did not count as failed events.
      const before = [...batchOf('a', 2000).batch, ...batchOf('c', 500).batch].map((e) => e.messageId);
      expect(await storedIds(source.id)).toEqual(before.sort());
      const [failed] = await cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM failed_events WHERE source_id = ${source.id}`;
      expect(failed!.n).toBe(0);

      await new Promise((r) => setTimeout(r, wait * 1000));
      expect((await track(source.writeKey, '/batch', batchOf('b', 1000))).status).toBe(200);
      const all = [...before, ...batchOf('b', 1000).batch.map((e) => e.messageId)];
      expect(await storedIds(source.id)).toEqual(all.sort());

      const metrics = await (await fetch(`${cairn.url}/metrics`)).text();
      const line = metrics.split('\n').find((l) => l.startsWith('cairn_events_rejected_total{reason="rate_limited"}'));
      expect(Number(line?.split(' ')[1])).toBe(1001);
    });

    it('refuses a burst smaller than the largest batch at start, naming the variable', () => {
      expect(() => loadConfig({ CAIRN_INGEST_BURST: '100' })).toThrow(/CAIRN_INGEST_BURST: must be at least 2500/);
      expect(loadConfig({ CAIRN_INGEST_RATE_PER_S: '0' }).ingestRateLimit.ratePerSecond).toBe(0);
    });

    it('is described in OpenAPI on every tracking endpoint', async () => {
      const doc = (await (await fetch(`${cairn.url}/api/openapi.json`)).json()) as Any;
      for (const path of ['/v1/batch', '/v1/track', '/v1/identify']) {
        expect(doc.paths[path].post.responses['429'], path).toBeDefined();
      }
    });

    it('lets the browser read Retry-After on a cross-origin 429', async () => {
      const source = await createSource('browser', [ALLOWED]);
      expect((await track(source.writeKey, '/batch', batchOf('w', 2500), { origin: ALLOWED })).status).toBe(200);
      const refused = await track(source.writeKey, '/batch', batchOf('w2', 1), { origin: ALLOWED });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('access-control-allow-origin')).toBe(ALLOWED);
      expect(refused.headers.get('access-control-expose-headers')).toContain('Retry-After');
    });
  });

  describe('body limits', () => {
    const big = JSON.stringify({ name: 'x'.repeat(5000) });

    it('refuses a large body on admin, auth and unsubscribe routes with a JSON 413', async () => {
      const requests: [string, RequestInit][] = [
        ['/api/sources', { method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } }],
        ['/api/auth/sign-in/email', { method: 'POST', headers: { origin: cairn.url } }],
        ['/u/some-token', { method: 'POST' }],
      ];
      for (const [path, init] of requests) {
        const res = await fetch(`${cairn.url}${path}`, {
          ...init,
          headers: { 'content-type': 'application/json', ...init.headers },
          body: big,
        });
        expect(res.status, path).toBe(413);
        expect(((await res.json()) as Any).error.code, path).toBe('payload_too_large');
      }
    });

    it('counts a body sent without Content-Length (chunked) too', async () => {
      const chunk = new TextEncoder().encode('x'.repeat(1024));
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 8; i++) controller.enqueue(chunk);
          controller.close();
        },
      });
      const res = await fetch(`${cairn.url}/api/sources`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(((await res.json()) as Any).error.code).toBe('payload_too_large');
    });

    it('leaves the tracking API its own limits', async () => {
      const source = await createSource('body limits');
      // Larger than CAIRN_BODY_LIMIT_BYTES, well within the tracking API's 500 KB.
      const event = { event: 'Big', userId: 'u1', messageId: 'big-1', properties: { text: 'y'.repeat(8000) } };
      expect((await track(source.writeKey, '/track', event)).status).toBe(200);
      const huge = { batch: [{ ...event, properties: { text: 'z'.repeat(600_000) } }] };
      const res = await track(source.writeKey, '/batch', huge);
      expect(res.status).toBe(413);
      expect(((await res.json()) as Any).error.code).toBe('payload_too_large');
    });
  });

  describe('headers and CORS', () => {
    it('sends security headers on every route outside the tracking API', async () => {
      const responses = {
        healthz: await fetch(`${cairn.url}/healthz`),
        metrics: await fetch(`${cairn.url}/metrics`),
        api: await admin('/sources'),
        openapi: await fetch(`${cairn.url}/api/openapi.json`),
        auth: await fetch(`${cairn.url}/api/auth/get-session`),
        unsubscribe: await fetch(`${cairn.url}/u/not-a-token`),
        notFound: await fetch(`${cairn.url}/nowhere`),
      };
      for (const [name, res] of Object.entries(responses)) {
        expect(res.headers.get('x-content-type-options'), name).toBe('nosniff');
        expect(res.headers.get('x-frame-options'), name).toBe('SAMEORIGIN');
        expect(res.headers.get('strict-transport-security'), name).toMatch(/max-age=\d+/);
        expect(res.headers.get('referrer-policy'), name).toBe('no-referrer');
        expect(res.headers.get('x-request-id'), name).toBeTruthy();
      }
      // Except two the demo relaxes: other sites embed its snippet, and its pages keep their referrer.
      const demo = await fetch(`${cairn.url}/demo/`);
      expect(demo.status).toBe(200);
      expect(demo.headers.get('x-content-type-options')).toBe('nosniff');
      expect(demo.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      expect(demo.headers.get('referrer-policy')).toBe('strict-origin-when-cross-origin');
      expect(responses.api.headers.get('cross-origin-resource-policy')).toBe('same-origin');
      const csp = responses.unsubscribe.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
    });

    it('answers no CORS on /api, to a preflight or a request from a foreign origin', async () => {
      for (const path of ['/api/sources', '/api/auth/sign-in/email', '/api/openapi.json']) {
        const preflight = await fetch(`${cairn.url}${path}`, {
          method: 'OPTIONS',
          headers: { origin: FOREIGN, 'access-control-request-method': 'POST' },
        });
        expect(preflight.headers.get('access-control-allow-origin'), path).toBeNull();
        expect(preflight.headers.get('access-control-allow-credentials'), path).toBeNull();
      }
      const read = await admin('/sources', { headers: { origin: FOREIGN } });
      expect(read.status).toBe(200);
      expect(read.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('records the request id it answered with in the audit log', async () => {
      const res = await admin('/sources', { method: 'POST', body: JSON.stringify({ name: 'audited' }) });
      expect(res.status).toBe(201);
      const { id } = (await res.json()) as { id: string };
      const requestId = res.headers.get('x-request-id');
      expect(requestId).toBeTruthy();
      const audit = (await (await admin(`/audit?resourceId=${id}`)).json()) as Any;
      expect(audit.data.map((e: Any) => e.requestId)).toEqual([requestId]);
    });

    it("answers the tracking API's preflight for a source's allowed origin", async () => {
      await createSource('cors', [ALLOWED]);
      const preflight = (origin: string) =>
        fetch(`${cairn.url}/v1/batch`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST' },
        });
      // The contrast to /api above: the same preflight is answered here.
      expect((await preflight(ALLOWED)).headers.get('access-control-allow-origin')).toBe(ALLOWED);
    });
  });

  describe('session cookies', () => {
    it('are HttpOnly and SameSite=Lax, without Secure over http', async () => {
      const res = await fetch(`${cairn.url}/api/auth/sign-up/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: cairn.url },
        body: JSON.stringify({ email: 'ada@example.com', password: PASSWORD, name: 'Ada' }),
      });
      expect(res.status).toBe(200);
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith('better-auth.session_token='));
      expect(cookie).toBeDefined();
      expect(cookie).toMatch(/;\s*HttpOnly/i);
      expect(cookie).toMatch(/;\s*SameSite=Lax/i);
      expect(cookie).not.toMatch(/;\s*Secure/i);
    });

    it('are Secure, with the __Secure- prefix, when the public URL is https', async () => {
      const publicUrl = 'https://cairn.example';
      const secure = await startCairn(
        loadConfig({
          PORT: '0',
          HOST: '127.0.0.1',
          CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY,
          CAIRN_LOG: 'silent',
          CAIRN_PUBLIC_URL: publicUrl,
          CAIRN_DEMO: 'false',
          ...db.env,
        }),
        log,
      );
      try {
        const res = await fetch(`${secure.url}/api/auth/sign-in/email`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: publicUrl },
          body: JSON.stringify({ email: 'ada@example.com', password: PASSWORD }),
        });
        expect(res.status).toBe(200);
        const cookie = res.headers.getSetCookie().find((c) => c.startsWith('__Secure-better-auth.session_token='));
        expect(cookie).toBeDefined();
        expect(cookie).toMatch(/;\s*Secure/i);
        expect(cookie).toMatch(/;\s*HttpOnly/i);
        expect(cookie).toMatch(/;\s*SameSite=Lax/i);
      } finally {
        await secure.close();
      }
    });
  });

  describe('unexpected errors', () => {
    // A real fault: the tables these routes read are gone for the duration (renamed, then put back).
    it('answer a JSON 500 with the request id and no stack or internal message; the log keeps the stack', async () => {
      const known = await createSource('before the fault');
      await cairn.sql`ALTER TABLE sources RENAME TO sources_away`;
      await cairn.sql`ALTER TABLE auth_user RENAME TO auth_user_away`;
      // The write-key directory re-reads the table on a miss at most every 250 ms.
      await new Promise((r) => setTimeout(r, 300));
      const responses: Record<string, Response> = {};
      try {
        responses.api = await admin('/sources');
        // An unknown write key makes the tracking API read the sources table.
        responses.tracking = await track('no-such-key', '/track', { event: 'X', userId: 'u1' });
        responses.auth = await fetch(`${cairn.url}/api/auth/sign-in/email`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: cairn.url },
          body: JSON.stringify({ email: 'ada@example.com', password: PASSWORD }),
        });
      } finally {
        await cairn.sql`ALTER TABLE sources_away RENAME TO sources`;
        await cairn.sql`ALTER TABLE auth_user_away RENAME TO auth_user`;
      }
      for (const [name, res] of Object.entries(responses)) {
        expect(res.status, name).toBe(500);
        const text = await res.text();
        const body = JSON.parse(text) as Any;
        expect(body.error.code, name).toBe('internal');
        expect(body.error.message, name).toBe('internal server error');
        expect(body.error.requestId, name).toBe(res.headers.get('x-request-id'));
        expect(text, name).not.toMatch(/sources|auth_user|relation|\bat .*\.(ts|js|mjs):\d+/);
        // The log names the request id with the cause and its stack.
        const entry = logged.find((l) => l.includes(body.error.requestId));
        expect(entry, name).toBeDefined();
        expect(entry, name).toMatch(/\n\s+at /);
      }
      // Back to normal once the tables are back.
      expect((await track(known.writeKey, '/track', { event: 'X', userId: 'u1' })).status).toBe(200);
    });

    it('keep a rule Postgres refuses a 400, and a database fault while checking one a 500', async () => {
      const audience = (key: string) =>
        admin('/audiences', {
          method: 'POST',
          body: JSON.stringify({ key, name: key, rule: r.trait('name').matches('a{1,300}') }),
        });
      const refused = await audience('bad_regex');
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as Any).error.message).toContain('rule refused by the database');
      // The table the check evaluates against is gone: not the client's fault, and not told.
      await cairn.sql`ALTER TABLE profiles RENAME TO profiles_away`;
      let failed: Response;
      try {
        failed = await admin('/audiences', {
          method: 'POST',
          body: JSON.stringify({ key: 'fine', name: 'fine', rule: r.trait('name').matches('^a') }),
        });
      } finally {
        await cairn.sql`ALTER TABLE profiles_away RENAME TO profiles`;
      }
      expect(failed.status).toBe(500);
      const text = await failed.text();
      expect(text).not.toMatch(/profiles|relation/);
      expect(((JSON.parse(text) as Any).error as Any).code).toBe('internal');
    });
  });
});
