// Issue 16, safe defaults: with CAIRN_OPEN_FIRST_SIGNUP=0 nobody becomes admin by signing up first (a server
// reachable before its operator signs up cannot be claimed by whoever finds it); people are invited with the
// admin API key (or CAIRN_ADMIN_EMAIL / CAIRN_ADMIN_PASSWORD creates the first admin).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, startTestCairn, TEST_ADMIN_KEY, type TestDatabase } from '../testing/index.ts';

const PASSWORD = 'correct horse battery staple';

describe('first sign-up switched off (embedded)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('auth/first-signup.test.ts', 'embedded');
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_OPEN_FIRST_SIGNUP: '0',
    });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  const post = (path: string, body: unknown) =>
    fetch(`${cairn.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: cairn.url },
      body: JSON.stringify(body),
    });

  it('refuses the first sign-up on an empty database; the admin key invites the first admin, who signs in', async () => {
    const first = await post('/api/auth/sign-up/email', {
      email: 'mallory@example.com',
      password: PASSWORD,
      name: 'M',
    });
    expect(first.status).toBe(403);
    expect(await first.text()).toMatch(/sign-up is closed/);
    const admin = { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' };
    const users = (await (await fetch(`${cairn.url}/api/users`, { headers: admin })).json()) as { data: unknown[] };
    expect(users.data).toEqual([]);
    const invited = await fetch(`${cairn.url}/api/users`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ email: 'ops@example.com', role: 'admin' }),
    });
    expect(invited.status, await invited.clone().text()).toBe(201);
    const { initialPassword } = (await invited.json()) as { initialPassword: string };
    const signIn = await post('/api/auth/sign-in/email', { email: 'ops@example.com', password: initialPassword });
    expect(signIn.status).toBe(200);
  });
});
