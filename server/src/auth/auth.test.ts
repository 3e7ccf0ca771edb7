import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../testing/index.ts';
import { createApiKeyVerifier } from './api-keys.ts';
import type { Role } from './keys.ts';
import { can, type Permission } from './middleware.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const PASSWORD = 'correct horse battery staple';

describe.each(['postgres', 'embedded'] as const)('people, roles and API keys on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const keys: Partial<Record<Role, string>> = {};
  let adminCookie = '';

  const call = (
    path: string,
    init: { method?: string; key?: string; cookie?: string; origin?: string; body?: unknown } = {},
  ) =>
    fetch(`${cairn.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(init.key ? { authorization: `Bearer ${init.key}` } : {}),
        ...(init.cookie ? { cookie: init.cookie } : {}),
        ...(init.origin ? { origin: init.origin } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  const sessionOf = (res: Response) => {
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('better-auth.session_token='));
    expect(cookie, 'a session cookie').toBeDefined();
    return cookie!.split(';')[0]!;
  };
  const signIn = (email: string, password: string) =>
    call('/api/auth/sign-in/email', { method: 'POST', origin: cairn.url, body: { email, password } });
  const createKey = async (role: Role, extra: object = {}) => {
    const res = await call('/api/keys', {
      method: 'POST',
      key: TEST_ADMIN_KEY,
      body: { name: `${role} key`, role, ...extra },
    });
    expect(res.status).toBe(201);
    return (await res.json()) as Any;
  };

  beforeAll(async () => {
    db = await createTestDatabase(`auth.test.ts:${mode}`, mode);
    // A tight window: the brute-force test below trips it; everything else signs in fewer times.
    cairn = await startTestCairn({ ...db.env, CAIRN_SIGNIN_MAX: '8' });
    for (const role of ['operator', 'analyst'] as const) keys[role] = (await createKey(role)).key;
    keys.admin = TEST_ADMIN_KEY;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('makes the first sign-up an admin and closes sign-up after it', async () => {
    const first = await call('/api/auth/sign-up/email', {
      method: 'POST',
      origin: cairn.url,
      body: { email: 'Ada@Example.com', password: PASSWORD, name: 'Ada' },
    });
    expect(first.status).toBe(200);
    expect(((await first.json()) as Any).user.role).toBe('admin');
    adminCookie = sessionOf(first);

    const second = await call('/api/auth/sign-up/email', {
      method: 'POST',
      origin: cairn.url,
      body: { email: 'eve@example.com', password: PASSWORD, name: 'Eve' },
    });
    expect(second.status).toBe(403);
    const users = (await (await call('/api/users', { key: TEST_ADMIN_KEY })).json()) as Any;
    expect(users.data.map((u: Any) => [u.email, u.role])).toEqual([['ada@example.com', 'admin']]);
  });

  it('lets an admin invite a person with a role, who signs in with the initial password', async () => {
    const invited = await call('/api/users', {
      method: 'POST',
      cookie: adminCookie,
      origin: cairn.url,
      body: { email: 'ann@example.com', role: 'analyst' },
    });
    expect(invited.status).toBe(201);
    const ann = (await invited.json()) as Any;
    expect(ann).toMatchObject({ email: 'ann@example.com', role: 'analyst' });
    expect(ann.initialPassword.length).toBeGreaterThanOrEqual(20);

    const again = await call('/api/users', {
      method: 'POST',
      key: TEST_ADMIN_KEY,
      body: { email: 'ann@example.com', role: 'admin' },
    });
    expect(again.status).toBe(409);

    const signedIn = await signIn('ann@example.com', ann.initialPassword);
    expect(signedIn.status).toBe(200);
    const cookie = sessionOf(signedIn);
    expect((await call('/api/audiences', { cookie })).status).toBe(200);
    expect((await call('/api/users', { cookie })).status).toBe(403);
    expect((await call('/api/tags', { method: 'POST', cookie, origin: cairn.url, body: {} })).status).toBe(403);

    // An admin promotes her; the next request of her session acts with the new role.
    const promoted = await call(`/api/users/${ann.id}`, {
      method: 'PATCH',
      key: TEST_ADMIN_KEY,
      body: { role: 'operator' },
    });
    expect(promoted.status).toBe(200);
    expect((await call('/api/sources', { cookie })).status).toBe(200);

    // As admin she makes a key; it is bound to its own role and owned by her.
    await call(`/api/users/${ann.id}`, { method: 'PATCH', key: TEST_ADMIN_KEY, body: { role: 'admin' } });
    const made = await call('/api/keys', {
      method: 'POST',
      cookie,
      origin: cairn.url,
      body: { name: 'ann', role: 'analyst' },
    });
    expect(made.status).toBe(201);
    const annKey = (await made.json()) as Any;
    expect(annKey.ownerId).toBe(ann.id);
    expect((await call('/api/audiences', { key: annKey.key })).status).toBe(200);
    expect((await call('/api/sources', { key: annKey.key })).status).toBe(403);

    // Removing her ends her session and her keys.
    expect((await call(`/api/users/${ann.id}`, { method: 'DELETE', key: TEST_ADMIN_KEY })).status).toBe(204);
    expect((await call('/api/audiences', { cookie })).status).toBe(401);
    expect((await call('/api/audiences', { key: annKey.key })).status).toBe(401);
  });

  it('refuses cookie-session writes without this server as Origin (CSRF), not bearer keys', async () => {
    const body = { email: 'csrf@example.com', role: 'analyst' };
    expect((await call('/api/users', { method: 'POST', cookie: adminCookie, body })).status).toBe(403);
    const evil = await call('/api/users', {
      method: 'POST',
      cookie: adminCookie,
      origin: 'https://evil.example',
      body,
    });
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as Any).error.code).toBe('csrf');
    // better-auth's own endpoints check the origin too.
    const crossSignIn = await call('/api/auth/sign-in/email', {
      method: 'POST',
      cookie: adminCookie,
      origin: 'https://evil.example',
      body: { email: 'ada@example.com', password: PASSWORD },
    });
    expect(crossSignIn.status).toBe(403);
    expect((await call('/api/users', { key: TEST_ADMIN_KEY })).status).toBe(200);
  });

  it('walks every admin route of the OpenAPI description for every role, per the permission table', async () => {
    const doc = (await (await call('/api/openapi.json')).json()) as Any;
    const ops: { method: string; path: string; permission: Permission | undefined }[] = [];
    for (const [path, methods] of Object.entries<Any>(doc.paths)) {
      if (path.startsWith('/v1/')) continue; // the tracking API takes write keys, not admin credentials
      for (const [method, op] of Object.entries<Any>(methods)) {
        ops.push({ method: method.toUpperCase(), path, permission: op['x-cairn-permission'] });
      }
    }
    expect(ops.length).toBeGreaterThan(50);
    expect(ops.filter((o) => !o.permission).map((o) => `${o.method} ${o.path}`)).toEqual([]);

    // An operator signed in with a cookie walks the same table as the operator key.
    const invited = (await (
      await call('/api/users', {
        method: 'POST',
        key: TEST_ADMIN_KEY,
        body: { email: 'olga@example.com', role: 'operator' },
      })
    ).json()) as Any;
    const cookie = sessionOf(await signIn('olga@example.com', invited.initialPassword));

    const outcomes: string[] = [];
    const expected: string[] = [];
    for (const op of ops) {
      // Ids that do not exist: allowed calls end in 400/404, never change anything that exists.
      const url = op.path.replaceAll(/\{[^}]+\}/g, 'no-such-id');
      const body = op.method === 'GET' || op.method === 'DELETE' ? undefined : {};
      const anonymous = await call(url, { method: op.method, body });
      outcomes.push(`${op.method} ${op.path} none ${anonymous.status === 401 ? 'unauthenticated' : anonymous.status}`);
      expected.push(`${op.method} ${op.path} none unauthenticated`);
      for (const role of ['admin', 'operator', 'analyst'] as const) {
        const res = await call(url, { method: op.method, key: keys[role], body });
        await res.body?.cancel();
        const got = res.status === 403 ? 'forbidden' : res.status === 401 ? 'unauthenticated' : 'allowed';
        outcomes.push(`${op.method} ${op.path} ${role} ${got}`);
        expected.push(`${op.method} ${op.path} ${role} ${can(role, op.permission!) ? 'allowed' : 'forbidden'}`);
      }
      const bySession = await call(url, { method: op.method, cookie, origin: cairn.url, body });
      await bySession.body?.cancel();
      const got = bySession.status === 403 ? 'forbidden' : bySession.status === 401 ? 'unauthenticated' : 'allowed';
      outcomes.push(`${op.method} ${op.path} operator-session ${got}`);
      expected.push(
        `${op.method} ${op.path} operator-session ${can('operator', op.permission!) ? 'allowed' : 'forbidden'}`,
      );
    }
    expect(outcomes).toEqual(expected);

    // The table's intent, spelled out: operators never manage people or keys; analysts change nothing.
    for (const op of ops) {
      if (/^\/api\/(users|keys)/.test(op.path)) expect(can('operator', op.permission!)).toBe(false);
      // (POST /api/audiences/preview and /api/rules/* evaluate without writing: they are reads.)
      if (/:(write|erase|replay)$/.test(op.permission!)) expect(can('analyst', op.permission!)).toBe(false);
    }
  });

  it('shows a key once, stores only its hash, and refuses it once revoked', async () => {
    const created = await createKey('analyst');
    expect(created.key).toMatch(/^cairn_/);
    const listed = (await (await call('/api/keys', { key: TEST_ADMIN_KEY })).json()) as Any;
    const row = listed.data.find((k: Any) => k.id === created.id);
    expect(row).toMatchObject({ role: 'analyst', enabled: true });
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const [stored] = await cairn.sql<{ key: string }[]>`SELECT key FROM auth_apikey WHERE id = ${created.id}`;
    expect(stored!.key).not.toBe(created.key);

    expect((await call('/api/audiences', { key: created.key })).status).toBe(200);
    expect((await call(`/api/keys/${created.id}`, { method: 'DELETE', key: TEST_ADMIN_KEY })).status).toBe(204);
    // The revoking process forgets its cache at once.
    expect((await call('/api/audiences', { key: created.key })).status).toBe(401);
  });

  it('a revoked key is refused by every other process within the cache TTL (5 s), an expired key at once', async () => {
    let now = Date.now();
    // Another server's verifier, on the same database, with its own cache and a clock we move.
    const other = createApiKeyVerifier(cairn.sql, 5000, () => now);
    const key = await createKey('operator');
    expect(await other.verify(key.key)).toMatchObject({ kind: 'api-key', role: 'operator', id: key.id });

    expect((await call(`/api/keys/${key.id}`, { method: 'DELETE', key: TEST_ADMIN_KEY })).status).toBe(204);
    now += 4999; // still inside the documented window: the cached answer may be served
    expect(await other.verify(key.key)).not.toBeNull();
    now += 1;
    expect(await other.verify(key.key)).toBeNull();

    // Expiry is checked on every request, cached or not.
    const expiring = await createKey('analyst', { expiresInSeconds: 3600 });
    expect(await other.verify(expiring.key)).not.toBeNull();
    now += 3600 * 1000;
    expect(await other.verify(expiring.key)).toBeNull();

    // And over HTTP: a key past its expiry is refused.
    const expired = await createKey('analyst', { expiresInSeconds: 3600 });
    await cairn.sql`UPDATE auth_apikey SET "expiresAt" = now() - interval '1 second' WHERE id = ${expired.id}`;
    const res = await call('/api/audiences', { key: expired.key });
    expect(res.status).toBe(401);
  });

  it('serves better-auth and everything else at once without deadlock (one connection when embedded)', async () => {
    const key = (await createKey('analyst')).key;
    const work: Promise<number>[] = [];
    for (let i = 0; i < 5; i++) {
      work.push(
        call('/api/users', {
          method: 'POST',
          key: TEST_ADMIN_KEY,
          body: { email: `p${i}@example.com`, role: 'analyst' },
        }).then((r) => r.status),
      );
      work.push(createKey('operator').then(() => 201));
      work.push(call('/api/audiences', { key }).then((r) => r.status));
      work.push(call('/api/auth/get-session', { cookie: adminCookie }).then((r) => r.status));
      work.push(call('/api/users', { cookie: adminCookie }).then((r) => r.status));
    }
    work.push(signIn('ada@example.com', PASSWORD).then((r) => r.status));
    const statuses = await Promise.all(work);
    expect(statuses.every((s) => s === 200 || s === 201)).toBe(true);
  });

  it('rate-limits sign-in brute force with 429 and Retry-After', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 12; i++) {
      const res = await signIn('ada@example.com', `wrong password ${i}`);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.body?.cancel();
    }
    expect(statuses).toContain(401);
    expect(statuses.at(-1)).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // Even the right password waits out the window.
    expect((await signIn('ada@example.com', PASSWORD)).status).toBe(429);
  });
});

describe('two first sign-ups at once', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('auth.test.ts:first-race', 'embedded');
    cairn = await startTestCairn(db.env);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('make exactly one admin', async () => {
    const signUp = (email: string) =>
      fetch(`${cairn.url}/api/auth/sign-up/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: cairn.url },
        body: JSON.stringify({ email, password: PASSWORD, name: email }),
      }).then((r) => r.status);
    const statuses = await Promise.all([signUp('one@example.com'), signUp('two@example.com')]);
    expect(statuses.sort()).toEqual([200, 403]);
    const users = await cairn.sql<{ role: string }[]>`SELECT role FROM auth_user`;
    expect(users.map((u) => u.role)).toEqual(['admin']);
  });
});

describe('CAIRN_ADMIN_EMAIL / CAIRN_ADMIN_PASSWORD', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('auth.test.ts:env-admin', 'embedded');
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_ADMIN_EMAIL: 'root@example.com',
      CAIRN_ADMIN_PASSWORD: PASSWORD,
    });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('creates the admin at start and keeps sign-up closed', async () => {
    const res = await fetch(`${cairn.url}/api/auth/sign-in/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: cairn.url },
      body: JSON.stringify({ email: 'root@example.com', password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Any).user.role).toBe('admin');
    const signUp = await fetch(`${cairn.url}/api/auth/sign-up/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: cairn.url },
      body: JSON.stringify({ email: 'x@example.com', password: PASSWORD, name: 'X' }),
    });
    expect(signUp.status).toBe(403);
  });
});
