// An independent evaluator of the preference and score computed traits (packages/core preferences.ts,
// scores.ts), written from docs/design/compute.md in plain JavaScript with Intl for time zones, and
// a generator of histories for it. Test-only: preferences.test.ts compares the engine against it.

const DAY = 86_400_000;

/** One event as sent, with the userId of its sender. */
export interface Sent {
  type: 'track' | 'identify';
  userId: string;
  event?: string;
  timestamp: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context?: { timezone?: string };
}

/** Zones Postgres knows by these exact names, and one it does not (falls through to the next source). */
export const ZONES = ['America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Australia/Sydney', 'America/Los_Angeles'];
const BAD_ZONE = 'Mars/Olympus';
const valid = (z: unknown): z is string => typeof z === 'string' && ZONES.includes(z);

/** A small seeded generator (mulberry32): the same histories on every run. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

const CATEGORIES = ['beauty', 'books', 'garden', 'toys'];
// Both sides of the 2026 autumn DST changes: Europe (01:00 UTC, 25 Oct) and the US (06:00 UTC, 1 Nov).
const DST_MOMENTS = ['2026-10-25T00:20:00Z', '2026-10-25T01:40:00Z', '2026-11-01T05:20:00Z', '2026-11-01T06:40:00Z'];

/**
 * Histories for `people` people: events of every kind at random times within `days` days before `nowMs`,
 * some at DST changes, zones from a trait, from the events' context, invalid, or none; sign-ups naming inviters.
 */
export function generate(run: string, people: number, nowMs: number, days: number, seed = 7): Sent[] {
  const g = rng(seed);
  const out: Sent[] = [];
  const users = Array.from({ length: people }, (_, i) => `${run}-p${i}`);
  const at = () => new Date(nowMs - (1 + g.next() * (days - 2)) * DAY).toISOString();
  for (const [i, userId] of users.entries()) {
    const traitZone = g.pick([...ZONES, BAD_ZONE, null, null]);
    const eventZone = g.pick([...ZONES, BAD_ZONE, null]);
    const context = () => (eventZone && g.next() < 0.8 ? { timezone: eventZone } : {});
    if (traitZone)
      out.push({ type: 'identify', userId, traits: { timezone: traitZone }, timestamp: at(), context: context() });
    const n = g.int(5, 30);
    for (let k = 0; k < n; k++) {
      const timestamp = k < 2 && i % 3 === 0 ? g.pick(DST_MOMENTS) : at();
      const kind = g.next();
      if (kind < 0.35)
        out.push({
          type: 'track',
          userId,
          event: 'Product Viewed',
          timestamp,
          context: context(),
          properties: { category: g.pick(CATEGORIES) },
        });
      else if (kind < 0.55)
        out.push({
          type: 'track',
          userId,
          event: 'Order Completed',
          timestamp,
          context: context(),
          properties: {
            total: g.int(10, 300),
            discount: g.next() < 0.3 ? g.int(1, 20) : 0,
            ...(g.next() < 0.15 ? { coupon: 'SAVE' } : {}),
          },
        });
      else if (kind < 0.7)
        out.push({
          type: 'track',
          userId,
          event: i % 4 === 0 ? 'Coupon Issued' : 'Page Viewed',
          timestamp,
          context: context(),
        });
      else if (kind < 0.8) out.push({ type: 'track', userId, event: 'Coupon Redeemed', timestamp, context: context() });
      else if (kind < 0.9)
        out.push({
          type: 'track',
          userId,
          event: g.pick(['Product Shared', 'Invite Sent']),
          timestamp,
          context: context(),
        });
      else out.push({ type: 'track', userId, event: 'Page Viewed', timestamp, context: context() });
    }
    // Opens and clicks of messages (stage 6's events), some by machines, some without a destination.
    for (let k = g.int(0, 6); k > 0; k--) {
      const destinationId = g.pick([`${run}-mail`, `${run}-sms`, `${run}-hook`, null]);
      out.push({
        type: 'track',
        userId,
        event: g.pick(['Email Opened', 'Link Clicked']),
        timestamp: at(),
        properties: { machine: g.next() < 0.15, ...(destinationId ? { destinationId } : {}) },
      });
    }
    // Coupon-heavy people: 5 to 7 coupons, most redeemed.
    if (i % 5 === 1) {
      const issued = g.int(5, 7);
      for (let k = 0; k < issued; k++) out.push({ type: 'track', userId, event: 'Coupon Issued', timestamp: at() });
      for (let k = 0; k < issued - g.int(0, 3); k++)
        out.push({ type: 'track', userId, event: 'Coupon Redeemed', timestamp: at() });
    }
    // A sign-up naming someone (sometimes oneself, sometimes nobody known, sometimes twice).
    if (i > 0 && g.next() < 0.6) {
      const referrer =
        g.next() < 0.1 ? userId : g.next() < 0.1 ? `${run}-nobody` : users[g.int(0, Math.min(i - 1, 6))]!;
      const times = g.next() < 0.2 ? 2 : 1;
      for (let k = 0; k < times; k++)
        out.push({ type: 'track', userId, event: 'Signed Up', timestamp: at(), properties: { referrer } });
    }
  }
  return out;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
const ms = (e: Sent) => Date.parse(e.timestamp);

function top<K extends string | number>(counts: Map<K, number>): K | undefined {
  let best: K | undefined;
  for (const [k, n] of counts) {
    const b = best === undefined ? undefined : counts.get(best)!;
    if (b === undefined || n > b || (n === b && k < best!)) best = k;
  }
  return best;
}

/** The local hour (0-23) and ISO weekday (1-7) of an instant in a zone. */
export function localTime(tMs: number, zone: string): { hour: number; weekday: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hour: 'numeric',
    hourCycle: 'h23',
    weekday: 'short',
  }).formatToParts(tMs);
  const hour = Number(parts.find((p) => p.type === 'hour')!.value);
  const weekday =
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(parts.find((p) => p.type === 'weekday')!.value) + 1;
  return { hour, weekday };
}

/** Every trait's expected value per userId (absent: no value), at `nowMs`; `activityRef` is the start of the UTC day. */
export function expected(events: readonly Sent[], nowMs: number, windowDays: number) {
  const by = new Map<string, Sent[]>();
  for (const e of events) by.set(e.userId, [...(by.get(e.userId) ?? []), e]);
  const inWindow = (e: Sent) => ms(e) > nowMs - windowDays * DAY && ms(e) <= nowMs;
  const out = new Map<string, Record<string, unknown>>();
  const ref = Math.floor(nowMs / DAY) * DAY;
  for (const [userId, evs] of by) {
    const v: Record<string, unknown> = {};
    // The zone: the latest timezone trait when valid, else the event's own, else UTC.
    const identifies = evs.filter((e) => e.type === 'identify').sort((a, b) => ms(a) - ms(b));
    const trait = identifies.at(-1)?.traits?.timezone;
    const zoneOf = (e: Sent) => (valid(trait) ? trait : valid(e.context?.timezone) ? e.context!.timezone! : 'UTC');
    const hours = new Map<number, number>();
    const days = new Map<number, number>();
    for (const e of evs.filter(inWindow)) {
      const l = localTime(ms(e), zoneOf(e));
      hours.set(l.hour, (hours.get(l.hour) ?? 0) + 1);
      days.set(l.weekday, (days.get(l.weekday) ?? 0) + 1);
    }
    if (hours.size) [v.active_hour, v.active_weekday] = [top(hours), top(days)];
    const cats = new Map<string, number>();
    for (const e of evs.filter((x) => x.event === 'Product Viewed'))
      cats.set(
        String(e.properties!.category),
        (cats.get(String(e.properties!.category)) ?? 0) + 2 ** ((ms(e) - nowMs) / (30 * DAY)),
      );
    if (cats.size) v.preferred = top(cats);
    // The channel: the destination's own, else its plugin's; an open without a destination is an email's.
    const channelOf = (e: Sent) => {
      const d = String(e.properties?.destinationId ?? '');
      if (d.endsWith('-mail')) return 'email';
      if (d.endsWith('-sms')) return 'sms';
      if (d.endsWith('-hook')) return 'push';
      return e.event === 'Email Opened' ? 'email' : undefined;
    };
    const channels = new Map<string, number>();
    for (const e of evs.filter(
      (x) => (x.event === 'Email Opened' || x.event === 'Link Clicked') && !x.properties?.machine,
    )) {
      const c = channelOf(e);
      if (c) channels.set(c, (channels.get(c) ?? 0) + 2 ** ((ms(e) - nowMs) / (30 * DAY)));
    }
    if (channels.size) v.preferred_channel = top(channels);
    const issued = evs.filter((e) => e.event === 'Coupon Issued' && inWindow(e)).length;
    const redeemed = evs.filter((e) => e.event === 'Coupon Redeemed' && inWindow(e)).length;
    if (issued + redeemed)
      v.coupons = { issued, redeemed, rate: issued ? round(Math.min(1, redeemed / issued), 4) : null };
    const orders = evs.filter((e) => e.event === 'Order Completed').sort((a, b) => ms(a) - ms(b));
    if (orders.length) {
      const discounted = orders.filter(
        (o) => Number(o.properties!.discount) > 0 || (o.properties!.coupon ?? '') !== '',
      );
      v.price_sensitivity = round(discounted.length / orders.length, 4);
    }
    if (orders.length >= 2) {
      const gaps = orders
        .slice(1)
        .map((o, i) => (ms(o) - ms(orders[i]!)) / 1000)
        .sort((a, b) => a - b);
      const mid = gaps.length / 2;
      const median = gaps.length % 2 ? gaps[Math.floor(mid)]! : (gaps[mid - 1]! + gaps[mid]!) / 2;
      v.repurchase_cycle = round(median / 86_400, 2);
    }
    let activity = 0;
    let active = false;
    for (const e of evs)
      if (ms(e) > ref - 180 * DAY && ms(e) <= nowMs) {
        active = true;
        activity += (e.event === 'Order Completed' ? 3 : 1) * 2 ** (Math.min(0, ms(e) - ref) / (14 * DAY));
      }
    if (active) v.activity = round(activity, 4);
    out.set(userId, v);
  }
  // Virality: own shares and invites, and distinct others whose sign-up names one's userId.
  for (const [userId, v] of out) {
    const evs = by.get(userId)!;
    const shares = evs.filter((e) => e.event === 'Product Shared').length;
    const invites = evs.filter((e) => e.event === 'Invite Sent').length;
    const signups = new Set(
      events
        .filter((e) => e.event === 'Signed Up' && e.properties?.referrer === userId && e.userId !== userId)
        .map((e) => e.userId),
    ).size;
    if (shares + invites + signups) v.virality = { shares, invites, signups, score: shares + invites + 3 * signups };
    const parts = [v.activity, v.price_sensitivity, (v.coupons as { rate?: number } | undefined)?.rate];
    if (v.activity !== undefined || v.price_sensitivity !== undefined || v.coupons !== undefined)
      v.weighted = round(0.5 * Number(parts[0] ?? 0) + 10 * Number(parts[1] ?? 0) + 2 * Number(parts[2] ?? 0), 4);
  }
  return out;
}
