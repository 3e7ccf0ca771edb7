import { type DeliveryProfile, PluginSettingsError, runPlugin } from '@cairn/plugin-api';
import { type ReceivedRequest, type Receiver, type ScriptedAnswer, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import sms, { e164 } from './index.ts';

const profile = (over: Partial<DeliveryProfile> = {}): DeliveryProfile => ({
  id: 'p1',
  userId: 'u1',
  email: null,
  phone: '+15550100123',
  anonymousIds: [],
  traits: { first_name: 'Ada', code: 'SPRING20' },
  ...over,
});

describe('sms-http plugin against a fake SMS provider', () => {
  let provider: Receiver;
  let base: string;
  /** The statuses of the next answers to requests with good credentials; 201 once used up. */
  let answers: number[] = [];
  const received = () => provider.requests;
  const urlOf = (request: ReceivedRequest) => new URL(request.path, base);

  // Answers like an SMS provider. The credentials are checked before anything else, so a refused request
  // takes no planned answer; the message id counts the requests so far.
  function answerLikeProvider(request: ReceivedRequest): ScriptedAnswer {
    if (request.headers['x-api-key'] !== 'key-123' && request.headers.authorization !== 'Basic QUM6c2VjcmV0') {
      return { status: 401, body: '{"error":"bad credentials"}' };
    }
    const status = answers.shift() ?? 201;
    return {
      status,
      headers: { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '12' } : {}) },
      body: status === 201 ? `{"id":"SM${received().length}","status":"queued"}` : `{"error":"status ${status}"}`,
    };
  }

  beforeAll(async () => {
    provider = await startReceiver({ answer: answerLikeProvider });
    base = provider.origin;
  });
  afterAll(() => provider.close());
  beforeEach(() => {
    provider.reset();
    answers = [];
  });

  // A JSON provider (MessageBird-like): recipients list, sender, text and a reference.
  const jsonSettings = () => ({
    url: `${base}/messages`,
    secretHeaders: { 'X-Api-Key': 'key-123' },
    body: {
      recipients: ['{{phone}}'],
      originator: 'Acme',
      body: '{{text}}',
      reference: '{{idempotency_key}}',
      dryRun: false,
      meta: { plan: '{{trait.plan}}' },
    },
    text: 'Hi {{first_name | there}}, use {{code}} for 20% off. Stop: {{unsubscribe_url}}',
  });

  it('sends the JSON body with phone, rendered text, secret header and idempotency key', async () => {
    const { outcomes, items } = await runPlugin(sms, jsonSettings(), [{ event: 'Cart Abandoned' }], {
      profile: profile(),
    });
    expect(outcomes).toEqual([{ status: 'delivered', detail: '{"id":"SM1","status":"queued"}' }]);
    const [r] = received();
    expect(r!.method).toBe('POST');
    expect(urlOf(r!).pathname).toBe('/messages');
    expect(r!.headers['content-type']).toBe('application/json');
    expect(r!.headers['idempotency-key']).toBe(items[0]!.idempotencyKey);
    expect(JSON.parse(r!.raw)).toEqual({
      recipients: ['+15550100123'],
      originator: 'Acme',
      body: 'Hi Ada, use SPRING20 for 20% off. Stop: http://localhost/u/test-p1-sms',
      reference: items[0]!.idempotencyKey,
      dryRun: false,
      meta: { plan: '' },
    });
  });

  it('sends a form body (Twilio-like) with Basic auth, and quotes and ampersands intact', async () => {
    const traits = { first_name: 'Zoë "Z" & co' };
    const { outcomes } = await runPlugin(
      sms,
      {
        url: `${base}/2010-04-01/Accounts/AC/Messages.json`,
        format: 'form',
        secretHeaders: { Authorization: 'Basic QUM6c2VjcmV0' },
        idempotencyHeader: 'X-Request-Id',
        body: { To: '{{phone}}', From: '+15550109999', Body: '{{text}}' },
        text: 'Hi {{first_name}}!',
        topic: 'promos',
      },
      [{}],
      { profile: profile({ phone: '+1 (555) 010-0123', traits }) },
    );
    expect(outcomes[0]!.status).toBe('delivered');
    const [r] = received();
    expect(r!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(r!.headers['x-request-id']).toMatch(/:test$/);
    expect(r!.headers['idempotency-key']).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(r!.raw))).toEqual({
      To: '+15550100123',
      From: '+15550109999',
      Body: 'Hi Zoë "Z" & co!',
    });
  });

  it('puts the fields in the query for GET providers', async () => {
    await runPlugin(
      sms,
      {
        url: `${base}/send?api=1`,
        method: 'GET',
        format: 'form',
        headers: { 'X-Api-Key': 'key-123' },
        body: { to: '{{phone}}', text: '{{text}}', unsub: '{{unsubscribe_url}}' },
        text: 'Sale & more',
        topic: 'promos',
      },
      [{}],
      { profile: profile() },
    );
    const [r] = received();
    expect(r!.method).toBe('GET');
    expect(r!.raw).toBe('');
    expect(Object.fromEntries(urlOf(r!).searchParams)).toEqual({
      api: '1',
      to: '+15550100123',
      text: 'Sale & more',
      unsub: 'http://localhost/u/test-p1-sms-promos',
    });
  });

  it('fails profiles without a usable phone number without calling the provider', async () => {
    const outcomes = [];
    for (const phone of [null, '0151 12345678', '+0123456789', 'call me']) {
      outcomes.push((await runPlugin(sms, jsonSettings(), [{}], { profile: profile({ phone }) })).outcomes[0]);
    }
    outcomes.push((await runPlugin(sms, jsonSettings(), [{}])).outcomes[0]);
    expect(outcomes.map((o) => o!.status)).toEqual(['failed', 'failed', 'failed', 'failed', 'failed']);
    expect(outcomes[1]).toMatchObject({ error: expect.stringContaining('E.164') });
    expect(received()).toHaveLength(0);
    expect(e164('+44 20 7946 0958')).toBe('+442079460958');
  });

  it('retries 429 (Retry-After) and 5xx, holding back the rest of the batch', async () => {
    answers = [201, 429];
    const r1 = await runPlugin(sms, jsonSettings(), [{}, {}, {}], { profile: profile() });
    expect(r1.outcomes).toEqual([
      { status: 'delivered', detail: expect.stringContaining('SM1') },
      { status: 'retry', error: 'HTTP 429: {"error":"status 429"}', retryAfter: 12, statusCode: 429 },
      { status: 'retry', error: 'not sent: HTTP 429: {"error":"status 429"}', retryAfter: 12, statusCode: 429 },
    ]);
    expect(received()).toHaveLength(2);
    answers = [503];
    const r2 = await runPlugin(sms, jsonSettings(), [{}, {}], { profile: profile() });
    expect(r2.outcomes.map((o) => o.status)).toEqual(['retry', 'retry']);
  });

  it('fails one message on 400/422 and the whole batch on refused credentials', async () => {
    answers = [422, 201];
    const r1 = await runPlugin(sms, jsonSettings(), [{}, {}], { profile: profile() });
    expect(r1.outcomes).toEqual([
      { status: 'failed', error: 'HTTP 422: {"error":"status 422"}', statusCode: 422 },
      { status: 'delivered', detail: expect.any(String) },
    ]);
    provider.reset();
    const r2 = await runPlugin(sms, { ...jsonSettings(), secretHeaders: { 'X-Api-Key': 'wrong' } }, [{}, {}], {
      profile: profile(),
    });
    expect(r2.outcomes).toEqual([
      { status: 'failed', error: 'HTTP 401: {"error":"bad credentials"}', statusCode: 401 },
      { status: 'failed', error: 'not sent: HTTP 401: {"error":"bad credentials"}', statusCode: 401 },
    ]);
    expect(received()).toHaveLength(1);
  });

  it('retries when the provider cannot be reached', async () => {
    const { outcomes } = await runPlugin(sms, { ...jsonSettings(), url: 'http://127.0.0.1:1/x' }, [{}], {
      profile: profile(),
    });
    expect(outcomes[0]).toMatchObject({ status: 'retry', error: expect.stringContaining('request failed') });
  });

  it('refuses settings that cannot make a valid request', async () => {
    const form = { ...jsonSettings(), format: 'form' };
    await expect(runPlugin(sms, form, [])).rejects.toThrow(/body: a form \(or GET\) body must be flat/);
    await expect(runPlugin(sms, { ...jsonSettings(), method: 'GET' }, [])).rejects.toThrow(/format: GET/);
    await expect(runPlugin(sms, { ...jsonSettings(), url: 'ftp://x' }, [])).rejects.toThrow(PluginSettingsError);
    await expect(runPlugin(sms, { ...jsonSettings(), headers: { 'Bad Header': 'x' } }, [])).rejects.toThrow(
      /headers\.Bad Header/,
    );
    await expect(
      runPlugin(sms, { ...jsonSettings(), secretHeaders: { Authorization: 'Bearer x\r\nX-Evil: 1' } }, []),
    ).rejects.toThrow(/secretHeaders\.Authorization: must be on one line/);
  });
});
