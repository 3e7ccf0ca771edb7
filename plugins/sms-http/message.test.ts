// A flow's message (item.message) through the SMS plugin, to a real HTTP receiver: the text is the
// message's body as the flow rendered it, in the provider's request body like any text.
import {
  createPluginFetch,
  type DeliveryItem,
  type DeliveryMessage,
  type DeliveryProfile,
  type PluginContext,
  sendBatch,
} from '@cairn/plugin-api';
import { type Receiver, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import sms from './index.ts';

const profile: DeliveryProfile = {
  id: 'p1',
  userId: 'u1',
  email: null,
  phone: '+49 151 2345 6789',
  anonymousIds: [],
  traits: { first_name: 'Ada' },
};

/** An item as the server hands a flow's message to a plugin (deliver/messages.ts). */
function messageItem(message: Omit<DeliveryMessage, 'flow'>, key = 'flow:run-1:d3_guide:0'): DeliveryItem {
  const flow = { id: 'flw_1', node: 'd3_guide' };
  return {
    idempotencyKey: key,
    profile,
    attempt: 1,
    message: { ...message, flow },
    event: {
      type: 'track',
      event: 'Flow Message',
      messageId: key,
      timestamp: '2026-03-04T09:00:00.000Z',
      userId: 'u1',
      properties: { flow, ...message },
    },
  };
}

/** The context the server gives a plugin, with the settings parsed by the plugin's schema. */
function contextFor(settings: unknown): PluginContext<ReturnType<typeof sms.settings.parse>> {
  const controller = new AbortController();
  const ignore = () => {};
  return {
    settings: sms.settings.parse(settings),
    destination: { id: 'dst_sms', name: 'sms' },
    fetch: createPluginFetch(controller.signal),
    log: { info: ignore, warn: ignore, error: ignore },
    kv: { get: async () => undefined, set: async () => {}, delete: async () => {} },
    unsubscribeUrl: (p, channel) => `https://cairn.example/u/${p.id}-${channel}`,
    now: () => new Date('2026-03-04T09:00:00Z'),
    signal: controller.signal,
  };
}

describe('sms-http sends a flow message as the flow rendered it', () => {
  let provider: Receiver;
  beforeAll(async () => {
    provider = await startReceiver();
  });
  afterAll(() => provider.close());
  beforeEach(() => provider.reset());

  const settings = (more: object = {}) => ({
    url: `${provider.origin}/messages`,
    body: { to: '{{phone}}', text: '{{text}}', stop: '{{unsubscribe_url}}', ref: '{{idempotency_key}}' },
    // The destination's text template, for events: a flow's message must not use it.
    text: 'Event SMS for {{first_name}}',
    ...more,
  });

  it('sends the message body as the text, with the phone, unsubscribe URL and idempotency key', async () => {
    const outcomes = await sendBatch(
      sms,
      [messageItem({ subject: 'not for SMS', body: '  Day 3: how to get started, Ada → https://acme.example/guide ' })],
      contextFor(settings()),
    );
    expect(outcomes).toEqual([{ status: 'delivered' }]);
    const [r] = provider.requests;
    expect(r!.headers['idempotency-key']).toBe('flow:run-1:d3_guide:0');
    expect(JSON.parse(r!.raw)).toEqual({
      to: '+4915123456789',
      text: 'Day 3: how to get started, Ada → https://acme.example/guide',
      stop: 'https://cairn.example/u/p1-sms',
      ref: 'flow:run-1:d3_guide:0',
    });
  });

  it('sends a form body too, and fails an empty body without calling the provider', async () => {
    const form = settings({ format: 'form', body: { To: '{{phone}}', Body: '{{text}}' } });
    const outcomes = await sendBatch(
      sms,
      [messageItem({ body: 'Code A & B' }, 'k1'), messageItem({ body: ' \n ' }, 'k2')],
      contextFor(form),
    );
    expect(outcomes).toEqual([{ status: 'delivered' }, { status: 'failed', error: 'message body is empty' }]);
    expect(provider.requests).toHaveLength(1);
    expect(Object.fromEntries(new URLSearchParams(provider.requests[0]!.raw))).toEqual({
      To: '+4915123456789',
      Body: 'Code A & B',
    });
  });

  it('sends events with the text template as before', async () => {
    const item = { ...messageItem({ body: 'unused' }), message: undefined };
    await sendBatch(sms, [item], contextFor(settings()));
    expect(JSON.parse(provider.requests[0]!.raw).text).toBe('Event SMS for Ada');
  });
});
