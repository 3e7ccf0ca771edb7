import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditWrites } from '../audit/middleware.ts';
import type { AuthVariables } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import type { Cairn } from '../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  postTracking,
  settle,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe.each(['postgres', 'embedded'] as const)('audit log on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const keys: { operator?: string; analyst?: string } = {};
  let operatorKeyId = '';
  const run = randomUUID().slice(0, 8);

  const api = async (path: string, init: { method?: string; key?: string; body?: unknown } = {}) => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${init.key ?? TEST_ADMIN_KEY}`,
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Any };
  };
  const lastId = async () =>
    Number((await cairn.sql<{ id: string }[]>`SELECT coalesce(max(id), 0)::text AS id FROM audit_log`)[0]!.id);
  const rowsAfter = (id: number) =>
    cairn.sql<Any[]>`
      SELECT actor_kind, actor_id, actor_role, action, resource_type, resource_id, method, path, status, before, after
      FROM audit_log
      WHERE id > ${id}
      ORDER BY id`;
  /** Runs one write and returns the single audit row it produced. */
  const audited = async (expectedStatus: number, write: () => Promise<{ status: number; body: Any }>) => {
    const mark = await lastId();
    const res = await write();
    expect(res.status, JSON.stringify(res.body)).toBe(expectedStatus);
    const rows = await rowsAfter(mark);
    expect(rows).toHaveLength(1);
    return { res, row: rows[0] };
  };
  const nowhereInAudit = async (secret: string) => {
    const [hit] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM audit_log WHERE concat_ws(' ', path, before::text, after::text) LIKE ${`%${secret}%`}`;
    expect(hit!.n, `${secret} appears in audit_log`).toBe(0);
  };

  beforeAll(async () => {
    db = await createTestDatabase(`audit.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    for (const role of ['operator', 'analyst'] as const) {
      const created = await api('/keys', { method: 'POST', body: { name: `${role} key`, role } });
      expect(created.status).toBe(201);
      keys[role] = created.body.key;
      if (role === 'operator') operatorKeyId = created.body.id;
    }
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('records the first sign-up (it makes an admin), with the new person as actor and no password', async () => {
    const password = `pw-${randomUUID()}`;
    const { res, row } = await audited(200, async () => {
      const r = await fetch(`${cairn.url}/api/auth/sign-up/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: cairn.url },
        body: JSON.stringify({ email: `ada-${run}@example.com`, password, name: 'Ada' }),
      });
      return { status: r.status, body: (await r.json()) as Any };
    });
    expect(row).toMatchObject({
      action: 'user.sign_up',
      actor_kind: 'session',
      actor_id: res.body.user.id,
      actor_role: 'admin',
      resource_type: 'user',
      resource_id: res.body.user.id,
      after: { role: 'admin', email: `ada-${run}@example.com` },
    });
    await nowhereInAudit(password);
    if (res.body.token) await nowhereInAudit(res.body.token);
  });

  it('records each admin write once, with actor, action, resource and before/after, secrets redacted', async () => {
    // Sources: the write key never reaches the log, before or after a rotation.
    const { res: src, row: created } = await audited(201, () =>
      api('/sources', { method: 'POST', body: { name: `Shop ${run}` } }),
    );
    expect(created).toMatchObject({
      actor_kind: 'bootstrap-key',
      actor_id: 'env:CAIRN_ADMIN_API_KEY',
      actor_role: 'admin',
      action: 'source.create',
      resource_type: 'source',
      resource_id: src.body.id,
      method: 'POST',
      path: '/api/sources',
      status: 201,
      before: null,
    });
    expect(created.after).toMatchObject({ name: `Shop ${run}`, writeKey: '[redacted]' });
    const { res: rotated, row: rotation } = await audited(200, () =>
      api(`/sources/${src.body.id}/rotate-key`, { method: 'POST', body: { graceSeconds: 60 } }),
    );
    expect(rotation).toMatchObject({ action: 'source.rotate_key', resource_id: src.body.id });
    expect(rotation.before.writeKey).toBe('[redacted]');
    expect(rotation.after).toMatchObject({ writeKey: '[redacted]', previousWriteKey: '[redacted]' });
    await nowhereInAudit(src.body.writeKey);
    await nowhereInAudit(rotated.body.writeKey);

    // Destinations: the plugin's secret setting is masked as the API masks it.
    const secret = `whsec-${randomUUID()}`;
    const { res: dest, row: destCreated } = await audited(201, () =>
      api('/destinations', {
        method: 'POST',
        body: { name: 'hook', plugin: 'webhook', enabled: false, settings: { url: 'https://hooks.test/x', secret } },
      }),
    );
    expect(destCreated).toMatchObject({ action: 'destination.create', resource_id: dest.body.id, before: null });
    expect(destCreated.after.settings).toMatchObject({ url: 'https://hooks.test/x', secret: '********' });
    const { row: destUpdated } = await audited(200, () =>
      api(`/destinations/${dest.body.id}`, { method: 'PATCH', body: { name: 'hook 2', settings: { secret } } }),
    );
    expect(destUpdated).toMatchObject({
      action: 'destination.update',
      before: { name: 'hook' },
      after: { name: 'hook 2' },
    });
    const { row: destDeleted } = await audited(204, () => api(`/destinations/${dest.body.id}`, { method: 'DELETE' }));
    expect(destDeleted).toMatchObject({ action: 'destination.delete', before: { name: 'hook 2' }, after: null });
    await nowhereInAudit(secret);

    // Audiences: a rule change shows the old and the new rule.
    const key = `vip_${run}`;
    const ruleA = { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' };
    const ruleB = { op: 'trait', trait: 'plan', cmp: '=', value: 'enterprise' };
    const { row: audCreated } = await audited(201, () =>
      api('/audiences', { method: 'POST', body: { key, name: 'VIP', rule: ruleA } }),
    );
    expect(audCreated).toMatchObject({ action: 'audience.create', resource_type: 'audience', resource_id: key });
    expect(audCreated.after.rule).toEqual(ruleA);
    const { row: audPatched } = await audited(200, () =>
      api(`/audiences/${key}`, { method: 'PATCH', body: { rule: ruleB } }),
    );
    expect(audPatched).toMatchObject({ action: 'audience.update', resource_id: key });
    expect(audPatched.before.rule).toEqual(ruleA);
    expect(audPatched.after.rule).toEqual(ruleB);

    // Profiles: consent set by staff (consent only), then erasure (counts only): no identity in the log.
    const email = `erin-${run}@example.com`;
    const userId = `erin-${run}`;
    const sent = await postTracking(cairn, rotated.body.writeKey, '/identify', {
      userId,
      traits: { email },
      messageId: randomUUID(),
    });
    expect(sent.status).toBe(200);
    await settle(cairn.sql);
    const profileId = (await api(`/profiles?userId=${userId}`)).body.data[0].id as string;
    const { row: consent } = await audited(200, () =>
      api(`/profiles/${profileId}/consent`, { method: 'PUT', body: { purposes: { marketing: true } } }),
    );
    expect(consent).toMatchObject({ action: 'profile.consent', resource_type: 'profile', resource_id: profileId });
    expect(consent.before?.marketing).toBeUndefined();
    expect(consent.after.marketing).toMatchObject({ granted: true, actor: 'env:CAIRN_ADMIN_API_KEY' });
    const { row: erased } = await audited(200, () => api(`/profiles/${profileId}`, { method: 'DELETE' }));
    expect(erased).toMatchObject({ action: 'profile.erase', resource_id: profileId, before: null });
    expect(erased.after).toMatchObject({ profileIds: [profileId], identities: 2 });
    await nowhereInAudit(email);
    await nowhereInAudit(userId);

    // A refused event replayed with a correction.
    const refused = await postTracking(cairn, rotated.body.writeKey, '/track', {
      userId: `r-${run}`,
      messageId: `m-${run}`,
      timestamp: 'not a date',
      event: 'Paid',
    });
    expect(refused.status).toBe(400);
    const failed = (await api(`/failed-events?sourceId=${src.body.id}`)).body.data[0];
    const { row: replay } = await audited(200, () =>
      api(`/failed-events/${failed.id}/replay`, {
        method: 'POST',
        body: { event: { type: 'track', userId: `r-${run}`, messageId: `m-${run}`, event: 'Paid' } },
      }),
    );
    expect(replay).toMatchObject({
      action: 'failed_event.replay',
      resource_type: 'failed_event',
      resource_id: failed.id,
      after: { status: 'stored', messageId: `m-${run}` },
    });

    // API keys: created (the key itself never logged), then revoked.
    const { res: made, row: keyCreated } = await audited(201, () =>
      api('/keys', { method: 'POST', body: { name: 'ci', role: 'operator' } }),
    );
    expect(keyCreated).toMatchObject({ action: 'api_key.create', resource_type: 'api_key', resource_id: made.body.id });
    expect(keyCreated.after).toMatchObject({ name: 'ci', role: 'operator', enabled: true });
    await nowhereInAudit(made.body.key);
    const { row: revoked } = await audited(204, () => api(`/keys/${made.body.id}`, { method: 'DELETE' }));
    expect(revoked).toMatchObject({ action: 'api_key.revoke', before: { enabled: true }, after: { enabled: false } });

    // People: an invitation (its initial password never logged), then a role change.
    const { res: invited, row: invite } = await audited(201, () =>
      api('/users', { method: 'POST', body: { email: `ivy-${run}@example.com`, role: 'operator' } }),
    );
    expect(invite).toMatchObject({ action: 'user.invite', resource_type: 'user', resource_id: invited.body.id });
    expect(invite.after).toMatchObject({ role: 'operator' });
    await nowhereInAudit(invited.body.initialPassword);
    const { row: role } = await audited(200, () =>
      api(`/users/${invited.body.id}`, { method: 'PATCH', body: { role: 'analyst' } }),
    );
    expect(role).toMatchObject({
      action: 'user.role_change',
      before: { role: 'operator' },
      after: { role: 'analyst' },
    });

    // An operator's write names the operator key.
    const { row: byOperator } = await audited(200, () =>
      api(`/sources/${src.body.id}/disable`, { method: 'POST', key: keys.operator }),
    );
    expect(byOperator).toMatchObject({
      action: 'source.disable',
      actor_kind: 'api-key',
      actor_id: operatorKeyId,
      actor_role: 'operator',
      before: { enabled: true },
      after: { enabled: false },
    });
  });

  it('records nothing for reads, previews and bad input', async () => {
    const mark = await lastId();
    for (const path of ['/sources', '/destinations', '/audiences', '/keys', '/users', '/audit']) {
      expect((await api(path)).status).toBe(200);
    }
    const preview = await api('/audiences/preview', {
      method: 'POST',
      body: { rule: { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' } },
    });
    expect(preview.status).toBe(200);
    expect((await api('/sources', { method: 'POST', body: { name: '' } })).status).toBe(400);
    expect((await api('/destinations/no-such-id', { method: 'DELETE' })).status).toBe(404);
    expect(await rowsAfter(mark)).toEqual([]);
  });

  it('records a write refused for lack of permission, with who tried', async () => {
    const { row } = await audited(403, () =>
      api('/sources', { method: 'POST', key: keys.analyst, body: { name: 'sneaky' } }),
    );
    expect(row).toMatchObject({
      action: 'source.create',
      actor_role: 'analyst',
      status: 403,
      before: null,
      after: null,
    });
    const source = (await api('/sources')).body.data.find((x: Any) => x.id !== 'cairn' && x.id !== 'import');
    const { row: patch } = await audited(403, () =>
      api(`/sources/${source.id}`, { method: 'PATCH', key: keys.analyst, body: { name: 'renamed' } }),
    );
    expect(patch).toMatchObject({
      action: 'source.update',
      resource_id: source.id,
      status: 403,
      before: null,
      after: null,
    });
    expect((await api(`/sources/${source.id}`)).body.name).toBe(source.name);
  });

  it('serves GET /api/audit to admins only, filtered and paged newest first', async () => {
    expect((await api('/audit', { key: keys.operator })).status).toBe(403);
    expect((await api('/audit', { key: keys.analyst })).status).toBe(403);

    const all = await api('/audit?resourceType=source&limit=500');
    expect(all.status).toBe(200);
    const ids = all.body.data.map((e: Any) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(all.body.data.every((e: Any) => e.resourceType === 'source')).toBe(true);

    const first = await api('/audit?action=source.create&limit=1');
    expect(first.body.data).toHaveLength(1);
    expect(first.body.next).toBe(first.body.data[0].id);
    const second = await api(`/audit?action=source.create&limit=1&before=${first.body.next}`);
    expect(Number(second.body.data[0].id)).toBeLessThan(Number(first.body.next));

    const byOperator = await api(`/audit?actor=${operatorKeyId}`);
    expect(byOperator.body.data.map((e: Any) => e.action)).toContain('source.disable');
    expect(byOperator.body.data.every((e: Any) => e.actor.id === operatorKeyId)).toBe(true);
  });

  it('names every write route of the OpenAPI description in the audit table (no generic fallbacks)', async () => {
    const doc = (await (await fetch(`${cairn.url}/api/openapi.json`)).json()) as Any;
    const writes: string[] = [];
    for (const [path, methods] of Object.entries<Any>(doc.paths)) {
      if (path.startsWith('/v1/') || path.startsWith('/api/auth/')) continue;
      for (const [method, op] of Object.entries<Any>(methods)) {
        if (method === 'get') continue;
        const url = path.replaceAll(/\{[^}]+\}/g, 'x');
        writes.push(`${method.toUpperCase()} ${path} ${op['x-cairn-permission']} ${url}`);
      }
    }
    expect(writes.length).toBeGreaterThan(25);
    // Every write goes through the table: a generic fallback action (`<segment>.<method>`) means a
    // route was added without a row. A write as the analyst is refused and so recorded: its action shows.
    const generic: string[] = [];
    for (const w of writes) {
      const [method, path, permission, url] = w.split(' ') as [string, string, string, string];
      const mark = await lastId();
      const res = await fetch(`${cairn.url}${url}`, {
        method,
        headers: { authorization: `Bearer ${keys.analyst}`, 'content-type': 'application/json' },
        body: method === 'DELETE' ? undefined : '{}',
      });
      await res.body?.cancel();
      const rows = await rowsAfter(mark);
      if (permission.endsWith(':read')) continue; // previews: reads sent as POST, allowed and not recorded
      if (rows.length !== 1 || rows[0].action === `${url.split('/')[2]}.${method.toLowerCase()}`) {
        generic.push(`${method} ${path}: ${rows.map((r) => r.action).join(', ') || 'no row'}`);
      }
    }
    expect(generic).toEqual([]);
  });
});

describe('when the audit row cannot be written', () => {
  it('keeps the answer of the change that happened, marks it Cairn-Audit: failed and logs the entry', async () => {
    const down = Object.assign(() => Promise.reject(new Error('database down')), { json: (v: unknown) => v });
    const log = { info: vi.fn(), debug: vi.fn(), error: vi.fn() };
    const app = new Hono<{ Variables: AuthVariables }>();
    app.use('*', async (c, next) => {
      c.set('principal', { kind: 'api-key', id: 'k1', role: 'admin' });
      await next();
    });
    app.use('*', auditWrites({ sql: down as unknown as Sql, log, routes: [] }));
    app.post('/api/things', (c) => c.json({ id: 't1' }, 201));
    const res = await app.request('http://localhost/api/things', { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers.get('cairn-audit')).toBe('failed');
    expect(log.error).toHaveBeenCalledOnce();
    expect(log.error.mock.calls[0]![0]).toContain('"action":"things.post"');
  });
});
