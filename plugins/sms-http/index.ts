import {
  checkResponse,
  type DeliveryItem,
  definePlugin,
  itemScope,
  type PluginContext,
  render,
  type Scope,
} from '@cairn/plugin-api';
import { z } from 'zod';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
const json: z.ZodType<Json> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(json), z.record(z.string(), json)]),
);
const headerName = z.string().regex(/^[A-Za-z0-9-]+$/, 'not a header name');
// A line break would make fetch throw on every attempt, which would look like a network error.
const headerValue = z.string().regex(/^[^\r\n]*$/, 'must be on one line');

const settings = z
  .object({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
    method: z.enum(['POST', 'PUT', 'PATCH', 'GET']).default('POST'),
    /** `json`: the body is sent as JSON; `form`: as `application/x-www-form-urlencoded` (GET: the query). */
    format: z.enum(['json', 'form']).default('json'),
    /** The request body; every string in it is a template (`{{phone}}`, `{{text}}`, `{{trait.x}}`, …). */
    body: z.record(z.string(), json),
    /** The message text template, available to the body as `{{text}}`; a flow's message sends its body instead. */
    text: z.string().min(1),
    headers: z.record(headerName, headerValue).default({}),
    /** Headers holding credentials (`Authorization`, `X-Api-Key`): masked when read back. */
    secretHeaders: z.record(headerName, headerValue).default({}),
    /** Carries the idempotency key (the same on every retry); empty to send none. */
    idempotencyHeader: z.union([headerName, z.literal('')]).default('Idempotency-Key'),
    /** Unsubscribe topic for `{{unsubscribe_url}}`: match the destination's topic. */
    topic: z.string().min(1).optional(),
    timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
  })
  .refine((s) => s.format === 'json' || Object.values(s.body).every((v) => v === null || typeof v !== 'object'), {
    message: 'a form (or GET) body must be flat: strings, numbers and booleans only',
    path: ['body'],
  })
  .refine((s) => s.method !== 'GET' || s.format === 'form', {
    message: 'GET sends the body as the query: use format "form"',
    path: ['format'],
  });

type Settings = z.infer<typeof settings>;

// E.164: "+", a country code that does not start with 0, at most 15 digits in all.
const E164 = /^\+[1-9]\d{6,14}$/;

/**
 * The profile's phone in E.164, or undefined. Spaces, dashes, dots and parentheses are dropped;
 * nothing is guessed (a number without "+" and its country code is refused).
 *
 * @example
 * e164('+49 (151) 123-45678'); // '+4915112345678'
 * e164('0151 12345678'); // undefined
 */
export function e164(phone: string | null | undefined): string | undefined {
  const compact = phone?.replace(/[\s().-]/g, '');
  return compact && E164.test(compact) ? compact : undefined;
}

/**
 * Renders every string of a JSON value as a template; numbers, booleans and null stay as they are.
 * Values land in a structure that is serialized afterwards, so no escaping is needed.
 *
 * @example
 * renderBody({ to: ['{{phone}}'], body: '{{text}}' }, scope); // { to: ['+15550100'], body: 'Hi Ada' }
 */
export function renderBody(value: Json, scope: Scope): Json {
  if (typeof value === 'string') return render(value, scope);
  if (Array.isArray(value)) return value.map((v) => renderBody(v, scope));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderBody(v, scope)]));
  }
  return value;
}

/**
 * The request for one item, or why it cannot be sent.
 *
 * @example
 * const r = request(item, ctx); if ('failed' in r) return { status: 'failed', error: r.failed };
 */
export function request(
  item: DeliveryItem,
  ctx: PluginContext<Settings>,
): { url: string; init: RequestInit } | { failed: string } {
  const s = ctx.settings;
  const profile = item.profile;
  if (!profile?.phone) return { failed: 'profile has no phone number' };
  const phone = e164(profile.phone);
  if (!phone) return { failed: `profile phone is not in E.164 form (+<country><number>): ${profile.phone}` };
  const base = itemScope(item, {
    phone,
    unsubscribe_url: ctx.unsubscribeUrl(profile, 'sms', s.topic),
    idempotency_key: item.idempotencyKey,
  });
  // A flow's message comes rendered: its body is the text (the `text` template is for events).
  const text = (item.message ? item.message.body : render(s.text, base)).trim();
  if (!text) return { failed: item.message ? 'message body is empty' : 'text rendered empty' };
  const body = renderBody(s.body, { ...base, text }) as Record<string, Json>;
  const headers: Record<string, string> = {
    'user-agent': 'Cairn-SMS/0.1',
    ...(s.method === 'GET'
      ? {}
      : { 'content-type': s.format === 'json' ? 'application/json' : 'application/x-www-form-urlencoded' }),
    ...s.headers,
    ...s.secretHeaders,
    ...(s.idempotencyHeader ? { [s.idempotencyHeader]: item.idempotencyKey } : {}),
  };
  const form = () =>
    new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, v === null ? '' : String(v)]));
  if (s.method === 'GET') {
    const url = new URL(s.url);
    for (const [k, v] of form()) url.searchParams.append(k, v);
    return { url: url.toString(), init: { method: 'GET', headers } };
  }
  return {
    url: s.url,
    init: { method: s.method, headers, body: s.format === 'json' ? JSON.stringify(body) : form().toString() },
  };
}

export default definePlugin({
  name: 'sms-http',
  version: '0.1.0',
  description: "Sends a templated SMS through any SMS provider's HTTP API (JSON or form request).",
  settings,
  purposes: ['marketing'],
  channel: 'sms',
  accepts: ['track', 'identify', 'audience.entered', 'tag.added'],
  batchSize: 20,
  secrets: ['secretHeaders'],
  // The framework runs the loop (sendEach). 400, 409, 413 and 422 speak about one message (bad
  // number, text refused); any other failure — credentials, rate limit, provider down — would meet the
  // rest of the batch too, so it stops there (isSystemic's default rule).
  async sendOne(item, ctx) {
    const req = request(item, ctx);
    if ('failed' in req) return { status: 'failed', error: req.failed };
    const res = await ctx.fetch(req.url, { ...req.init, timeoutMs: ctx.settings.timeoutMs });
    await checkResponse(res);
    // The provider's answer usually carries its message id: keep the start of it for tracing.
    const answer = (await res.text().catch(() => '')).replace(/\s+/g, ' ').trim();
    return { status: 'delivered', ...(answer ? { detail: answer.slice(0, 200) } : {}) };
  },
});
