// A generated shop for the audience oracle test: 12,000 profiles (150 merged away) with dirty traits of
// every type, accounts, consent histories, subscriptions, static tags, stored audience memberships, and
// ~240,000 track events (plus ~46,000 pages, some named like track events) over the 180 days before a
// fixed `now`, some exactly on the bounds the rules test — all from one seed (never Math.random), loaded
// by COPY. The test evaluates rules on it with the SQL engine and with its own reading of
// packages/core/src/rules/README.md, and compares.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type postgres from 'postgres';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface GenEvent {
  sourceId: string;
  type: 'track' | 'page' | 'screen' | 'identify';
  event: string | null;
  /** null: not yet attached to a profile (unprocessed). */
  profileId: string | null;
  ts: number;
  properties: Record<string, Json>;
}

/** The whole dataset, in the order rows are inserted (consent record order = array order). */
export interface AudienceData {
  now: Date;
  profiles: { id: string; mergedInto: string | null; createdAt: number }[];
  identities: { profileId: string; type: string; value: string; createdAt: number }[];
  traits: { profileId: string; key: string; value: Json }[];
  computed: { profileId: string; key: string; value: Json }[];
  accounts: { id: string; traits: Record<string, Json> }[];
  profileAccounts: { profileId: string; accountId: string }[];
  consent: { profileId: string; purpose: string; granted: boolean; at: number }[];
  subscriptions: { contact: string; channel: string; topic: string; subscribed: boolean }[];
  tags: string[];
  tagAssignments: { tag: string; profileId: string; addedAt: number; removedAt: number | null }[];
  audiences: string[];
  memberships: { audience: string; profileId: string; enteredAt: number; exitedAt: number | null }[];
  events: GenEvent[];
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** 15:30 UTC on 24 February 2026 (not a leap year): 29 February birthdays fall on the 28th, within 7 days. */
export const AUDIENCE_NOW = new Date('2026-02-24T15:30:00.000Z');
export const SHOP_SOURCE = 'shop';
export const COMPUTED_KEYS = ['order_count', 'favorite_category', 'churn_risk', 'rfm'];

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST_NAMES = [
  ...['Anna', 'ben', 'Chloé', 'DAVID', 'ÉLODIE', 'élise', 'François', 'Zoë', 'Jürgen', 'Øyvind', 'María', 'josé'],
  ...['Li', '李', 'Søren', 'Ana-María', 'Mia', 'Noah', 'oliver', 'Yūki', 'Çağla', 'Åsa', '🙂 Sam', 'Émile', 'Mark'],
  ...['ZED', 'Ines', 'Bao', 'Ünal', 'Nadia'],
];
const LAST = ['martin', 'Smith', 'Muller', 'garcia', 'Rossi', 'Kowalski', 'Dubois', 'Nguyen', 'Okafor', 'Silva'];
const DOMAINS = ['shop.test', 'Mail.TEST', 'example.org', 'Example.com'];
const CATEGORIES = ['Shoes', 'shoes', 'SHOES', 'Bags', 'bags', 'Électronique', 'électronique', 'Home', 'Books'];
const PAGES = ['Home', 'Product'];
const PURPOSES = ['marketing', 'analytics', 'personalization'];
const TAGS = ['beta_tester', 'wholesale', 'vip_manual'];
export const STORED_AUDIENCES = ['high_value', 'newsletter_engaged'];

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const ymd = (d: Date) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
const hm = (d: Date) => `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Generates the dataset for a seed (the same seed always gives the same data).
 *
 * @example
 * const data = generateAudienceData(7, 12_000);
 */
export function generateAudienceData(seed: number, people: number, now = AUDIENCE_NOW): AudienceData {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const chance = (p: number) => rnd() < p;
  const uuid = () => {
    const h = Array.from({ length: 32 }, () => Math.floor(rnd() * 16).toString(16));
    h[12] = '4';
    h[16] = '89ab'[Math.floor(rnd() * 4)]!;
    const s = h.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  };
  const T = now.getTime();
  const d: AudienceData = {
    now,
    profiles: [],
    identities: [],
    traits: [],
    computed: [],
    accounts: [],
    profileAccounts: [],
    consent: [],
    subscriptions: [],
    tags: TAGS,
    tagAssignments: [],
    audiences: STORED_AUDIENCES,
    memberships: [],
    events: [],
  };

  // A date string in one of the many shapes trait values arrive in (some valid, some not).
  const dateText = (ms: number): Json => {
    const t = new Date(ms);
    const r = rnd();
    if (r < 0.3) return ymd(t);
    if (r < 0.5) return `${ymd(t)}T${hm(t)}:${pad(t.getUTCSeconds())}Z`;
    if (r < 0.6) return t.toISOString();
    if (r < 0.7) {
      const off = pick([-300, -180, 60, 120, 330, 840]);
      const l = new Date(ms + off * MINUTE);
      const sign = off < 0 ? '-' : '+';
      const zone =
        off % 60 === 0 && chance(0.5)
          ? pad(Math.abs(off) / 60)
          : `${pad((Math.abs(off) / 60) | 0)}:${pad(Math.abs(off) % 60)}`;
      return `${ymd(l)}T${hm(l)}:${pad(l.getUTCSeconds())}${sign}${zone}`;
    }
    if (r < 0.78) return `${ymd(t)}T${hm(t)}`;
    if (r < 0.82) return `${ymd(t)}T${hm(t)}:${pad(t.getUTCSeconds())}.5`;
    if (r < 0.85) return pick(['2025-02-30', '2025-13-01T10:00:00Z', '2025-04-31', '2023-02-29', '2025-06-15T25:10Z']);
    if (r < 0.88) return `${pad(t.getUTCDate())}/${pad(t.getUTCMonth() + 1)}/${t.getUTCFullYear()}`;
    if (r < 0.9) return Math.floor(ms / 1000);
    if (r < 0.92) return pick(['yesterday', '', null, 'soon']);
    // Shapes the README does not list (a space instead of T, a zone without its colon): no date.
    if (r < 0.93) return `${ymd(t)} ${hm(t)}:00`;
    if (r < 0.94) return `${ymd(t)}T${hm(t)}:00+0100`;
    return ymd(t);
  };

  const birthday = (): Json => {
    const r = rnd();
    if (r < 0.03) return `${pick([1980, 1988, 1992, 1996, 2000, 2004])}-02-29`;
    if (r < 0.04) return pick(['1991-02-29', '1985-02-30', '1990-00-10', '29/02/1992']);
    if (r < 0.05) return `${int(2027, 2040)}-${pad(int(1, 12))}-${pad(int(1, 28))}`;
    const ms = Date.UTC(int(1950, 2008), 0, 1) + int(0, 364) * DAY;
    if (r < 0.08) return `${ymd(new Date(ms))}T${pick(['00:00:00Z', '12:30Z', '23:59:59Z'])}`;
    if (r < 0.1) return ymd(new Date(T - int(0, 400) * DAY)); // a "birthday" set to a recent day
    return ymd(new Date(ms));
  };

  // Accounts (B2B groups) with traits of mixed types.
  const accountIds = Array.from({ length: Math.round(people / 14) }, (_, k) => `acc-${k}`);
  for (const id of accountIds) {
    const traits: Record<string, Json> = {};
    if (chance(0.9)) traits.plan = pick(['Enterprise', 'enterprise', 'ENTERPRISE', 'startup', 'SMB', null, '']);
    if (chance(0.85)) traits.seats = pick([int(1, 40), int(40, 400), String(int(5, 120)), 'many', null]);
    if (chance(0.8)) traits.industry = pick(['Retail', 'retail', 'E-commerce', 'Software', 'Santé', 'Éducation']);
    if (chance(0.5)) traits.arr = round2(rnd() * 200_000);
    d.accounts.push({ id, traits });
  }

  const live: string[] = [];
  const subscriptionKeys = new Set<string>();
  for (let i = 0; i < people; i++) {
    const id = uuid();
    const merged = i >= people - Math.round(people / 80);
    const archetype = pick(['loyal', 'regular', 'regular', 'browser', 'browser', 'dormant', 'new']);
    const createdAt =
      archetype === 'new'
        ? T - int(0, 30 * 24) * HOUR - int(0, 59) * MINUTE
        : T - int(31, 700) * DAY - int(0, 86_399) * 1000;
    d.profiles.push({ id, mergedInto: merged ? pick(live) : null, createdAt });
    if (!merged) live.push(id);
    const trait = (key: string, value: Json | undefined) => {
      if (value !== undefined) d.traits.push({ profileId: id, key, value });
    };
    const bigSpender = chance(0.1);

    // Identity: contact points (the email trait is what subscriptions follow, else the first email identity).
    const first = pick(FIRST_NAMES);
    const asciiFirst = pick(['anna', 'Ben', 'chloe', 'David', 'elodie', 'Mia', 'noah', 'Sam']);
    const email = chance(0.8) ? `${asciiFirst}.${pick(LAST)}${i}@${pick(DOMAINS)}` : undefined;
    const phone = chance(0.35) ? `+336${pad(int(0, 99_999_999), 8)}` : undefined;
    let idAt = createdAt;
    const mine: AudienceData['identities'] = [];
    const identity = (type: string, value: string) => {
      idAt += int(1, 1000) * 1000;
      mine.push({ profileId: id, type, value, createdAt: idAt });
    };
    identity('anonymousId', `anon-${i}`);
    const userId = chance(0.6) ? `u${i}` : undefined;
    if (userId) identity('userId', userId);
    if (email && chance(0.7)) identity('email', email.toLowerCase());
    else if (email && chance(0.5))
      identity('email', `old.${i}@legacy.test`); // differs from the trait
    else if (!email && chance(0.6)) {
      identity('email', `anon${i}@${pick(['shop.test', 'example.org'])}`);
      if (chance(0.3)) identity('email', `second${i}@shop.test`);
    }
    if (phone && chance(0.5)) identity('phone', phone);
    else if (!phone && chance(0.15)) identity('phone', `+337${pad(int(0, 99_999_999), 8)}`);
    d.identities.push(...mine);

    // Traits: every type, dirty values, mixed case, unicode.
    trait('email', email);
    trait('phone', phone);
    trait('first_name', chance(0.9) ? first : undefined);
    const plans = ['free', 'Free', 'FREE', 'pro', 'Pro', 'PRO', 'pro ', 'team', 'Team', 'enterprise', null, '', 42];
    trait('plan', chance(0.85) ? pick(plans) : undefined);
    const age = int(18, 80);
    const ages: Json[] = [age, age, age, String(age), `${age}.5`, 'forty', ` ${age}`, null, true, `${age}.0`];
    trait('age', chance(0.75) ? pick(ages) : undefined);
    const ltv = round2(bigSpender ? 500 + rnd() * 5000 : rnd() * 800);
    trait('ltv', chance(0.8) ? pick([ltv, ltv, ltv, ltv.toFixed(2), 'n/a', '1e3', -ltv, Math.round(ltv)]) : undefined);
    trait('vip', chance(0.7) ? pick([true, false, false, 'true', 'false', 'True', 'yes', 1, 0, null]) : undefined);
    // Some dates sit exactly on the bounds of the rules' comparisons (inclusive or not).
    const exactly = (...ms: number[]) => (chance(0.04) ? new Date(pick(ms)).toISOString() : undefined);
    const signup = exactly(
      Date.UTC(2025, 8, 1),
      Date.UTC(2025, 11, 31),
      Date.UTC(2025, 11, 31, 0, 0, 1),
      T - 90 * DAY,
      T - 7 * DAY,
    );
    trait('signup_date', chance(0.85) ? (signup ?? dateText(createdAt)) : undefined);
    trait('birthday', chance(0.7) ? birthday() : undefined);
    const interests: Json[] = [
      ['shoes', 'Running'],
      ['hats'],
      [],
      ['SHOES', 3, true, { x: 1 }],
      'shoes,running',
      ['running shoes'],
      ['RUNNING'],
    ];
    trait('interests', chance(0.6) ? pick(interests) : undefined);
    trait(
      'address',
      chance(0.5) ? pick<Json>([{ city: 'Lyon', country: 'FR' }, {}, null, { city: 'Köln' }]) : undefined,
    );
    trait('nickname', chance(0.6) ? pick<Json>(['', ' ', null, [], {}, 'x', 'Bobby', 0, false]) : undefined);
    const code = () => `${pad(int(0, 9999), 4)}`;
    trait(
      'code',
      chance(0.6) ? pick([`AB-${code()}`, `ab-${code()}`, `AB${code()}`, `ABC-${code()}`, `XY-${code()}9`]) : undefined,
    );
    trait(
      'country',
      chance(0.8) ? pick(['FR', 'fr', 'DE', 'de', 'US', 'ES', 'Es', 'IT', 'GB', ' FR', 'Österreich', '']) : undefined,
    );
    const login = exactly(T - 7 * DAY, T - 7 * DAY + 1, T, T + 1, Date.UTC(2026, 0, 1));
    trait(
      'last_login',
      chance(0.8) ? (login ?? dateText(T - int(-3 * 24, 120 * 24) * HOUR - int(0, 3599) * 1000)) : undefined,
    );
    const renewal = exactly(T, T - 1, T + 30 * DAY, T + 30 * DAY - 1);
    trait('renewal_date', chance(0.6) ? (renewal ?? dateText(T + int(-60 * 24, 60 * 24) * HOUR)) : undefined);
    trait(
      'score',
      chance(0.7)
        ? pick<Json>([round2(rnd() * 200 - 50), int(-50, 150), String(int(-50, 150)), '-', '--5'])
        : undefined,
    );

    // Computed trait values (as a previous computation stored them).
    const computed = (key: string, value: Json) => d.computed.push({ profileId: id, key, value });
    if (chance(0.8)) computed('order_count', pick([int(0, 12), int(0, 12), String(int(0, 12))]));
    if (chance(0.7)) computed('favorite_category', pick(CATEGORIES));
    if (chance(0.7)) computed('churn_risk', pick<Json>([round2(rnd()), round2(rnd()).toFixed(2), 'high']));
    const segment = pick(['champions', 'Champions', 'loyal', 'at_risk', 'lost']);
    if (chance(0.6)) computed('rfm', pick<Json>([{ segment, score: int(1, 5) }, { score: int(1, 5) }, segment, {}]));

    // Accounts.
    if (chance(0.45)) {
      const a = pick(accountIds);
      d.profileAccounts.push({ profileId: id, accountId: a });
      const b = pick(accountIds);
      if (b !== a && chance(0.15)) d.profileAccounts.push({ profileId: id, accountId: b });
    }

    // Consent: several changes per purpose, recorded out of time order, some at the very same instant.
    const changes: AudienceData['consent'] = [];
    for (const [k, purpose] of PURPOSES.entries()) {
      if (!chance([0.7, 0.6, 0.3][k]!)) continue;
      for (let n = int(1, 4); n > 0; n--) {
        const at = T - int(1, 300 * 24) * HOUR;
        changes.push({ profileId: id, purpose, granted: chance(0.6), at });
        if (chance(0.06)) changes.push({ profileId: id, purpose, granted: chance(0.5), at });
      }
    }
    for (let k = changes.length - 1; k > 0; k--) {
      const j = int(0, k);
      [changes[k], changes[j]] = [changes[j]!, changes[k]!];
    }
    d.consent.push(...changes);

    // Subscriptions, keyed by contact point (the trait's address, an identity's, or another address).
    const sub = (contact: string, channel: string, topic: string, subscribed: boolean) => {
      if (subscriptionKeys.has(`${contact} ${channel} ${topic}`)) return;
      subscriptionKeys.add(`${contact} ${channel} ${topic}`);
      d.subscriptions.push({ contact, channel, topic, subscribed });
    };
    const emails = [email?.toLowerCase(), ...mine.filter((x) => x.type === 'email').map((x) => x.value)];
    for (const e of new Set(emails)) {
      if (!e) continue;
      const r = rnd();
      if (r < 0.15) sub(`email:${e}`, 'email', '', false);
      else if (r < 0.3) sub(`email:${e}`, 'email', 'newsletter', false);
      else if (r < 0.35) sub(`email:${e}`, 'email', 'promotions', false);
      else if (r < 0.45) sub(`email:${e}`, 'email', '', true);
      else if (r < 0.5) {
        sub(`email:${e}`, 'email', '', false);
        sub(`email:${e}`, 'email', 'newsletter', true);
      }
    }
    const phones = [phone, ...mine.filter((x) => x.type === 'phone').map((x) => x.value)];
    for (const p of new Set(phones)) if (p && chance(0.25)) sub(`phone:${p}`, 'sms', pick(['', '', 'alerts']), false);
    const push = userId ? `userId:${userId}` : `profile:${id}`;
    if (chance(0.12)) sub(push, 'push', pick(['', 'offers', 'offers']), chance(0.15));
    if (email && chance(0.05)) sub(`email:${email}`, 'email', '', false); // as typed: never the lower-cased point

    // Static tags (some removed, some removed then added again) and stored audience memberships.
    for (const [k, tag] of TAGS.entries()) {
      if (!chance([0.1, 0.05, 0.04][k]!)) continue;
      const addedAt = T - int(5, 200) * DAY;
      const removed = chance(0.3);
      d.tagAssignments.push({ tag, profileId: id, addedAt, removedAt: removed ? addedAt + int(1, 50) * HOUR : null });
      if (removed && chance(0.3)) d.tagAssignments.push({ tag, profileId: id, addedAt: T - DAY, removedAt: null });
    }
    for (const [k, audience] of STORED_AUDIENCES.entries()) {
      if (!chance([bigSpender ? 0.7 : 0.08, 0.2][k]!)) continue;
      const exited = chance(0.25);
      const enteredAt = T - (exited ? int(35, 150) : int(2, 150)) * DAY;
      d.memberships.push({
        audience,
        profileId: id,
        enteredAt,
        exitedAt: exited ? enteredAt + int(1, 30) * DAY : null,
      });
      if (exited && chance(0.3))
        d.memberships.push({ audience, profileId: id, enteredAt: T - 12 * HOUR, exitedAt: null });
    }

    generateEvents(d, { id, archetype, createdAt, bigSpender, rnd, int, pick, chance });
  }

  // Events nobody is attached to yet, and the internal source's own track events.
  for (let k = 0; k < people / 6; k++) {
    const ts = T - int(0, 180 * 24 * 60) * MINUTE;
    d.events.push({
      sourceId: SHOP_SOURCE,
      type: 'track',
      event: 'Order Completed',
      profileId: null,
      ts,
      properties: { total: 999 },
    });
  }
  for (let k = 0; k < people / 20; k++) {
    const ts = T - int(0, 60 * 24) * HOUR;
    d.events.push({
      sourceId: 'cairn',
      type: 'track',
      event: 'Unsubscribed',
      profileId: pick(live),
      ts,
      properties: { channel: 'email' },
    });
  }
  return d;
}

interface Person {
  id: string;
  archetype: string;
  createdAt: number;
  bigSpender: boolean;
  rnd: () => number;
  int: (lo: number, hi: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  chance: (p: number) => boolean;
}

const SESSIONS: Record<string, [number, number]> = {
  loyal: [12, 22],
  regular: [4, 10],
  browser: [3, 8],
  dormant: [2, 6],
  new: [1, 5],
};
const CONVERSION: Record<string, number> = { loyal: 0.3, regular: 0.15, browser: 0.03, dormant: 0.45, new: 0.12 };

// Sessions of views, searches, carts and orders for one person.
function generateEvents(d: AudienceData, p: Person): void {
  const { int, pick, chance, rnd } = p;
  const T = d.now.getTime();
  const push = (type: GenEvent['type'], event: string | null, ts: number, properties: Record<string, Json>) => {
    d.events.push({ sourceId: SHOP_SOURCE, type, event, profileId: p.id, ts, properties });
  };
  const start = Math.max(p.createdAt, T - 180 * DAY);
  const end = p.archetype === 'dormant' ? T - 95 * DAY : T - 10 * MINUTE;
  if (p.createdAt >= T - 180 * DAY && p.createdAt <= T) {
    push('track', 'Signed Up', p.createdAt, { method: pick(['email', 'google', 'apple']) });
  }
  const starts: number[] = [];
  if (end > start) {
    const [lo, hi] = SESSIONS[p.archetype]!;
    for (let n = int(lo, hi); n > 0; n--) starts.push(start + Math.floor(rnd() * (end - start)));
  }
  if (p.archetype !== 'dormant' && chance(0.04)) starts.push(T - int(5, 170) * MINUTE); // live right now
  if (p.archetype !== 'dormant' && chance(0.06)) starts.push(T - int(3, 23) * HOUR);
  for (const s of starts) {
    let ts = s;
    const step = () => {
      ts += int(20, 400) * 1000;
      return Math.min(ts, T);
    };
    const category = pick(CATEGORIES);
    if (chance(0.5)) push('page', pick(PAGES), step(), { path: '/' });
    // A screen, sometimes named like a track event.
    if (chance(0.08)) push('screen', pick(['Checkout', 'Product Viewed']), step(), { app: 'ios' });
    for (let v = int(1, 3); v > 0; v--) {
      const props: Record<string, Json> = {
        category,
        price: round2(5 + rnd() * 300),
        product_id: `SKU-${int(100, 2999)}`,
      };
      if (chance(0.7)) props.product = { brand: pick(['Acme', 'ÜberWear', 'nike']) };
      push('track', 'Product Viewed', step(), props);
    }
    if (chance(0.3)) push('track', 'Search', step(), { query: pick(['red shoes', 'sac', 'Laptop', '']) });
    const recent = s > T - DAY;
    if (chance(recent ? 0.7 : 0.35)) {
      push('track', 'Added to Cart', step(), { category, price: round2(5 + rnd() * 300), quantity: int(1, 3) });
      if (chance(recent ? 0.3 : CONVERSION[p.archetype]! * 2)) {
        const total = round2(p.bigSpender ? 250 + rnd() * 1250 : 12 + rnd() * 240);
        const items = int(1, 8);
        const props: Record<string, Json> = { category, currency: 'EUR' };
        const tr = rnd();
        if (tr < 0.82) props.total = total;
        else if (tr < 0.9) props.total = total.toFixed(2);
        else if (tr < 0.93) props.total = Math.round(total);
        else if (tr < 0.95) props.total = 'free';
        else if (tr < 0.97) props.total = null;
        const ir = rnd();
        if (ir < 0.7) props.items = items;
        else if (ir < 0.9) props.items = String(items);
        else if (ir < 0.95) props.items = 'three';
        const cr = rnd();
        if (cr < 0.15) props.coupon = pick(['SAVE10', 'save10', 'WELCOME']);
        else if (cr < 0.25) props.coupon = '';
        else if (cr < 0.3) props.coupon = null;
        if (chance(0.8)) props.shipping = { country: pick(['FR', 'fr', 'DE', 'ES']), express: chance(0.2) };
        if (chance(0.7)) props.delivery_date = new Date(ts + int(1, 6) * DAY).toISOString().slice(0, 10);
        push('track', 'Order Completed', step(), props);
        if (chance(0.3)) push('page', 'Order Completed', step(), { path: '/thanks' }); // a page, not a track
      }
    }
  }
  if (chance(0.004)) push('track', 'Product Viewed', T + int(1, 180) * MINUTE, { category: 'Shoes' }); // clock skew
  // Events exactly on the bounds of windows (`now - N < t <= now`, `from <= t < to`) and time references.
  if (chance(0.03)) {
    const at = pick([
      ...[90 * DAY, 60 * DAY, 30 * DAY, 7 * DAY, DAY, 180 * DAY, 0].map((ago) => T - ago),
      ...[Date.UTC(2025, 10, 28), Date.UTC(2025, 11, 1), Date.UTC(2025, 11, 1) - 1, Date.UTC(2026, 1, 1)],
      Date.UTC(2026, 1, 24, 14), // '2026-02-24T15:00:00+01:00'
    ]);
    push('track', 'Order Completed', at, { total: pick([20, 500, 1000, 99.99]), items: 1, category: 'Shoes' });
  }
  if (chance(0.01))
    push('track', 'Product Viewed', pick([T - 90 * MINUTE, T - 48 * HOUR, T - 2 * DAY, T]), { price: 300 });
  if (chance(0.05)) push('identify', null, start, {});
}

type Sql = postgres.Sql<Record<string, never>>;
type Cell = string | number | boolean | null;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const json = (v: Json) => JSON.stringify(v);
// COPY's text format: tab-separated, \N for null, backslash escapes.
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const cell = (v: Cell) => (v === null ? '\\N' : String(v).replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!));

/** COPY rows into a table, in one stream (row order = insertion order, so identity ids follow it). */
async function copy(sql: Sql, table: string, columns: readonly string[], rows: readonly Cell[][]): Promise<void> {
  // A reserved connection: postgres.js would otherwise pipeline another query onto one in COPY mode.
  const reserved = await sql.reserve();
  try {
    const stream = await reserved`COPY ${sql(table)} (${sql(columns)}) FROM STDIN`.writable();
    await pipeline(Readable.from(lines(rows)), stream);
  } finally {
    reserved.release();
  }
}

function* lines(rows: readonly Cell[][]): Generator<string> {
  for (let i = 0; i < rows.length; i += 2000) {
    yield `${rows
      .slice(i, i + 2000)
      .map((r) => r.map(cell).join('\t'))
      .join('\n')}\n`;
  }
}

/**
 * Loads a generated dataset into a migrated, empty database (COPY, independent tables at once).
 *
 * @example
 * await loadAudienceData(sql, generateAudienceData(7, 12_000));
 */
export async function loadAudienceData(sql: Sql, d: AudienceData): Promise<void> {
  const at = iso(d.now.getTime());
  await sql`INSERT INTO sources (id, name, write_key) VALUES (${SHOP_SOURCE}, 'Shop', 'wk_audience_oracle')`;
  // Survivors come before the profiles merged into them (foreign keys are checked at the end anyway).
  await copy(
    sql,
    'profiles',
    ['id', 'merged_into', 'created_at'],
    d.profiles.map((p) => [p.id, p.mergedInto, iso(p.createdAt)]),
  );
  await sql`INSERT INTO computed_traits (key, name, definition) SELECT k, k, '{}' FROM unnest(${COMPUTED_KEYS}::text[]) AS k`;
  await sql`INSERT INTO accounts (id) SELECT unnest(${d.accounts.map((a) => a.id)}::text[])`;
  await sql`INSERT INTO tags (key, name) SELECT k, k FROM unnest(${d.tags}::text[]) AS k`;
  const stored = { op: 'has_tag', tag: 'stored' };
  await sql`INSERT INTO audiences (key, name, rule) SELECT k, k, ${sql.json(stored)} FROM unnest(${d.audiences}::text[]) AS k`;
  // The events in PARALLEL streams; every other table in a stream of its own, all at once.
  const PARALLEL = 3;
  const eventRows = d.events.map((e, n): Cell[] => {
    const payload = json({ type: e.type, event: e.event, messageId: `m-${n}`, properties: e.properties });
    return [e.sourceId, `m-${n}`, e.type, e.event, iso(e.ts), iso(e.ts), payload, iso(e.ts), e.profileId];
  });
  const eventColumns = [
    'source_id',
    'message_id',
    'type',
    'event',
    'timestamp',
    'received_at',
    'payload',
    'processed_at',
  ];
  await Promise.all([
    ...Array.from({ length: PARALLEL }, (_, k) =>
      copy(
        sql,
        'events',
        [...eventColumns, 'profile_id'],
        eventRows.filter((_, n) => n % PARALLEL === k),
      ),
    ),
    copy(
      sql,
      'identities',
      ['key', 'type', 'value', 'profile_id', 'created_at'],
      d.identities.map((i) => [`${i.type}:${i.value}`, i.type, i.value, i.profileId, iso(i.createdAt)]),
    ),
    copy(
      sql,
      'profile_traits',
      ['profile_id', 'key', 'value', 'updated_at', 'event_id', 'source'],
      d.traits.map((t) => [t.profileId, t.key, json(t.value), at, 0, 'identify']),
    ),
    copy(
      sql,
      'computed_trait_values',
      ['profile_id', 'key', 'value', 'computed_at'],
      d.computed.map((t) => [t.profileId, t.key, json(t.value), at]),
    ),
    copy(
      sql,
      'account_traits',
      ['account_id', 'key', 'value', 'updated_at', 'event_id'],
      d.accounts.flatMap((a) => Object.entries(a.traits).map(([k, v]) => [a.id, k, json(v), at, 0])),
    ),
    copy(
      sql,
      'profile_accounts',
      ['profile_id', 'account_id', 'first_seen_at', 'last_seen_at'],
      d.profileAccounts.map((pa) => [pa.profileId, pa.accountId, at, at]),
    ),
    // Record order matters (it breaks ties of `at`): one stream, so ids follow the array.
    copy(
      sql,
      'consent_changes',
      ['profile_id', 'purpose', 'granted', 'at', 'source'],
      d.consent.map((c) => [c.profileId, c.purpose, c.granted, iso(c.at), 'api']),
    ),
    copy(
      sql,
      'subscriptions',
      ['contact', 'channel', 'topic', 'subscribed', 'source'],
      d.subscriptions.map((x) => [x.contact, x.channel, x.topic, x.subscribed, 'api']),
    ),
    copy(
      sql,
      'tag_assignments',
      ['tag', 'profile_id', 'added_at', 'added_by', 'removed_at'],
      d.tagAssignments.map((a) => [a.tag, a.profileId, iso(a.addedAt), 'api', iso(a.removedAt)]),
    ),
    copy(
      sql,
      'audience_memberships',
      ['audience', 'profile_id', 'entered_at', 'exited_at', 'entered_by'],
      d.memberships.map((m) => [m.audience, m.profileId, iso(m.enteredAt), iso(m.exitedAt), 'recompute']),
    ),
  ]);
  await sql`ANALYZE`;
}
