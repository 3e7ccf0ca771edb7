import {
  checkResponse,
  type DeliveryItem,
  definePlugin,
  itemScope,
  type PluginContext,
  render,
} from '@cairn/plugin-api';
import { z } from 'zod';

const settings = z.object({
  /** `https://hooks.slack.com/services/…`; the URL is the credential, so it is a secret. */
  webhookUrl: z
    .string()
    .url()
    .refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
  /** mrkdwn template; variables are escaped, the template's own `<url|links>` and `*bold*` are not. */
  text: z.string().min(1),
  /** Overrides for legacy webhooks; webhooks of a Slack app post as the app to their own channel. */
  channel: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  iconEmoji: z.string().min(1).optional(),
  timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
});

type Settings = z.infer<typeof settings>;

/**
 * Escapes text for Slack mrkdwn: `&`, `<` and `>` are the only characters Slack reads as control
 * characters (links, `<!channel>` mentions), so a trait can neither ping everyone nor forge a link.
 *
 * @example
 * escapeMrkdwn('<!channel> & co'); // '&lt;!channel&gt; &amp; co'
 */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The JSON body Slack receives for one item.
 *
 * @example
 * const body = message(item, ctx.settings); // { text: 'New signup: ada@example.test' }
 */
export function message(item: DeliveryItem, s: Settings): Record<string, string> {
  // A flow's message comes rendered (escaped whole: it may hold the person's values); a notice to an
  // employee goes to their chat handle (a legacy webhook's channel override: @user or #channel).
  const m = item.message;
  const text = m
    ? [m.subject ? `*${escapeMrkdwn(m.subject)}*` : '', escapeMrkdwn(m.body)].filter(Boolean).join('\n')
    : render(s.text, itemScope(item), escapeMrkdwn);
  const channel = m?.to?.chatHandle ?? s.channel;
  return {
    text,
    ...(channel ? { channel } : {}),
    ...(s.username ? { username: s.username } : {}),
    ...(s.iconEmoji ? { icon_emoji: s.iconEmoji } : {}),
  };
}

function post(body: Record<string, string>, ctx: PluginContext<Settings>): Promise<Response> {
  return ctx.fetch(ctx.settings.webhookUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Cairn-Slack/0.1' },
    body: JSON.stringify(body),
    timeoutMs: ctx.settings.timeoutMs,
  });
}

export default definePlugin({
  name: 'slack',
  version: '0.1.0',
  description: 'Posts a templated message to a Slack channel (incoming webhook) for each event.',
  settings,
  // The person is the subject of the message, not its reader: their data goes to a third party
  // (Slack), which needs the same consent as any analytics destination.
  purposes: ['analytics'],
  channel: 'chat',
  accepts: ['track', 'identify', 'audience.entered', 'audience.exited', 'tag.added', 'tag.removed'],
  batchSize: 20,
  secrets: ['webhookUrl'],
  // The framework runs the loop (sendEach): a 400 (invalid_payload, no_text) is about this message; any
  // other failure — rate limit, Slack down, a revoked webhook (403/404/410), no connection — would meet
  // the rest of the batch too, so it stops there (isSystemic's default rule).
  async sendOne(item, ctx) {
    const body = message(item, ctx.settings);
    if (!body.text!.trim()) return { status: 'failed', error: 'text rendered empty' };
    const res = await post(body, ctx);
    await checkResponse(res);
    await res.text().catch(() => ''); // "ok"; read so the connection is free for the next message
    return undefined;
  },
});
