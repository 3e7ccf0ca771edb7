import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DeliveryProfile, PluginSettingsError, runPlugin } from '@cairn/plugin-api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import slack, { escapeMrkdwn } from './index.ts';

interface Received {
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

// What Slack answers: the status, the plain-text body, and Retry-After on 429.
const SLACK_ANSWERS: Record<number, string> = {
  200: 'ok',
  400: 'invalid_payload',
  403: 'invalid_token',
  404: 'no_service',
  410: 'channel_is_archived',
  429: 'rate_limited',
  500: 'rollup_error',
};

const profile: DeliveryProfile = {
  id: 'p1',
  userId: 'u1',
  email: 'ada@example.test',
  phone: null,
  anonymousIds: [],
  traits: { first_name: 'Ada', company: 'Analytical Engines' },
};

describe('slack plugin against a local receiver that answers like Slack', () => {
  let server: Server;
  let webhookUrl: string;
  const received: Received[] = [];
  let answers: number[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(body) });
        const status = answers.shift() ?? 200;
        if (status === 429) res.setHeader('retry-after', '30');
        res.writeHead(status, { 'content-type': 'text/plain' }).end(SLACK_ANSWERS[status] ?? 'error');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    webhookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T000/B000/XXXX`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    received.length = 0;
    answers = [];
  });

  const settings = () => ({
    webhookUrl,
    text: ':tada: *{{first_name}}* from {{company | an unknown company}} did {{event.event}} <https://crm.example/p/{{profile.id}}|open>',
  });

  it('posts the rendered text as JSON, with the overrides when set', async () => {
    const { outcomes } = await runPlugin(
      slack,
      { ...settings(), channel: '#growth', username: 'Cairn', iconEmoji: ':bell:' },
      [{ type: 'track', event: 'Signed Up' }],
      { profile },
    );
    expect(outcomes).toEqual([{ status: 'delivered' }]);
    expect(received[0]!.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(received[0]!.body).toEqual({
      text: ':tada: *Ada* from Analytical Engines did Signed Up <https://crm.example/p/p1|open>',
      channel: '#growth',
      username: 'Cairn',
      icon_emoji: ':bell:',
    });
  });

  it('escapes &, < and > in variables so a trait cannot mention everyone or forge a link', async () => {
    const traits = { first_name: '<!channel>', company: 'Smith & Sons <https://evil.example|bank>' };
    await runPlugin(slack, settings(), [{ event: 'Signed Up' }], { profile: { ...profile, traits } });
    expect(received[0]!.body.text).toBe(
      ':tada: *&lt;!channel&gt;* from Smith &amp; Sons &lt;https://evil.example|bank&gt; did Signed Up ' +
        '<https://crm.example/p/p1|open>',
    );
    expect(escapeMrkdwn('a&b<c>d')).toBe('a&amp;b&lt;c&gt;d');
  });

  it('renders missing variables empty and works for events without a profile', async () => {
    const { outcomes } = await runPlugin(slack, { webhookUrl, text: 'Anonymous {{event.event}} [{{email}}]' }, [
      { event: 'Viewed Pricing' },
    ]);
    expect(outcomes).toEqual([{ status: 'delivered' }]);
    expect(received[0]!.body.text).toBe('Anonymous Viewed Pricing []');
  });

  it('on 429 waits as Slack asks and holds back the rest of the batch', async () => {
    answers = [200, 429];
    const { outcomes } = await runPlugin(slack, settings(), [{}, {}, {}], { profile });
    expect(outcomes).toEqual([
      { status: 'delivered' },
      { status: 'retry', error: 'HTTP 429: rate_limited', retryAfter: 30, statusCode: 429 },
      { status: 'retry', error: 'not sent: HTTP 429: rate_limited', retryAfter: 30, statusCode: 429 },
    ]);
    expect(received).toHaveLength(2);
  });

  it('retries 5xx, fails one message on 400 and the whole batch on a dead webhook', async () => {
    answers = [500];
    expect((await runPlugin(slack, settings(), [{}], { profile })).outcomes).toEqual([
      { status: 'retry', error: 'HTTP 500: rollup_error', statusCode: 500 },
    ]);
    answers = [400, 200];
    expect((await runPlugin(slack, settings(), [{}, {}], { profile })).outcomes).toEqual([
      { status: 'failed', error: 'HTTP 400: invalid_payload', statusCode: 400 },
      { status: 'delivered' },
    ]);
    for (const status of [403, 404, 410]) {
      answers = [status];
      received.length = 0;
      const { outcomes } = await runPlugin(slack, settings(), [{}, {}], { profile });
      expect(outcomes).toEqual([
        { status: 'failed', error: `HTTP ${status}: ${SLACK_ANSWERS[status]}`, statusCode: status },
        { status: 'failed', error: `not sent: HTTP ${status}: ${SLACK_ANSWERS[status]}`, statusCode: status },
      ]);
      expect(received).toHaveLength(1);
    }
  });

  it('fails a message that renders empty without posting it', async () => {
    const { outcomes } = await runPlugin(slack, { webhookUrl, text: '{{nothing}}' }, [{}], { profile });
    expect(outcomes).toEqual([{ status: 'failed', error: 'text rendered empty' }]);
    expect(received).toHaveLength(0);
  });

  it('retries when Slack cannot be reached', async () => {
    const { outcomes } = await runPlugin(slack, { ...settings(), webhookUrl: 'http://127.0.0.1:1/x' }, [{}, {}]);
    expect(outcomes.map((o) => o.status)).toEqual(['retry', 'retry']);
    expect(outcomes[0]).toMatchObject({ error: expect.stringContaining('request failed') });
  });

  it('refuses bad settings with the field named', async () => {
    await expect(runPlugin(slack, { webhookUrl: 'not a url', text: 'x' }, [])).rejects.toThrow(PluginSettingsError);
    await expect(runPlugin(slack, { webhookUrl, text: '' }, [])).rejects.toThrow(/text/);
  });
});
