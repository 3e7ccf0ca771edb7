import { randomUUID } from 'node:crypto';
import type { Cairn } from '../server.ts';
import { sendEvents, settle } from './events.ts';

/** One generated event as sent, with who really sent it (the oracle's ground truth). */
export interface GeneratedEvent {
  /** The person behind the device: what every analytics answer must count as one, after merges. */
  person: string;
  /** The event as sent to `/v1/batch` (with its messageId and timestamp). */
  body: {
    messageId: string;
    type: 'track' | 'page' | 'identify';
    event?: string;
    name?: string;
    userId?: string;
    anonymousId: string;
    timestamp: string;
    properties?: Record<string, unknown>;
    traits?: Record<string, unknown>;
    context?: Record<string, unknown>;
  };
}

/** What {@link generateAnalyticsEvents} takes. */
export interface AnalyticsDataOptions {
  seed: number;
  /** People (default 2,000). */
  people?: number;
  /** Approximate events per person (default 50; the total is about people × this). */
  eventsPerPerson?: number;
  /** The span the events fall in (default 2026-02-16 .. 2026-11-16, around both 2026 DST changes of Europe and the US). */
  from?: string;
  to?: string;
}

/** The funnel the generated sessions walk, step by step, each with a chance to stop. */
export const FUNNEL = [
  'Product Viewed',
  'Product Added',
  'Checkout Started',
  'Payment Info Entered',
  'Order Completed',
];
/** Events sent besides the funnel ones. */
export const OTHER_EVENTS = ['Signed Up', 'Coupon Applied', 'Search', 'Product Shared'];
export const CATEGORIES = ['beauty', 'books', 'garden', 'toys'];
export const PLANS = ['free', 'pro', 'team'];
export const CAMPAIGNS = ['spring', 'summer', 'black-friday'];

// Days the sessions crowd around: DST changes (Europe 03-29 and 10-25, US 03-08 and 11-01) and month ends.
const HOT_DAYS = ['2026-03-08', '2026-03-29', '2026-10-25', '2026-11-01', '2026-03-31', '2026-06-30'];

/**
 * A deterministic history for analytics oracle tests: people with one to three devices (anonymous ids),
 * sessions that walk {@link FUNNEL} with drop-off, other events, properties (category, plan, total,
 * coupon) and UTM campaigns, crowded around DST days and month ends. About 70% of people sign in
 * (an `identify` with their userId) on some device mid-history, and 40% of those later on a second
 * device too: stage 2 merges the devices, so their earlier anonymous events count for the one person.
 * No two events of one person share a millisecond. `person` is the ground truth: the userId of a person
 * who ever signs in (all devices that signed in are theirs), else the device's own id (a device that
 * never signs in stays a person of its own, as Cairn cannot know better).
 *
 * @example
 * const events = generateAnalyticsEvents({ seed: 7, people: 2_000 });
 * await sendGenerated(cairn, events);
 */
export function generateAnalyticsEvents(options: AnalyticsDataOptions): GeneratedEvent[] {
  const random = mulberry32(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const people = options.people ?? 2_000;
  const perPerson = options.eventsPerPerson ?? 50;
  const from = Date.parse(options.from ?? '2026-02-16T00:00:00Z');
  const to = Date.parse(options.to ?? '2026-11-16T00:00:00Z');
  const span = to - from;
  const hot = HOT_DAYS.map((d) => Date.parse(`${d}T00:00:00Z`)).filter((t) => t >= from && t < to);
  const out: GeneratedEvent[] = [];

  for (let p = 0; p < people; p++) {
    const userId = `user-${options.seed}-${p}`;
    const devices = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, d) => `anon-${options.seed}-${p}-${d}`);
    const signsIn = random() < 0.7;
    // Which devices sign in, and when (a share of the way through the person's history).
    const signIn = new Map<string, number>();
    if (signsIn) {
      signIn.set(devices[0]!, random());
      for (const d of devices.slice(1)) if (random() < 0.4) signIn.set(d, random());
    }
    const personOf = (device: string) => (signIn.has(device) ? userId : device);
    const plan = pick(PLANS);
    const sessions = Math.max(1, Math.round((perPerson / 6) * (0.5 + random())));
    const used = new Set<number>();
    const events: {
      at: number;
      device: string;
      e: Omit<GeneratedEvent['body'], 'messageId' | 'anonymousId' | 'timestamp'>;
    }[] = [];
    for (let s = 0; s < sessions; s++) {
      const device = pick(devices);
      let at: number;
      if (hot.length && random() < 0.25) at = pick(hot) + Math.floor((random() - 0.5) * 2 * 86_400_000);
      else at = from + Math.floor(random() * span);
      at = Math.min(Math.max(at, from), to - 3_600_000);
      const campaign =
        random() < 0.3 ? { name: pick(CAMPAIGNS), source: pick(['mail', 'ads', 'social']), medium: 'cpc' } : undefined;
      const category = pick(CATEGORIES);
      events.push({
        at,
        device,
        e: { type: 'page', name: 'Home', properties: { path: '/' }, ...(campaign ? { context: { campaign } } : {}) },
      });
      let t = at;
      for (const step of FUNNEL) {
        t += 1_000 + Math.floor(random() * (random() < 0.1 ? 3 * 86_400_000 : 600_000));
        const properties: Record<string, unknown> = { category, plan };
        if (step === 'Order Completed') {
          properties.total = Math.round(random() * 20_000) / 100;
          properties.currency = 'EUR';
          properties.coupon = random() < 0.3;
        }
        events.push({ at: t, device, e: { type: 'track', event: step, properties } });
        if (random() < 0.35) break;
      }
      if (random() < 0.5) {
        t += 1_000 + Math.floor(random() * 300_000);
        events.push({ at: t, device, e: { type: 'track', event: pick(OTHER_EVENTS), properties: { category } } });
      }
    }
    // Sign-ins: an identify on the device at its share of the person's history.
    const times = events.map((x) => x.at).sort((a, b) => a - b);
    for (const [device, share] of signIn) {
      const at = times[Math.min(times.length - 1, Math.floor(share * times.length))]! + 500;
      events.push({ at, device, e: { type: 'identify', userId, traits: { plan } } });
    }
    events.sort((a, b) => a.at - b.at);
    const signedInAt = new Map<string, number>();
    for (const x of events) {
      let at = x.at;
      while (used.has(at)) at++;
      used.add(at);
      if (x.e.type === 'identify') signedInAt.set(x.device, at);
      // After signing in, the device sends the userId too (as the SDKs do).
      const userIdNow = signedInAt.has(x.device) && x.e.type !== 'identify' ? { userId } : {};
      out.push({
        person: personOf(x.device),
        body: {
          messageId: `gen-${options.seed}-${out.length}`,
          anonymousId: x.device,
          timestamp: new Date(at).toISOString(),
          ...x.e,
          ...userIdNow,
        } as GeneratedEvent['body'],
      });
    }
  }
  return out;
}

/**
 * Sends generated events through the tracking API in batches (in time order, as devices would), then
 * waits until the pipeline has attached every one to its profile and stage 6 has counted them.
 *
 * @example
 * await sendGenerated(cairn, generateAnalyticsEvents({ seed: 1 }));
 */
export async function sendGenerated(
  cairn: Cairn,
  events: readonly GeneratedEvent[],
  options: { batch?: number; concurrency?: number; timeoutMs?: number } = {},
): Promise<void> {
  const size = options.batch ?? 200;
  const ordered = [...events].sort((a, b) => a.body.timestamp.localeCompare(b.body.timestamp));
  const batches: object[][] = [];
  for (let i = 0; i < ordered.length; i += size) batches.push(ordered.slice(i, i + size).map((e) => e.body));
  let next = 0;
  const worker = async () => {
    while (next < batches.length)
      await sendEvents(cairn, cairn.demoSource!.writeKey, batches[next++]!, { messageIds: false });
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  // The measure queue keeps the hourly rollup trend tiles read: an answer from it must see every event.
  await settle(cairn.sql, { timeoutMs: options.timeoutMs ?? 600_000, queues: ['measure'] });
  // As autovacuum would after a bulk load (it may lag minutes behind on a busy machine): without statistics on
  // the new rows the planner misjudges them (measured: the lifecycle's probe for earlier activity took 33 s on
  // 124k events instead of 142 ms).
  await cairn.sql`ANALYZE events`;
}

// A small seeded generator (mulberry32): the same seed gives the same history on every machine.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random id, for tests that add events of their own beside the generated ones. */
export const newMessageId = () => randomUUID();
