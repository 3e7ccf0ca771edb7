// Tests a plugin the way Cairn runs it: runPlugin (settings validated, events completed and batched,
// a real fetch, errors mapped like the server does) against a fake Acme CRM on a local port.
import { type DeliveryProfile, runPlugin } from '@cairn/plugin-api';
import { type Receiver, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import acmeCrm from './index.ts';

const API_KEY = 'acme_test_key_123';

interface CrmBody {
  email?: string;
  traits?: unknown;
  type?: string;
  properties?: unknown;
}

/** A tiny in-memory Acme CRM: contacts upserted by email, activities deduplicated by Idempotency-Key. */
class FakeCrm {
  contacts = new Map<string, { id: string; email: string; traits: unknown }>();
  activities = new Map<string, { contact: string; type: string; properties: unknown }>();
  upserts = 0;
  /** Statuses to answer the next activity calls with instead of handling them. */
  fail: number[] = [];

  handle(method: string, path: string, auth: string | undefined, key: string | undefined, body: CrmBody) {
    if (auth !== `Bearer ${API_KEY}`) return { status: 401, body: { error: 'invalid api key' } };
    if (method === 'POST' && path === '/v1/contacts') {
      this.upserts++;
      const existing = [...this.contacts.values()].find((c) => c.email === body.email);
      const contact = existing ?? { id: `c_${this.contacts.size + 1}`, email: body.email!, traits: {} };
      contact.traits = body.traits;
      this.contacts.set(contact.id, contact);
      return { status: 200, body: { id: contact.id } };
    }
    const m = /^\/v1\/contacts\/([^/]+)\/activities$/.exec(path);
    if (method === 'POST' && m) {
      const status = this.fail.shift();
      if (status) return { status, body: { error: `status ${status}` } };
      if (!this.contacts.has(m[1]!)) return { status: 404, body: { error: 'no such contact' } };
      if (!body.type) return { status: 422, body: { error: 'type is required' } };
      if (!key) return { status: 400, body: { error: 'Idempotency-Key is required' } };
      if (!this.activities.has(key))
        this.activities.set(key, { contact: m[1]!, type: body.type, properties: body.properties });
      return { status: 201, body: { ok: true } };
    }
    return { status: 404, body: { error: 'not found' } };
  }
}

const ada: DeliveryProfile = {
  id: 'p1',
  userId: 'u1',
  email: 'ada@example.test',
  phone: null,
  anonymousIds: [],
  traits: { name: 'Ada Lovelace', plan: 'pro' },
};

describe('acme-crm example plugin against a fake CRM', () => {
  let receiver: Receiver;
  let baseUrl: string;
  let crm: FakeCrm;

  beforeAll(async () => {
    // The kit's scripted receiver plays the CRM: every request is answered by the fake's state machine.
    receiver = await startReceiver({
      answer: (req) => {
        const key = req.headers['idempotency-key'] as string | undefined;
        const r = crm.handle(req.method, req.path, req.headers.authorization, key, req.body ?? {});
        return { status: r.status, body: r.body };
      },
    });
    baseUrl = receiver.origin;
  });
  afterAll(() => receiver.close());
  beforeEach(() => {
    crm = new FakeCrm();
  });

  const settings = () => ({ baseUrl, apiKey: API_KEY });

  it('creates the contact once, remembers its id, and adds activities with their idempotency key', async () => {
    const kv = new Map<string, unknown>();
    const first = await runPlugin(
      acmeCrm,
      settings(),
      [
        { type: 'identify', userId: 'u1' },
        { type: 'track', event: 'Order Completed', messageId: 'm1', properties: { total: 42 } },
      ],
      { profile: ada, kv },
    );
    expect(first.outcomes).toEqual([{ status: 'delivered' }, { status: 'delivered' }]);
    expect(kv.get('contact:p1')).toBe('c_1');
    expect(crm.contacts.get('c_1')).toMatchObject({ email: 'ada@example.test', traits: { plan: 'pro' } });
    expect(crm.activities.get('m1:test')).toEqual({
      contact: 'c_1',
      type: 'Order Completed',
      properties: { total: 42 },
    });
    // Later events use the remembered id: no second upsert.
    await runPlugin(acmeCrm, settings(), [{ type: 'track', event: 'Signed In' }], { profile: ada, kv });
    expect(crm.upserts).toBe(1);
    expect(crm.activities.size).toBe(2);
  });

  it('a replayed event is deduplicated by the CRM through its idempotency key', async () => {
    const event = { type: 'track', event: 'Order Completed', messageId: 'm-replayed' };
    await runPlugin(acmeCrm, settings(), [event], { profile: ada });
    await runPlugin(acmeCrm, settings(), [event], { profile: ada });
    expect(crm.activities.size).toBe(1);
  });

  it('re-creates a contact deleted in the CRM on the retry', async () => {
    const kv = new Map<string, unknown>([['contact:p1', 'c_deleted']]);
    const first = await runPlugin(acmeCrm, settings(), [{ event: 'Signed In', messageId: 'm2' }], { profile: ada, kv });
    expect(first.outcomes).toEqual([
      { status: 'retry', error: expect.stringContaining('no longer exists'), retryAfter: 0 },
    ]);
    expect(kv.has('contact:p1')).toBe(false);
    const retry = await runPlugin(acmeCrm, settings(), [{ event: 'Signed In', messageId: 'm2' }], { profile: ada, kv });
    expect(retry.outcomes).toEqual([{ status: 'delivered' }]);
    expect(kv.get('contact:p1')).toBe('c_1');
  });

  it('retries 5xx and holds back the same person’s later events; fails what the CRM refuses', async () => {
    crm.fail = [503];
    const r1 = await runPlugin(acmeCrm, settings(), [{ event: 'A' }, { event: 'B' }], { profile: ada });
    expect(r1.outcomes).toEqual([
      { status: 'retry', error: 'HTTP 503: {"error":"status 503"}' },
      { status: 'retry', error: expect.stringContaining('not sent') },
    ]);
    expect(crm.activities.size).toBe(0);
    const r2 = await runPlugin(acmeCrm, settings(), [{ type: 'track' }], { profile: ada });
    expect(r2.outcomes).toEqual([{ status: 'failed', error: 'HTTP 422: {"error":"type is required"}' }]);
  });

  it('fails people without an email, and everything when the API key is refused', async () => {
    const noEmail = await runPlugin(acmeCrm, settings(), [{ event: 'A' }], { profile: { ...ada, email: null } });
    expect(noEmail.outcomes[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('by email') });
    const badKey = await runPlugin(acmeCrm, { ...settings(), apiKey: 'wrong-key-123' }, [{ event: 'A' }], {
      profile: ada,
    });
    expect(badKey.outcomes).toEqual([{ status: 'failed', error: 'HTTP 401: {"error":"invalid api key"}' }]);
  });

  it('tells the user which setting is wrong', async () => {
    await expect(runPlugin(acmeCrm, { baseUrl, apiKey: 'short' }, [])).rejects.toThrow(/apiKey: use the full API key/);
  });
});
