// A flow's message (item.message) through the email plugin, to a real SMTP server: the flow's subject
// and body are sent as rendered, with the unsubscribe footer and headers every marketing email carries.
import type { AddressInfo } from 'node:net';
import {
  createPluginFetch,
  type DeliveryItem,
  type DeliveryMessage,
  type DeliveryProfile,
  type PluginContext,
  sendBatch,
} from '@cairn/plugin-api';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import email from './index.ts';

const profile: DeliveryProfile = {
  id: 'p1',
  userId: 'u1',
  email: 'ada@example.test',
  phone: null,
  anonymousIds: [],
  traits: { first_name: 'Ada' },
};

/** An item as the server hands a flow's message to a plugin (deliver/messages.ts). */
function messageItem(message: Omit<DeliveryMessage, 'flow'>, key = 'flow:run-1:d1_coupon:0'): DeliveryItem {
  const flow = { id: 'flw_1', node: 'd1_coupon' };
  return {
    idempotencyKey: key,
    profile,
    attempt: 1,
    message: { ...message, flow },
    event: {
      type: 'track',
      event: 'Flow Message',
      messageId: key,
      timestamp: '2026-03-02T09:00:00.000Z',
      userId: 'u1',
      properties: { flow, ...message },
    },
  };
}

/** The context the server gives a plugin, with the settings parsed by the plugin's schema. */
function contextFor(settings: unknown): PluginContext<ReturnType<typeof email.settings.parse>> {
  const controller = new AbortController();
  const ignore = () => {};
  return {
    settings: email.settings.parse(settings),
    destination: { id: 'dst_mail', name: 'mail' },
    fetch: createPluginFetch(controller.signal),
    log: { info: ignore, warn: ignore, error: ignore },
    kv: { get: async () => undefined, set: async () => {}, delete: async () => {} },
    unsubscribeUrl: (p, channel, topic) => `https://cairn.example/u/${p.id}-${channel}${topic ? `-${topic}` : ''}`,
    now: () => new Date('2026-03-02T09:00:00Z'),
    signal: controller.signal,
  };
}

describe('email-smtp sends a flow message as the flow rendered it', () => {
  let server: SMTPServer;
  let port: number;
  const received: { to: string[]; mail: ParsedMail }[] = [];

  beforeAll(async () => {
    server = new SMTPServer({
      disabledCommands: ['STARTTLS', 'AUTH'],
      authOptional: true,
      logger: false,
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', async () => {
          received.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            mail: await simpleParser(Buffer.concat(chunks)),
          });
          cb(null, 'queued');
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    received.length = 0;
  });

  const settings = (more: object = {}) => ({
    host: '127.0.0.1',
    port,
    from: '"Acme" <news@acme.example>',
    // The destination's own templates, for events: a flow's message must not use them.
    subject: 'Event mail for {{first_name}}',
    text: 'Event text {{event.event}}',
    html: '<p>Event html</p>',
    topic: 'offers',
    timeoutMs: 5000,
    ...more,
  });

  it("sends the message's subject and body, the unsubscribe footer and the one-click headers", async () => {
    const item = messageItem({ subject: 'Welcome, Ada: 10% off', body: 'Your coupon: WELCOME10\nSee you soon.' });
    const outcomes = await sendBatch(email, [item], contextFor(settings()));
    expect(outcomes).toEqual([{ status: 'delivered', detail: expect.stringContaining('queued') }]);
    expect(received).toHaveLength(1);
    const { to, mail } = received[0]!;
    expect(to).toEqual(['ada@example.test']);
    expect(mail.subject).toBe('Welcome, Ada: 10% off');
    expect(mail.text).toBe(
      'Your coupon: WELCOME10\nSee you soon.\n\nUnsubscribe: https://cairn.example/u/p1-email-offers\n',
    );
    // The event templates' html would say something else than the message: none is sent.
    expect(mail.html).toBe(false);
    const headers = mail.headerLines.map((h) => h.line);
    expect(headers).toContain('List-Unsubscribe: <https://cairn.example/u/p1-email-offers>');
    expect(headers).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(headers).toContain('X-Cairn-Idempotency-Key: flow:run-1:d1_coupon:0');
  });

  it("takes the destination's subject when the message has none, and a footer of its own or none", async () => {
    await sendBatch(
      email,
      [messageItem({ body: 'Plain body' })],
      contextFor(settings({ messageFooter: 'Stop these mails: {{unsubscribe_url}} ({{first_name}})' })),
    );
    await sendBatch(
      email,
      [messageItem({ subject: 'No footer', body: 'Only this' })],
      contextFor(settings({ messageFooter: '' })),
    );
    expect(received.map((r) => [r.mail.subject, r.mail.text])).toEqual([
      ['Event mail for Ada', 'Plain body\n\nStop these mails: https://cairn.example/u/p1-email-offers (Ada)\n'],
      ['No footer', 'Only this\n'],
    ]);
  });

  it('keeps a line break in the subject out of the headers, and fails an empty body without sending', async () => {
    const outcomes = await sendBatch(
      email,
      [
        messageItem({ subject: 'Hi\r\nBcc: evil@example.test', body: 'x' }, 'k1'),
        messageItem({ subject: 'Empty', body: '  \n' }, 'k2'),
      ],
      contextFor(settings()),
    );
    expect(outcomes).toEqual([
      { status: 'delivered', detail: expect.any(String) },
      { status: 'failed', error: 'message body is empty' },
    ]);
    expect(received).toHaveLength(1);
    expect(received[0]!.to).toEqual(['ada@example.test']);
    expect(received[0]!.mail.subject).toBe('Hi Bcc: evil@example.test');
    expect(received[0]!.mail.headerLines.some((h) => h.key === 'bcc')).toBe(false);
  });

  it("sends a tracked message's HTML form beside the text, the footer after it with a plain unsubscribe link", async () => {
    const html =
      '<p>Shop: <a href="https://cairn.example/t/c/tok">https://shop.test/</a></p>\n<img src="https://cairn.example/t/o/px.gif">';
    await sendBatch(
      email,
      [messageItem({ subject: 'Tracked', body: 'Shop: https://cairn.example/t/c/tok', html })],
      contextFor(settings({ messageFooter: 'Stop <these>: {{unsubscribe_url}}' })),
    );
    const { mail } = received[0]!;
    expect(mail.text?.trimEnd()).toBe(
      'Shop: https://cairn.example/t/c/tok\n\nStop <these>: https://cairn.example/u/p1-email-offers',
    );
    expect(mail.html).toBe(
      `${html}\n<p>Stop &lt;these&gt;: <a href="https://cairn.example/u/p1-email-offers">https://cairn.example/u/p1-email-offers</a></p>`,
    );
  });

  it('sends events with the destination templates as before', async () => {
    const item = {
      ...messageItem({ body: 'unused' }),
      message: undefined,
      event: { type: 'track', event: 'Plan Changed', messageId: 'm1', timestamp: '2026-03-02T09:00:00.000Z' },
    };
    await sendBatch(email, [item], contextFor(settings()));
    expect(received[0]!.mail.subject).toBe('Event mail for Ada');
    expect(received[0]!.mail.text).toBe('Event text Plan Changed');
    expect(received[0]!.mail.html).toBe('<p>Event html</p>');
  });
});
