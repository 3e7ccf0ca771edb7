import {
  checkResponse,
  type DeliveredEvent,
  definePlugin,
  errorOutcome,
  type ItemOutcome,
  type PluginContext,
} from '@cairn/plugin-api';
import { z } from 'zod';

const settings = z.object({
  /** The receiver's base URL (`https://api.segment.io`, a RudderStack data plane, another Cairn). */
  endpoint: z
    .string()
    .url()
    .refine((u) => /^https?:/.test(u), 'must be an http(s) URL'),
  /** Sent as the HTTP Basic username with an empty password, as Segment's libraries do. */
  writeKey: z.string().min(1),
  timeoutMs: z.number().int().min(100).max(60_000).default(15_000),
});

type Settings = z.infer<typeof settings>;

/** Segment's documented limits (Cairn's tracking API has the same). */
export const LIMITS = { eventBytes: 32 * 1024, requestBytes: 500 * 1024 } as const;

/**
 * The event as it is forwarded: every original field, messageId included (the receiver dedupes on
 * it), minus the clock fields. The stored `timestamp` is already corrected for clock skew; with
 * `sentAt` or `originalTimestamp` still present the receiver would correct it again, against the time
 * it was forwarded (hours off after a retry). `receivedAt` is the receiver's to set.
 *
 * @example
 * forwardable({ type: 'track', messageId: 'm1', timestamp: 't', sentAt: 's' }); // { type, messageId, timestamp }
 */
export function forwardable(event: DeliveredEvent): Record<string, unknown> {
  const { sentAt: _s, receivedAt: _r, originalTimestamp: _o, writeKey: _w, ...rest } = event;
  return rest;
}

/**
 * `{endpoint}/v1/batch`; an endpoint already ending in `/v1/batch` is taken as it is.
 *
 * @example
 * batchUrl('https://api.segment.io/'); // 'https://api.segment.io/v1/batch'
 */
export function batchUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return /\/v1\/batch$/.test(base) ? base : `${base}/v1/batch`;
}

interface Chunk {
  /** Positions in the batch of the events in this request. */
  at: number[];
  events: string[];
}

// Groups serialized events into requests under the size limit, keeping their order.
function chunk(serialized: Array<string | undefined>): Chunk[] {
  const chunks: Chunk[] = [];
  let current: Chunk = { at: [], events: [] };
  let bytes = 0;
  const envelope = Buffer.byteLength('{"batch":[]}');
  serialized.forEach((text, i) => {
    if (text === undefined) return;
    const size = Buffer.byteLength(text) + 1;
    if (current.events.length && envelope + bytes + size > LIMITS.requestBytes) {
      chunks.push(current);
      current = { at: [], events: [] };
      bytes = 0;
    }
    current.at.push(i);
    current.events.push(text);
    bytes += size;
  });
  if (current.events.length) chunks.push(current);
  return chunks;
}

// Cairn answers a partly refused batch with 400/413 and `error.details.rejected: [{ index, message }]`,
// having stored the rest; Segment and others refuse the request as a whole.
async function partialRejection(res: Response): Promise<Map<number, string> | undefined> {
  if (res.status !== 400 && res.status !== 413) return undefined;
  const body = (await res
    .clone()
    .json()
    .catch(() => undefined)) as { error?: { details?: { rejected?: unknown } } } | undefined;
  const rejected = body?.error?.details?.rejected;
  if (!Array.isArray(rejected) || rejected.length === 0) return undefined;
  const byIndex = new Map<number, string>();
  for (const r of rejected as Array<{ index?: unknown; path?: unknown; message?: unknown }>) {
    if (typeof r?.index !== 'number') return undefined;
    byIndex.set(r.index, `refused by the receiver: ${[r.path, r.message].filter(Boolean).join(': ')}`);
  }
  return byIndex;
}

async function post(chunk: Chunk, ctx: PluginContext<Settings>): Promise<Response> {
  const { endpoint, writeKey, timeoutMs } = ctx.settings;
  return ctx.fetch(batchUrl(endpoint), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
      'user-agent': 'Cairn-Segment-Forward/0.1',
    },
    body: `{"batch":[${chunk.events.join(',')}]}`,
    timeoutMs,
  });
}

export default definePlugin({
  name: 'segment-forward',
  version: '0.1.0',
  description: 'Forwards events to any Segment-spec HTTP endpoint (/v1/batch): Segment, RudderStack, another Cairn.',
  settings,
  purposes: ['analytics'],
  accepts: ['track', 'identify', 'page', 'screen', 'group', 'alias'],
  batchSize: 100,
  ordering: 'profile',
  secrets: ['writeKey'],
  async send(items, ctx) {
    const outcomes: Array<ItemOutcome | undefined> = items.map(() => undefined);
    const serialized = items.map((item, i) => {
      const text = JSON.stringify(forwardable(item.event));
      const size = Buffer.byteLength(text);
      if (size <= LIMITS.eventBytes) return text;
      outcomes[i] = { status: 'failed', error: `event is ${size} bytes; the receiver's limit is ${LIMITS.eventBytes}` };
      return undefined;
    });
    let stopped: Exclude<ItemOutcome, { status: 'delivered' }> | undefined;
    for (const c of chunk(serialized)) {
      if (stopped) {
        // Later events wait behind a failed request, so one profile's events arrive in order.
        for (const i of c.at) outcomes[i] = { ...stopped, error: `not sent: ${stopped.error}` };
        continue;
      }
      try {
        const res = await post(c, ctx);
        const rejected = await partialRejection(res);
        if (rejected) {
          c.at.forEach((itemIndex, n) => {
            const error = rejected.get(n);
            outcomes[itemIndex] = error ? { status: 'failed', error } : { status: 'delivered' };
          });
          await res.text().catch(() => '');
          continue;
        }
        await checkResponse(res);
        await res.text().catch(() => ''); // free the connection for the next request
        for (const i of c.at) outcomes[i] = { status: 'delivered' };
      } catch (err) {
        const outcome = errorOutcome(err);
        for (const i of c.at) outcomes[i] = outcome;
        if (outcome.status === 'retry') stopped = outcome;
      }
    }
    return outcomes;
  },
});
