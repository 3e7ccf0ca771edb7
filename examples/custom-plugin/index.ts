// An example third-party destination: keeps people and their activity in "Acme CRM", a made-up
// HTTP API. It shows what most real plugins need: a secret setting, per-item outcomes, the
// idempotency key, ctx.kv for an id the receiver hands back, and errors that carry the retry decision.
import {
  checkResponse,
  type DeliveryItem,
  definePlugin,
  type ItemOutcome,
  PermanentError,
  type PluginContext,
  RetryableError,
} from '@cairn/plugin-api';
import { z } from 'zod';

const settings = z.object({
  baseUrl: z
    .string()
    .url()
    .refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
  apiKey: z.string().min(10, 'use the full API key from Acme CRM → Settings → API'),
  timeoutMs: z.number().int().min(100).max(60_000).default(10_000),
});

type Ctx = PluginContext<z.infer<typeof settings>>;

// kv keys are per destination, so the profile id alone is unique.
const contactKey = (profileId: string) => `contact:${profileId}`;

function call(ctx: Ctx, method: string, path: string, body: unknown, idempotencyKey?: string) {
  return ctx.fetch(`${ctx.settings.baseUrl.replace(/\/+$/, '')}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ctx.settings.apiKey}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
    timeoutMs: ctx.settings.timeoutMs,
  });
}

/**
 * The CRM contact id of an item's person: from kv when this destination made the contact before,
 * else upserted by email (and remembered). Identify events always upsert, to carry new traits.
 *
 * @example
 * const id = await contactFor(item, ctx); // 'c_17'
 */
export async function contactFor(item: DeliveryItem, ctx: Ctx): Promise<string> {
  const profile = item.profile;
  if (!profile?.email) throw new PermanentError('Acme CRM keys contacts by email; this profile has none');
  const known = (await ctx.kv.get(contactKey(profile.id))) as string | undefined;
  if (known && item.event.type !== 'identify') return known;
  const res = await call(ctx, 'POST', '/v1/contacts', { email: profile.email, traits: profile.traits });
  await checkResponse(res);
  const { id } = (await res.json()) as { id: string };
  await ctx.kv.set(contactKey(profile.id), id);
  return id;
}

async function deliver(item: DeliveryItem, ctx: Ctx): Promise<void> {
  const contact = await contactFor(item, ctx);
  if (item.event.type !== 'track') return; // identify: the upsert was the whole job
  const res = await call(
    ctx,
    'POST',
    `/v1/contacts/${encodeURIComponent(contact)}/activities`,
    { type: item.event.event, occurredAt: item.event.timestamp, properties: item.event.properties ?? {} },
    // The same on every retry and replay: Acme CRM answers a repeat with the activity it already has.
    item.idempotencyKey,
  );
  if (res.status === 404) {
    // Someone deleted the contact in the CRM: forget it, and the retry creates it again.
    await ctx.kv.delete(contactKey(item.profile!.id));
    throw new RetryableError('contact no longer exists in Acme CRM; it is re-created on retry', { retryAfter: 0 });
  }
  await checkResponse(res);
}

export default definePlugin({
  name: 'acme-crm',
  version: '0.1.0',
  description: 'Keeps contacts and an activity timeline in Acme CRM.',
  settings,
  secrets: ['apiKey'],
  // Pick the consent purpose your use of the data falls under; a destination can require more.
  purposes: ['analytics'],
  accepts: ['identify', 'track'],
  batchSize: 10,
  // A person's identify (creating the contact) is delivered before their later track events.
  ordering: 'profile',
  async send(items, ctx) {
    const outcomes: ItemOutcome[] = [];
    // People with an earlier event of this batch waiting for a retry: their later events wait too,
    // or the CRM would see them out of order.
    const waiting = new Set<string>();
    for (const item of items) {
      const person = item.profile?.id;
      if (person && waiting.has(person)) {
        outcomes.push({ status: 'retry', error: 'not sent: an earlier event of this person is waiting for a retry' });
        continue;
      }
      try {
        await deliver(item, ctx);
        outcomes.push({ status: 'delivered' });
      } catch (err) {
        const error = String((err as Error)?.message ?? err);
        if (err instanceof PermanentError) outcomes.push({ status: 'failed', error });
        else {
          const retryAfter = err instanceof RetryableError ? err.retryAfter : undefined;
          outcomes.push({ status: 'retry', error, ...(retryAfter !== undefined ? { retryAfter } : {}) });
          if (person) waiting.add(person);
        }
      }
    }
    return outcomes;
  },
});
