import { type DeliveryProfile, PluginSettingsError, runPlugin } from '@cairn/plugin-api';
import { type Receiver, type ScriptedAnswer, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import slack, { escapeMrkdwn } from './index.ts';

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
const slackAnswer = (status: number): ScriptedAnswer => ({
  status,
  headers: { 'content-type': 'text/plain', ...(status === 429 ? { 'retry-after': '30' } : {}) },
  body: SLACK_ANSWERS[status] ?? 'error',
});

const profile: DeliveryProfile = {
  id: 'p1',
  userId: 'u1',
  email: 'ada@example.test',
  phone: null,
  anonymousIds: [],
  traits: { first_name: 'Ada', company: 'Analytical Engines' },
};

describe('slack plugin against a local receiver that answers like Slack', () => {
  let slackHook: Receiver;
  let webhookUrl: string;
  const received = () => slackHook.requests;

  beforeAll(async () => {
    slackHook = await startReceiver({ answer: slackAnswer(200), path: '/services/T000/B000/XXXX' });
    webhookUrl = slackHook.url;
  });
  afterAll(() => slackHook.close());
  beforeEach(() => slackHook.reset());

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
    expect(received()[0]!.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(received()[0]!.body).toEqual({
      text: ':tada: *Ada* from Analytical Engines did Signed Up <https://crm.example/p/p1|open>',
      channel: '#growth',
      username: 'Cairn',
      icon_emoji: ':bell:',
    });
  });

  it('escapes &, < and > in variables so a trait cannot mention everyone or forge a link', async () => {
    const traits = { first_name: '<!channel>', company: 'Smith & Sons <https://evil.example|bank>' };
    await runPlugin(slack, settings(), [{ event: 'Signed Up' }], { profile: { ...profile, traits } });
    expect(received()[0]!.body.text).toBe(
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
    expect(received()[0]!.body.text).toBe('Anonymous Viewed Pricing []');
  });

  it('on 429 waits as Slack asks and holds back the rest of the batch', async () => {
    slackHook.queue(slackAnswer(200), slackAnswer(429));
    const { outcomes } = await runPlugin(slack, settings(), [{}, {}, {}], { profile });
    expect(outcomes).toEqual([
      { status: 'delivered' },
      { status: 'retry', error: 'HTTP 429: rate_limited', retryAfter: 30, statusCode: 429 },
      { status: 'retry', error: 'not sent: HTTP 429: rate_limited', retryAfter: 30, statusCode: 429 },
    ]);
    expect(received()).toHaveLength(2);
  });

  it('retries 5xx, fails one message on 400 and the whole batch on a dead webhook', async () => {
    slackHook.queue(slackAnswer(500));
    expect((await runPlugin(slack, settings(), [{}], { profile })).outcomes).toEqual([
      { status: 'retry', error: 'HTTP 500: rollup_error', statusCode: 500 },
    ]);
    slackHook.queue(slackAnswer(400), slackAnswer(200));
    expect((await runPlugin(slack, settings(), [{}, {}], { profile })).outcomes).toEqual([
      { status: 'failed', error: 'HTTP 400: invalid_payload', statusCode: 400 },
      { status: 'delivered' },
    ]);
    for (const status of [403, 404, 410]) {
      slackHook.reset();
      slackHook.queue(slackAnswer(status));
      const { outcomes } = await runPlugin(slack, settings(), [{}, {}], { profile });
      expect(outcomes).toEqual([
        { status: 'failed', error: `HTTP ${status}: ${SLACK_ANSWERS[status]}`, statusCode: status },
        { status: 'failed', error: `not sent: HTTP ${status}: ${SLACK_ANSWERS[status]}`, statusCode: status },
      ]);
      expect(received()).toHaveLength(1);
    }
  });

  it('fails a message that renders empty without posting it', async () => {
    const { outcomes } = await runPlugin(slack, { webhookUrl, text: '{{nothing}}' }, [{}], { profile });
    expect(outcomes).toEqual([{ status: 'failed', error: 'text rendered empty' }]);
    expect(received()).toHaveLength(0);
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
