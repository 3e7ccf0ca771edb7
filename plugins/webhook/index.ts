import { createHmac } from 'node:crypto';
import {
  ACCEPTED_EVENTS,
  checkResponse,
  type DeliveryItem,
  definePlugin,
  PermanentError,
  sendEach,
} from '@cairn/plugin-api';
import { z } from 'zod';

const settings = z.object({
  url: z
    .string()
    .url()
    .refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
  /** Signs each request: `Cairn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
  secret: z.string().min(16, 'use at least 16 characters').optional(),
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'not a header name'), z.string()).default({}),
  /** `single`: one event per request (Idempotency-Key header); `batch`: up to `batchSize` per request. */
  mode: z.enum(['single', 'batch']).default('single'),
  /** POST erasure notices (right to be forgotten) to the same URL as `{ "type": "erasure", ... }`. */
  forwardErasures: z.boolean().default(true),
  timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
  /**
   * Requests in flight at once per batch in `single` mode (different profiles; one profile's events
   * stay in order); a destination sends `concurrency` batches at once. The earlier default, 8, held a
   * destination to 16 requests in flight and fell behind 1,000 events/s in bench:deliver.
   */
  parallel: z.number().int().min(1).max(64).default(32),
});

/**
 * The signature header value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
 * Receivers recompute it and reject old timestamps (replay protection).
 *
 * @example
 * sign('s3cret-s3cret-s3cret', '{"a":1}', 1767225600); // 't=1767225600,v1=…'
 */
export function sign(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** Input of the `post` action: the JSON to post, and a path appended to the destination's URL. */
const postInput = z.object({
  body: z.record(z.string(), z.unknown()).default({}),
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9\-._~/%?=&]*$/, 'a path starting with /')
    .optional(),
});

function envelope(item: DeliveryItem) {
  const base = { idempotencyKey: item.idempotencyKey, attempt: item.attempt, event: item.event, profile: item.profile };
  // A flow's message rides along as rendered: the receiver sends or shows it as it is.
  return item.message ? { ...base, message: item.message } : base;
}

export default definePlugin({
  name: 'webhook',
  version: '0.1.0',
  description: 'POSTs events as JSON to a URL, signed with HMAC-SHA256, one per request or in batches.',
  settings,
  purposes: ['analytics'],
  channel: 'webhook',
  accepts: ACCEPTED_EVENTS,
  batchSize: 100,
  ordering: 'profile',
  secrets: ['secret'],
  async forget(request, ctx) {
    const { url, secret, headers, timeoutMs, forwardErasures } = ctx.settings;
    if (!forwardErasures) return;
    const body = JSON.stringify({ type: 'erasure', ...request });
    const signature = secret ? { 'cairn-signature': sign(secret, body, Math.floor(ctx.now().getTime() / 1000)) } : {};
    const res = await ctx.fetch(url, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': 'application/json',
        'user-agent': 'Cairn-Webhook/0.1',
        'idempotency-key': `erasure:${request.erasureId}`,
        ...signature,
      },
      body,
      timeoutMs,
    });
    await checkResponse(res);
  },
  actions: {
    // A flow asks a service for something and keeps its answer (a coupon issued, a ticket opened): the
    // JSON posted with the call's idempotency key, signed like deliveries, and the JSON response returned.
    post: {
      description: 'POSTs a JSON body to the URL (plus an optional path) and returns the JSON response.',
      input: postInput,
      async run(input: z.infer<typeof postInput>, ctx) {
        const { url, secret, headers, timeoutMs } = ctx.settings;
        const body = JSON.stringify(input.body);
        const signature = secret
          ? { 'cairn-signature': sign(secret, body, Math.floor(ctx.now().getTime() / 1000)) }
          : {};
        const target = input.path ? `${url.replace(/\/+$/, '')}${input.path}` : url;
        const res = await ctx.fetch(target, {
          method: 'POST',
          headers: {
            ...headers,
            'content-type': 'application/json',
            'user-agent': 'Cairn-Webhook/0.1',
            'idempotency-key': ctx.idempotencyKey,
            ...signature,
          },
          body,
          timeoutMs,
        });
        await checkResponse(res);
        const text = await res.text();
        if (!text) return null;
        try {
          return JSON.parse(text);
        } catch {
          throw new PermanentError(`the answer is not JSON: ${text.slice(0, 200)}`, { statusCode: res.status });
        }
      },
    },
  },
  async send(items, ctx) {
    const { url, secret, headers, mode, timeoutMs } = ctx.settings;
    const post = async (body: string, extra: Record<string, string>) => {
      const signature = secret ? { 'cairn-signature': sign(secret, body, Math.floor(ctx.now().getTime() / 1000)) } : {};
      const res = await ctx.fetch(url, {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'user-agent': 'Cairn-Webhook/0.1',
          ...signature,
          ...extra,
        },
        body,
        timeoutMs,
      });
      await checkResponse(res);
    };
    if (mode === 'batch') {
      // Each event carries its idempotency key in the body (a header listing 100 keys would be too long).
      await post(JSON.stringify({ batch: items.map(envelope) }), {});
      return undefined;
    }
    // One request per event, through the framework's loop: a profile's events go one after another and
    // after a failure its later events wait for the next attempt, so a receiver never sees them out of
    // order; different profiles go in parallel (up to `parallel` requests at once). No failure stops
    // the other profiles: a URL that answers 5xx for one payload may take the next.
    return sendEach(
      items,
      ctx,
      (item) => post(JSON.stringify(envelope(item)), { 'idempotency-key': item.idempotencyKey }),
      { ordering: 'profile', parallel: ctx.settings.parallel, systemic: () => false },
    );
  },
});
