import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import {
  type ApiAnswer,
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  postTracking,
  sendEvents,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '../testing/index.ts';
import { applyPatch, patchOf } from './patch.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe('patchOf', () => {
  it('keeps defaults out of a patch and refuses unknown fields', async () => {
    const { z } = await import('@hono/zod-openapi');
    const Create = z.object({
      name: z.string(),
      purposes: z.array(z.string()).default([]).openapi({ description: 'required purposes' }),
      channel: z.string().nullable().default(null),
      enabled: z.boolean().default(true),
    });
    const Patch = patchOf(Create);
    expect(Create.partial().parse({ name: 'x' })).toEqual({ name: 'x', purposes: [], channel: null, enabled: true });
    expect(Patch.parse({ name: 'x' })).toEqual({ name: 'x' });
    expect(Patch.parse({})).toEqual({});
    expect(Patch.parse({ channel: null })).toEqual({ channel: null });
    expect(Patch.safeParse({ nmae: 'typo' }).success).toBe(false);
    expect(applyPatch({ name: 'a', channel: 'email' as string | null }, { channel: null })).toEqual({
      name: 'a',
      channel: null,
    });
  });
});

describe.each(['postgres', 'embedded'] as const)('partial updates on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  const run = randomUUID().slice(0, 8);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await api(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    return res;
  };
  /** Fields a resource's view changes on every write, whatever the write named. */
  const volatile = (v: Any) => {
    const { updatedAt: _u, circuit: _c, deliveries: _d, computedAt: _ca, members: _m, ...rest } = v;
    return rest;
  };
  /**
   * Creates a resource with non-default values, then sends one PATCH per field and checks that the
   * field took the new value and that every other field is unchanged.
   */
  const everyFieldAlone = async (
    path: string,
    before: Any,
    changes: Record<string, unknown>,
    expected: Record<string, (view: Any) => unknown> = {},
    dependents: Record<string, string[]> = {},
  ) => {
    let current = volatile(before);
    for (const [field, value] of Object.entries(changes)) {
      const res = await call('PATCH', path, { [field]: value });
      expect(res.status, `${path} ${field}: ${res.text}`).toBe(200);
      const after = volatile(res.body);
      const read = expected[field] ?? ((v: Any) => v[field]);
      expect(read(after), `${path}: ${field} changed`).toEqual(value);
      const untouched = (v: Any) => {
        const { [field]: _f, ...rest } = v;
        for (const dependent of dependents[field] ?? []) delete rest[dependent];
        return rest;
      };
      expect(untouched(after), `${path}: PATCH {${field}} left the other fields`).toEqual(untouched(current));
      const reread = volatile((await call('GET', path)).body);
      expect(reread, `${path}: GET after PATCH {${field}}`).toEqual(after);
      current = after;
    }
    const typo = await call('PATCH', path, { nmae: 'typo' });
    expect(typo.status, typo.text).toBe(400);
    expect(typo.body.error.message).toMatch(/nmae/);
    expect(volatile((await call('GET', path)).body)).toEqual(current);
  };

  beforeAll(async () => {
    db = await createTestDatabase(`patch.test.ts:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_DELIVERY_RETRY_DELAY_S: '1' });
    api = adminApi(cairn.url);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('no PATCH body in the API description has a default, and each refuses unknown fields', async () => {
    const doc = (await call('GET', '/openapi.json')).body;
    const patches = Object.entries(doc.paths as Record<string, Any>).filter(([, ops]) => ops.patch);
    expect(patches.length).toBeGreaterThanOrEqual(6);
    const resolve = (s: Any): Any => (s?.$ref ? doc.components.schemas[s.$ref.split('/').pop()] : s);
    for (const [path, ops] of patches) {
      const schema = resolve(ops.patch.requestBody?.content?.['application/json']?.schema);
      expect(schema, `PATCH ${path} has a JSON body`).toBeTruthy();
      expect(schema.required ?? [], `PATCH ${path}: no field required`).toEqual([]);
      expect(schema.additionalProperties, `PATCH ${path} refuses unknown fields`).toBe(false);
      for (const [field, prop] of Object.entries(schema.properties as Record<string, Any>)) {
        expect(resolve(prop).default, `PATCH ${path}: ${field} has a default`).toBeUndefined();
      }
    }
  });

  it('sources', async () => {
    const created = await call('POST', '/sources', { name: `src ${run}`, allowedOrigins: ['https://shop.example'] });
    expect(created.status).toBe(201);
    const path = `/sources/${created.body.id}`;
    await call('PATCH', path, { consentPolicy: { default: 'deny', purposes: { analytics: 'allow' } }, enabled: false });
    await everyFieldAlone(path, (await call('GET', path)).body, {
      name: `renamed ${run}`,
      allowedOrigins: ['https://other.example', 'https://*.shop.example'],
      enabled: true,
      consentPolicy: { default: 'allow' },
    });
  });

  it('destinations', async () => {
    const created = await call('POST', '/destinations', {
      name: `hook ${run}`,
      plugin: 'webhook',
      settings: { url: 'http://127.0.0.1:9/hook', secret: 'a-secret-of-enough-length', parallel: 4 },
      filter: { event: ['Promo Sent'], where: [{ property: 'total', cmp: '>=', value: 10 }] },
      purposes: ['marketing'],
      channel: 'email',
      topic: 'newsletter',
      enabled: false,
      concurrency: 5,
      rateLimit: 50,
      retryWindowSeconds: 600,
    });
    expect(created.status, created.text).toBe(201);
    const path = `/destinations/${created.body.id}`;
    await everyFieldAlone(
      path,
      created.body,
      {
        name: `renamed ${run}`,
        filter: { type: ['track'] },
        purposes: ['advertising'],
        channel: 'sms',
        topic: '',
        enabled: true,
        concurrency: 1,
        rateLimit: null,
        retryWindowSeconds: 7200,
        settings: { url: 'http://127.0.0.1:10/other' },
      },
      {
        // Settings merge key by key; the secret stays masked.
        settings: (v) => ({ url: v.settings.url }),
      },
      // The purposes the destination requires = its own + its plugin's.
      { purposes: ['requiredPurposes'] },
    );
    const after = (await call('GET', path)).body;
    expect(after.settings).toMatchObject({ secret: '********', parallel: 4 });
    expect(after.requiredPurposes).toEqual(['analytics', 'advertising']);
  });

  it('audiences, tags and computed traits', async () => {
    const rule = { op: 'performed', event: 'Order Completed', min: 2 };
    const audience = await call('POST', '/audiences', {
      key: `buyers_${run}`,
      name: 'Buyers',
      description: 'two orders',
      rule,
      enabled: false,
    });
    expect(audience.status, audience.text).toBe(201);
    await everyFieldAlone(
      `/audiences/buyers_${run}`,
      audience.body,
      {
        name: 'Repeat buyers',
        description: null,
        enabled: true,
        rule: { op: 'performed', event: 'Order Completed', min: 3 },
      },
      {},
      { rule: ['words'] },
    );

    const tag = await call('POST', '/tags', { key: `vip_${run}`, name: 'VIP', rule });
    expect(tag.status, tag.text).toBe(201);
    await everyFieldAlone(
      `/tags/vip_${run}`,
      tag.body,
      {
        name: 'Very important',
        rule: { op: 'performed', event: 'Order Completed' },
      },
      {},
      { rule: ['words'] },
    );

    const trait = await call('POST', '/computed-traits', {
      key: `orders_${run}`,
      name: 'Orders',
      definition: { kind: 'aggregate', fn: 'count', event: 'Order Completed' },
    });
    expect(trait.status, trait.text).toBe(201);
    await everyFieldAlone(
      `/computed-traits/orders_${run}`,
      trait.body,
      {
        name: 'Order count',
        definition: { kind: 'aggregate', fn: 'sum', event: 'Order Completed', property: 'total' },
      },
      {},
      { definition: ['words'] },
    );
  });

  it('users: a role change touches nothing else', async () => {
    const created = await call('POST', '/users', { email: `p-${run}@example.com`, name: 'Pat', role: 'analyst' });
    expect(created.status, created.text).toBe(201);
    const { initialPassword: _p, ...person } = created.body;
    const res = await call('PATCH', `/users/${person.id}`, { role: 'operator' });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ ...person, role: 'operator' });
    const empty = await call('PATCH', `/users/${person.id}`, {});
    expect(empty.body).toEqual({ ...person, role: 'operator' });
  });

  it('consent and subscriptions: a PUT changes only the purposes and channel it names', async () => {
    const source = await call('POST', '/sources', { name: `consent ${run}` });
    const userId = `c-${run}`;
    const track = await postTracking(cairn, source.body.writeKey, '/identify', {
      userId,
      traits: { email: `${userId}@example.com`, phone: '+14155550100' },
      context: { consent: { categoryPreferences: { marketing: true, analytics: true } } },
    });
    expect(track.status).toBe(200);
    const id = await until(
      'the profile',
      async () => (await call('GET', `/profiles?userId=${userId}`)).body.data?.[0]?.id,
    );
    await until(
      'its consent',
      async () => (await call('GET', `/profiles/${id}`)).body.consent?.marketing?.granted === true,
    );
    const before = (await call('GET', `/profiles/${id}`)).body;
    const put = await call('PUT', `/profiles/${id}/consent`, { purposes: { marketing: false } });
    expect(put.status, put.text).toBe(200);
    expect(put.body.consent.analytics).toEqual(before.consent.analytics);
    expect(put.body.consent.marketing).toMatchObject({ granted: false, source: 'api' });
    expect(Object.keys(put.body.consent).sort()).toEqual(Object.keys(before.consent).sort());

    const sms = await call('PUT', `/profiles/${id}/subscriptions`, {
      channel: 'sms',
      topic: 'promo',
      subscribed: false,
    });
    expect(sms.status, sms.text).toBe(200);
    const smsRows = (await call('GET', `/profiles/${id}/subscriptions`)).body.data;
    expect(smsRows).toHaveLength(1);
    const email = await call('PUT', `/profiles/${id}/subscriptions`, { channel: 'email', subscribed: false });
    expect(email.status, email.text).toBe(200);
    const rows = (await call('GET', `/profiles/${id}/subscriptions`)).body.data as Any[];
    expect(rows.filter((r) => r.channel === 'sms')).toEqual(smsRows);
    expect(rows.filter((r) => r.channel === 'email').map((r) => [r.topic, r.subscribed])).toEqual([['', false]]);
  });

  it('a renamed marketing destination still skips a person without marketing consent', async () => {
    const server = await startReceiver();
    try {
      const url = server.url;
      const created = await call('POST', '/destinations', {
        name: `promo ${run}`,
        plugin: 'webhook',
        settings: { url },
        purposes: ['marketing'],
        filter: { event: ['Promo Eligible'] },
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id;
      const renamed = await call('PATCH', `/destinations/${id}`, { name: `promo renamed ${run}` });
      expect(renamed.status).toBe(200);
      expect(renamed.body.purposes).toEqual(['marketing']);
      expect(renamed.body.filter).toEqual({ event: ['Promo Eligible'] });

      const source = await call('POST', '/sources', { name: `promo ${run}` });
      const [yes, no] = [`yes-${run}`, `no-${run}`];
      const consent = (m: boolean) => ({ consent: { categoryPreferences: { marketing: m } } });
      await sendEvents(
        cairn,
        source.body.writeKey,
        [
          { type: 'track', userId: no, event: 'Promo Eligible', context: consent(false) },
          { type: 'track', userId: no, event: 'Other' },
          { type: 'track', userId: yes, event: 'Promo Eligible', context: consent(true) },
        ],
        { messageIds: false },
      );
      // The ledger also lists the event the filter kept out ("Other"), as skipped for `filter`.
      const ledger = async () =>
        ((await call('GET', `/destinations/${id}/deliveries?limit=100`)).body.data as Any[]).filter(
          (r) => r.reason !== 'filter',
        );
      await until('both promo events settled', async () => {
        const rows = await ledger();
        return rows.length === 2 && rows.every((r) => r.status === 'delivered' || r.status === 'skipped');
      });
      const rows = await ledger();
      expect(rows.map((r) => r.status).sort()).toEqual(['delivered', 'skipped']);
      expect(rows.find((r) => r.status === 'skipped').reason).toBe('consent: marketing not granted');
      expect(server.accepted.map((h) => h.body.profile?.userId)).toEqual([yes]);
    } finally {
      await server.close();
    }
  });
});
