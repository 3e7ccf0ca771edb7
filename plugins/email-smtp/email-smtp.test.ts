import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  createPluginFetch,
  type DeliveryItem,
  type DeliveryProfile,
  PluginSettingsError,
  runPlugin,
  sendBatch,
} from '@cairn/plugin-api';
import { dkimVerify } from 'mailauth';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import email, { messageIdFor, sessionFailed, smtpOutcome } from './index.ts';

interface Received {
  raw: Buffer;
  from: string;
  to: string[];
  user: string | undefined;
  mail: ParsedMail;
}

const refusal = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

const profile = (over: Partial<DeliveryProfile> = {}): DeliveryProfile => ({
  id: 'p1',
  userId: 'u1',
  email: 'ada@example.test',
  phone: null,
  anonymousIds: [],
  traits: { first_name: 'Ada', plan: 'pro' },
  ...over,
});

describe('email-smtp plugin against a real SMTP server', () => {
  let server: SMTPServer;
  let port: number;
  const received: Received[] = [];
  /** Replies to RCPT TO by recipient, and to the end of DATA by recipient (default: accept). */
  const rcptReply = new Map<string, [number, string]>();
  const dataReply = new Map<string, [number, string]>();
  let connections = 0;

  beforeAll(async () => {
    server = new SMTPServer({
      // Plain SMTP on loopback: STARTTLS off so the test needs no certificate.
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      logger: false,
      onConnect(_session, cb) {
        connections++;
        cb();
      },
      onAuth(auth, _session, cb) {
        if (auth.username === 'mailer' && auth.password === 'hunter2-secret') return cb(null, { user: auth.username });
        cb(refusal(535, 'Authentication credentials invalid'));
      },
      onRcptTo(address, _session, cb) {
        const reply = rcptReply.get(address.address);
        cb(reply ? refusal(...reply) : null);
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', async () => {
          const to = session.envelope.rcptTo.map((r) => r.address);
          const reply = dataReply.get(to[0]!);
          if (reply) return cb(refusal(...reply));
          const raw = Buffer.concat(chunks);
          const mail = await simpleParser(raw);
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          received.push({ raw, from, to, user: session.user as string | undefined, mail });
          cb(null, 'queued as Q1');
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    received.length = 0;
    rcptReply.clear();
    dataReply.clear();
    connections = 0;
  });

  const base = () => ({
    host: '127.0.0.1',
    port,
    user: 'mailer',
    pass: 'hunter2-secret',
    from: '"Acme News" <news@acme.example>',
    subject: 'Hi {{first_name}}, your {{event.properties.plan}} plan',
    text: 'Hello {{first_name | there}} ({{missing}}). Unsubscribe: {{unsubscribe_url}}',
    html: '<p>Hello {{first_name}}</p><p>{{event.properties.note}}</p><a href="{{unsubscribe_url}}">Unsubscribe</a>',
    timeoutMs: 5000,
  });

  it('sends the rendered message with one-click unsubscribe and idempotency headers', async () => {
    const { outcomes, items } = await runPlugin(
      email,
      base(),
      [{ type: 'track', event: 'Plan Changed', messageId: 'm1', properties: { plan: 'team', note: 'Thanks!' } }],
      { profile: profile() },
    );
    expect(outcomes).toEqual([{ status: 'delivered', detail: expect.stringContaining('queued as Q1') }]);
    expect(received).toHaveLength(1);
    const { mail, to, from, user } = received[0]!;
    expect(user).toBe('mailer');
    expect(from).toBe('news@acme.example');
    expect(to).toEqual(['ada@example.test']);
    expect(mail.subject).toBe('Hi Ada, your team plan');
    expect(mail.text?.trim()).toBe('Hello Ada (). Unsubscribe: http://localhost/u/test-p1-email');
    expect(mail.html).toContain('<p>Hello Ada</p><p>Thanks!</p><a href="http://localhost/u/test-p1-email">');
    const headers = mail.headerLines.map((h) => h.line);
    expect(headers).toContain('List-Unsubscribe: <http://localhost/u/test-p1-email>');
    expect(headers).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(headers).toContain(`X-Cairn-Idempotency-Key: ${items[0]!.idempotencyKey}`);
    expect(mail.messageId).toBe(messageIdFor('m1:test', 'acme.example'));
  });

  it('keeps the Message-ID stable across attempts, so a receiver can drop a resend', async () => {
    const event = { type: 'identify', messageId: 'same-message' };
    await runPlugin(email, base(), [event], { profile: profile() });
    await runPlugin(email, base(), [event], { profile: profile() });
    expect(received.map((r) => r.mail.messageId)).toEqual([
      messageIdFor('same-message:test', 'acme.example'),
      messageIdFor('same-message:test', 'acme.example'),
    ]);
  });

  it('escapes variables in HTML but not the template, and keeps header variables on one line', async () => {
    const traits = { first_name: '<script>alert("x")</script>', last: 'O\'Brien & "Co"\r\nBcc: evil@x.test' };
    const { outcomes } = await runPlugin(
      email,
      {
        ...base(),
        subject: 'For {{last}}',
        text: 'Hi {{first_name}}',
        html: '<b>{{first_name}}</b> <i title="{{last}}">{{nope | friend}}</i> <a href="{{unsubscribe_url}}">x</a>',
      },
      [{}],
      { profile: profile({ traits }), unsubscribeUrl: () => 'https://acme.example/u?t=a&s=b' },
    );
    expect(outcomes[0]!.status).toBe('delivered');
    const { mail } = received[0]!;
    expect(mail.html).toBe(
      '<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</b> ' +
        '<i title="O&#39;Brien &amp; &quot;Co&quot;\nBcc: evil@x.test">friend</i> ' +
        '<a href="https://acme.example/u?t=a&amp;s=b">x</a>',
    );
    expect(mail.text?.trim()).toBe('Hi <script>alert("x")</script>');
    expect(mail.subject).toBe('For O\'Brien & "Co" Bcc: evil@x.test');
    expect(mail.bcc).toBeUndefined();
    expect(headerLine(mail, 'list-unsubscribe')).toBe('List-Unsubscribe: <https://acme.example/u?t=a&s=b>');
  });

  it('puts the unsubscribe topic in the URL, and keeps a long signed URL whole', async () => {
    await runPlugin(email, { ...base(), topic: 'newsletter' }, [{}], { profile: profile() });
    expect(headerLine(received[0]!.mail, 'list-unsubscribe')).toBe(
      'List-Unsubscribe: <http://localhost/u/test-p1-email-newsletter>',
    );
    const long = `https://cairn.example/u/${'eyJwIjoicDEifQ'.repeat(20)}?sig=${'f'.repeat(64)}`;
    await runPlugin(email, base(), [{}], { profile: profile(), unsubscribeUrl: () => long });
    // Folding before the "<" is legal and unfolds to the same value; the URL itself is never split.
    expect(headerLine(received[1]!.mail, 'list-unsubscribe').replace(/\r?\n\s+/g, ' ')).toBe(
      `List-Unsubscribe: <${long}>`,
    );
  });

  it('retries 4xx replies, dead-letters 5xx ones, and still sends the rest of the batch', async () => {
    rcptReply.set('busy@example.test', [451, '4.3.0 Try again later']);
    rcptReply.set('gone@example.test', [550, '5.1.1 No such user']);
    dataReply.set('spam@example.test', [554, '5.7.1 Message rejected as spam']);
    dataReply.set('slow@example.test', [452, '4.3.1 Insufficient storage']);
    const who = ['busy', 'gone', 'ok', 'spam', 'slow'];
    const outcomes = [];
    for (const name of who) {
      const r = await runPlugin(email, base(), [{}], { profile: profile({ email: `${name}@example.test` }) });
      outcomes.push(r.outcomes[0]);
    }
    expect(outcomes).toEqual([
      { status: 'retry', error: expect.stringContaining('451 4.3.0 Try again later'), statusCode: 451 },
      { status: 'failed', error: expect.stringContaining('550 5.1.1 No such user'), statusCode: 550 },
      { status: 'delivered', detail: expect.any(String) },
      { status: 'failed', error: expect.stringContaining('554 5.7.1'), statusCode: 554 },
      { status: 'retry', error: expect.stringContaining('452 4.3.1'), statusCode: 452 },
    ]);
    expect(received.map((r) => r.to[0])).toEqual(['ok@example.test']);
  });

  it('sends a whole batch over one connection and reports each item on its own', async () => {
    rcptReply.set('gone@example.test', [550, '5.1.1 No such user']);
    const profiles = ['a', 'gone', 'b'].map((n) => profile({ id: n, email: `${n}@example.test` }));
    // runPlugin gives every event the same profile, so call send with per-item profiles directly.
    const { items } = await runPlugin(email, base(), [{}, {}, {}], { profile: profiles[0]! });
    received.length = 0;
    connections = 0;
    const r = await runBatch(
      base(),
      items.map((it, i) => ({ ...it, profile: profiles[i]! })),
    );
    expect(r.map((o) => o.status)).toEqual(['delivered', 'failed', 'delivered']);
    expect(received.map((m) => m.to[0])).toEqual(['a@example.test', 'b@example.test']);
    expect(connections).toBe(1);
  });

  it('fails items it cannot address without contacting the server', async () => {
    const none = await runPlugin(email, base(), [{}], { profile: profile({ email: null }) });
    expect(none.outcomes).toEqual([{ status: 'failed', error: 'profile has no email address' }]);
    const anonymous = await runPlugin(email, base(), [{}]);
    expect(anonymous.outcomes[0]!.status).toBe('failed');
    const two = await runPlugin(email, base(), [{}], { profile: profile({ email: 'a@x.test, victim@y.test' }) });
    expect(two.outcomes[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('single plain address') });
    expect(connections).toBe(0);
  });

  it('dead-letters the batch on refused credentials, trying them once', async () => {
    const r = await runPlugin(email, { ...base(), pass: 'wrong-password' }, [{}, {}], { profile: profile() });
    expect(r.outcomes).toEqual([
      { status: 'failed', error: expect.stringContaining('535'), statusCode: 535 },
      { status: 'failed', error: expect.stringContaining('not sent: '), statusCode: 535 },
    ]);
    expect(connections).toBe(1);
  });

  it('retries the whole batch when the server cannot be reached', async () => {
    const closed = new SMTPServer({ logger: false });
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.server.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await runPlugin(email, { ...base(), port: deadPort }, [{}, {}], { profile: profile() });
    expect(r.outcomes).toEqual([
      { status: 'retry', error: expect.stringMatching(/ECONNREFUSED|connect/i) },
      { status: 'retry', error: expect.stringContaining('not sent: ') },
    ]);
  });

  it('maps nodemailer errors to a decision for the message and, if need be, the rest of the batch', () => {
    const error = (props: Record<string, unknown>) => Object.assign(new Error('x'), props);
    const cases = [
      [{ code: 'ESOCKET', originalCode: 'ECONNRESET' }, 'retry', true],
      [{ code: 'ETIMEDOUT' }, 'retry', true],
      [{ code: 'EAUTH', responseCode: 535 }, 'failed', true],
      [{ code: 'EAUTH', responseCode: 454 }, 'retry', true],
      [{ code: 'ENOAUTH' }, 'failed', true],
      [{ code: 'EENVELOPE', responseCode: 421 }, 'retry', true],
      [{ code: 'EENVELOPE' }, 'failed', false],
      [{ code: 'EENVELOPE', responseCode: 503 }, 'retry', false],
      [{ code: 'EMESSAGE', responseCode: 552, permanent: true }, 'failed', false],
    ] as const;
    for (const [props, status, session] of cases) {
      expect([props, smtpOutcome(error(props)).status, sessionFailed(error(props))]).toEqual([props, status, session]);
    }
  });

  it('DKIM-signs both unsubscribe headers, with a signature that verifies', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const settings = {
      ...base(),
      dkimDomain: 'acme.example',
      dkimSelector: 'cairn',
      dkimPrivateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    await runPlugin(email, settings, [{}], { profile: profile() });
    // The DNS record a receiver would look up, served by a resolver of the test's own.
    const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
    const resolver = async (name: string, type: string) => {
      if (name === 'cairn._domainkey.acme.example' && type === 'TXT') return [[record]];
      throw Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' });
    };
    const { results } = await dkimVerify(received[0]!.raw, { resolver });
    expect(results).toHaveLength(1);
    expect(results[0]!.status.result).toBe('pass');
    expect(results[0]!.signingDomain).toBe('acme.example');
    const signed = results[0]!.signingHeaders!.keys.toLowerCase().split(': ').join(':').split(':');
    expect(signed).toEqual(expect.arrayContaining(['list-unsubscribe', 'list-unsubscribe-post', 'message-id', 'from']));
  });

  it('refuses incomplete settings with the field named', async () => {
    const { text: _t, html: _h, ...noBody } = base();
    await expect(runPlugin(email, noBody, [])).rejects.toThrow(/text: set text, html or both/);
    await expect(runPlugin(email, { ...base(), pass: undefined }, [])).rejects.toThrow(/pass: set user and pass/);
    await expect(runPlugin(email, { ...base(), from: 'nobody' }, [])).rejects.toThrow(PluginSettingsError);
    await expect(runPlugin(email, { ...base(), dkimDomain: 'acme.example' }, [])).rejects.toThrow(/dkimDomain/);
  });
});

function headerLine(mail: ParsedMail, key: string): string {
  return mail.headerLines.find((h) => h.key === key)?.line ?? '';
}

// Calls send() with items whose profiles differ, through the same mapping the server uses.
function runBatch(settings: Record<string, unknown>, items: DeliveryItem[]) {
  const controller = new AbortController();
  const logs: unknown[] = [];
  const log = (message: string) => void logs.push(message);
  return sendBatch(email, items, {
    settings: email.settings.parse(settings),
    destination: { id: 'test', name: 'email (test)' },
    fetch: createPluginFetch(controller.signal),
    log: { info: log, warn: log, error: log },
    kv: { get: async () => undefined, set: async () => {}, delete: async () => {} },
    unsubscribeUrl: (p, channel) => `http://localhost/u/test-${p.id}-${channel}`,
    now: () => new Date(),
    signal: controller.signal,
  });
}
