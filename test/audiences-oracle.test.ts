// Issue 6's required proof for the rule engine: on a generated shop (fixed seed; 11,850 live and 150
// merged profiles, ~240,000 track events over 180 days, dirty traits of every type, accounts, consent,
// subscriptions, tags, stored audiences: test/support/audience-data.ts), ~100 rules covering every
// operator, comparison, window, aggregate and time reference give the engine's memberships
// (server/src/pipeline/compute/evaluate.ts) equal to those of the plain JavaScript evaluation below —
// written from packages/core/src/rules/README.md, never from the engine — over every live profile and over
// a random scope of 300 ids (merged and unknown ids included). Each rule must also match some profiles
// and miss others, so nothing passes vacuously. A mismatch prints the rule, both counts and up to 5
// differing profiles with the facts the rule reads. AUDIENCE_SEED=n explores other datasets.
import type { Comparison, EventMatch, Rule, TimeRef, Window } from '@cairn/core';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../server/src/db/index.ts';
import { migrate } from '../server/src/db/migrate.ts';
import { evaluateRule } from '../server/src/pipeline/compute/evaluate.ts';
import {
  AUDIENCE_NOW,
  type AudienceData,
  DAY,
  type GenEvent,
  generateAudienceData,
  HOUR,
  type Json,
  loadAudienceData,
  MINUTE,
} from './support/audience-data.ts';

const SEED = Number(process.env.AUDIENCE_SEED ?? 20_260_224);
const PEOPLE = 12_000;
const SCOPE_SIZE = 300;

// ---------------------------------------------------------------------------------------------------
// The oracle: README "Semantics", read literally, on the in-memory dataset.

/** An exact decimal: n / 10^s (numeric comparisons, sums and averages without float error). */
interface Dec {
  n: bigint;
  s: number;
}
function decOf(text: string): Dec {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i.exec(text);
  if (!m) throw new Error(`not a decimal: ${text}`);
  let digits = m[2]! + (m[3] ?? '');
  let s = (m[3] ?? '').length - Number(m[4] ?? 0);
  if (s < 0) {
    digits += '0'.repeat(-s);
    s = 0;
  }
  return { n: BigInt(m[1] + digits), s };
}
const scaled = (a: Dec, s: number) => a.n * 10n ** BigInt(s - a.s);
function cmpDec(a: Dec, b: Dec): number {
  const s = Math.max(a.s, b.s);
  const x = scaled(a, s);
  const y = scaled(b, s);
  return x < y ? -1 : x > y ? 1 : 0;
}
const addDec = (a: Dec, b: Dec): Dec => {
  const s = Math.max(a.s, b.s);
  return { n: scaled(a, s) + scaled(b, s), s };
};

const NUMBER_TEXT = /^-?[0-9]+(\.[0-9]+)?$/;
const DATE_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
const isObject = (v: Json | undefined): v is { [k: string]: Json } => !!v && typeof v === 'object' && !Array.isArray(v);

/** text(v): a string as is; a number or boolean as its JSON text; otherwise none. */
function textOf(v: Json | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  return undefined;
}
/** number(v): a JSON number, or a string matching ^-?[0-9]+(\.[0-9]+)?$. */
function numberOf(v: Json | undefined): Dec | undefined {
  if (typeof v === 'number') return decOf(JSON.stringify(v));
  if (typeof v === 'string' && NUMBER_TEXT.test(v)) return decOf(v);
  return undefined;
}
const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate();
/** date(v): YYYY-MM-DD, optional T or space + HH:MM[:SS[.fff]] and zone (Z, ±HH, ±HH:MM, ±HHMM); date alone = midnight UTC; impossible = none. */
function dateOf(v: Json | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = DATE_TEXT.exec(v);
  if (!m) return undefined;
  const [y, mo, d, h = 0, mi = 0, s = 0] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((x) =>
    x === undefined ? undefined : Number(x),
  );
  if (y === 0 || mo! < 1 || mo! > 12 || d! < 1 || d! > daysIn(y!, mo!) || h > 23 || mi > 59 || s > 59) return undefined;
  let offset = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = zone.length > 3 ? Number(zone.slice(-2)) : 0;
    if (zh > 15 || zm > 59) return undefined;
    offset = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm) * MINUTE;
  }
  const ms = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  return Date.UTC(y!, mo! - 1, d!, h, mi, s, ms) - offset;
}
const lower = (s: string) => s.toLowerCase();
/** Binary (code point) order, not JavaScript's UTF-16 order. */
function cmpText(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}
const DATE_OPERAND = /^\d{4}-\d{2}-\d{2}/;

/** -1/0/1 of v against an operand, the way `<`, `between` read them; undefined when v has no such form. */
function order(v: Json | undefined, operand: Json): number | undefined {
  if (typeof operand === 'number') {
    const n = numberOf(v);
    return n && cmpDec(n, decOf(JSON.stringify(operand)));
  }
  if (typeof operand === 'string' && DATE_OPERAND.test(operand)) {
    const a = dateOf(v);
    const b = dateOf(operand);
    return a === undefined || b === undefined ? undefined : Math.sign(a - b);
  }
  if (typeof operand === 'string') {
    const t = textOf(v);
    return t === undefined ? undefined : Math.sign(cmpText(t, operand));
  }
  return undefined;
}

function equals(v: Json | undefined, value: Json): boolean | undefined {
  if (typeof value === 'number') {
    const n = numberOf(v);
    return n && cmpDec(n, decOf(JSON.stringify(value))) === 0;
  }
  const t = textOf(v);
  if (typeof value === 'boolean') return t === undefined ? undefined : lower(t) === String(value);
  return t === undefined ? undefined : lower(t) === lower(String(value));
}

const utcDay = (ms: number) => Math.floor(ms / DAY);
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
function anniversaryWithin(d: number, now: number, days: number): boolean {
  if (d > now) return false;
  const born = new Date(d);
  const today = new Date(now);
  const on = (y: number) => {
    const feb29 = born.getUTCMonth() === 1 && born.getUTCDate() === 29 && !isLeap(y);
    return utcDay(Date.UTC(y, born.getUTCMonth(), feb29 ? 28 : born.getUTCDate()));
  };
  let next = on(today.getUTCFullYear());
  if (next < utcDay(now)) next = on(today.getUTCFullYear() + 1);
  return next - utcDay(now) <= days;
}

/** Whether a value (undefined = absent) satisfies a comparison at `now`. */
function compare(v: Json | undefined, c: Comparison, now: number): boolean {
  switch (c.cmp) {
    case '=':
      return equals(v, c.value) === true;
    case '!=':
      return equals(v, c.value) === false;
    case '<':
      return (order(v, c.value) ?? 0) < 0;
    case '<=':
      return (order(v, c.value) ?? 1) <= 0;
    case '>':
      return (order(v, c.value) ?? 0) > 0;
    case '>=':
      return (order(v, c.value) ?? -1) >= 0;
    case 'between':
      return (order(v, c.value[0]) ?? -1) >= 0 && (order(v, c.value[1]) ?? 1) <= 0;
    case 'in':
      return c.value.some((x) => equals(v, x) === true);
    case 'contains': {
      if (Array.isArray(v)) return v.some((e) => textOf(e) !== undefined && lower(textOf(e)!) === lower(c.value));
      const t = textOf(v);
      return t !== undefined && lower(t).includes(lower(c.value));
    }
    case 'starts_with': {
      const t = textOf(v);
      return t !== undefined && lower(t).startsWith(lower(c.value));
    }
    case 'regex': {
      const t = textOf(v);
      return t !== undefined && new RegExp(c.value).test(t);
    }
    case 'exists':
      return v !== undefined && v !== null;
    case 'is_empty':
      return (
        v === undefined ||
        v === null ||
        v === '' ||
        (Array.isArray(v) && !v.length) ||
        (isObject(v) && !Object.keys(v).length)
      );
    case 'within_last': {
      const d = dateOf(v);
      return d !== undefined && now - c.days * DAY < d && d <= now;
    }
    case 'within_next': {
      const d = dateOf(v);
      return d !== undefined && now <= d && d < now + c.days * DAY;
    }
    case 'older_than': {
      const d = dateOf(v);
      return d !== undefined && d <= now - c.days * DAY;
    }
    case 'anniversary_within': {
      const d = dateOf(v);
      return d !== undefined && anniversaryWithin(d, now, c.days);
    }
  }
}

/** The dataset indexed per profile. */
interface Index {
  live: string[];
  merged: string[];
  traits: Map<string, Map<string, Json>>;
  computed: Map<string, Map<string, Json>>;
  accounts: Map<string, Record<string, Json>[]>;
  accountIds: Map<string, string[]>;
  events: Map<string, Map<string, GenEvent[]>>;
  tags: Map<string, Set<string>>;
  audiences: Map<string, Set<string>>;
  consent: Map<string, AudienceData['consent']>;
  contact: Map<string, { email?: string; sms?: string; other: string }>;
  subscriptions: Map<string, boolean>;
}

/** What event leaves read: a track event's name, or a page or screen name. */
const EVENT_TYPES = new Set(['track', 'page', 'screen']);

function indexData(d: AudienceData): Index {
  const bucket = <V>(m: Map<string, V>, k: string, make: () => V): V => {
    if (!m.has(k)) m.set(k, make());
    return m.get(k)!;
  };
  const ix: Index = {
    live: d.profiles.filter((p) => !p.mergedInto).map((p) => p.id),
    merged: d.profiles.filter((p) => p.mergedInto).map((p) => p.id),
    traits: new Map(),
    computed: new Map(),
    accounts: new Map(),
    accountIds: new Map(),
    events: new Map(),
    tags: new Map(),
    audiences: new Map(),
    consent: new Map(),
    contact: new Map(),
    subscriptions: new Map(),
  };
  for (const t of d.traits) bucket(ix.traits, t.profileId, () => new Map()).set(t.key, t.value);
  for (const t of d.computed) bucket(ix.computed, t.profileId, () => new Map()).set(t.key, t.value);
  const accounts = new Map(d.accounts.map((a) => [a.id, a.traits]));
  for (const pa of d.profileAccounts) {
    bucket(ix.accounts, pa.profileId, () => []).push(accounts.get(pa.accountId)!);
    bucket(ix.accountIds, pa.profileId, () => []).push(pa.accountId);
  }
  for (const e of d.events) {
    if (!EVENT_TYPES.has(e.type) || !e.profileId || !e.event) continue;
    bucket(
      bucket(ix.events, e.profileId, () => new Map()),
      e.event,
      () => [],
    ).push(e);
  }
  for (const a of d.tagAssignments) if (a.removedAt === null) bucket(ix.tags, a.profileId, () => new Set()).add(a.tag);
  for (const m of d.memberships)
    if (m.exitedAt === null) bucket(ix.audiences, m.profileId, () => new Set()).add(m.audience);
  for (const c of d.consent) bucket(ix.consent, c.profileId, () => []).push(c);
  // Contact points: the trait, else the first identity (by creation); other channels: userId, else the profile.
  const firstIdentity = new Map<string, string>();
  for (const i of [...d.identities].sort(
    (a, b) => a.createdAt - b.createdAt || cmpText(a.type + a.value, b.type + b.value),
  )) {
    if (!firstIdentity.has(`${i.profileId} ${i.type}`)) firstIdentity.set(`${i.profileId} ${i.type}`, i.value);
  }
  for (const p of d.profiles) {
    const traits = ix.traits.get(p.id);
    const email = (traits?.get('email') as string | undefined) ?? firstIdentity.get(`${p.id} email`);
    const phone = (traits?.get('phone') as string | undefined) ?? firstIdentity.get(`${p.id} phone`);
    const userId = firstIdentity.get(`${p.id} userId`);
    ix.contact.set(p.id, {
      ...(email === undefined ? {} : { email: `email:${lower(email)}` }),
      ...(phone === undefined ? {} : { sms: `phone:${phone}` }),
      other: userId === undefined ? `profile:${p.id}` : `userId:${userId}`,
    });
  }
  for (const s of d.subscriptions) ix.subscriptions.set(`${s.contact} ${s.channel} ${s.topic}`, s.subscribed);
  return ix;
}

const UNIT = { minutes: MINUTE, hours: HOUR, days: DAY } as const;
function inWindow(ts: number, w: Window | undefined, now: number): boolean {
  if (!w) return true;
  if ('last' in w) return now - w.last * UNIT[w.unit] < ts && ts <= now;
  return dateOf(w.from)! <= ts && ts < dateOf(w.to)!;
}
const atRef = (r: TimeRef, now: number) => ('daysAgo' in r ? now - r.daysAgo * DAY : dateOf(r.date)!);

function descend(v: Json | undefined, path: readonly string[]): Json | undefined {
  for (const key of path) v = isObject(v) ? v[key] : undefined;
  return v;
}
const propertyOf = (props: Record<string, Json>, path: string) => descend(props, path.split('.'));
/** The profile's track events named `event` that pass every `where` filter. */
function kept(ix: Index, id: string, m: EventMatch, now: number): GenEvent[] {
  const all = ix.events.get(id)?.get(m.event) ?? [];
  return all.filter((e) => (m.where ?? []).every((f) => compare(propertyOf(e.properties, f.property), f, now)));
}

function holds(rule: Rule, id: string, ix: Index, now: number): boolean {
  switch (rule.op) {
    case 'and':
      return rule.rules.every((r) => holds(r, id, ix, now));
    case 'or':
      return rule.rules.some((r) => holds(r, id, ix, now));
    case 'not':
      return !holds(rule.rule, id, ix, now);
    case 'trait':
      return compare(ix.traits.get(id)?.get(rule.trait), rule, now);
    case 'trait_index':
      // Written by the server for traits encrypted at rest; this dataset has none (tested in pii-at-rest).
      throw new Error('trait_index is not part of the oracle dataset');
    case 'computed': {
      // `key.path` reads inside an object value.
      const [key, ...path] = rule.trait.split('.');
      return compare(descend(ix.computed.get(id)?.get(key!), path), rule, now);
    }
    case 'account':
      return (ix.accounts.get(id) ?? []).some((traits) => compare(traits[rule.trait], rule, now));
    case 'performed': {
      const n = kept(ix, id, rule, now).filter((e) => inWindow(e.ts, rule.within, now)).length;
      return n >= (rule.min ?? (rule.max === undefined ? 1 : 0)) && (rule.max === undefined || n <= rule.max);
    }
    case 'aggregate': {
      const events = kept(ix, id, rule, now).filter((e) => inWindow(e.ts, rule.within, now));
      const target = (v: number) => decOf(JSON.stringify(v));
      // The result as a fraction num/den (den > 0), compared by cross-multiplying.
      let num: Dec;
      let den = 1n;
      if (rule.fn === 'count') num = { n: BigInt(events.length), s: 0 };
      else {
        const values = events.flatMap((e) => numberOf(propertyOf(e.properties, rule.property!)) ?? []);
        if (rule.fn === 'sum') num = values.reduce(addDec, { n: 0n, s: 0 });
        else if (!values.length) return false;
        else if (rule.fn === 'avg') {
          num = values.reduce(addDec, { n: 0n, s: 0 });
          den = BigInt(values.length);
        } else num = values.reduce((a, b) => (cmpDec(a, b) < 0 === (rule.fn === 'min') ? a : b));
      }
      const against = (v: number) => {
        const t = target(v);
        return cmpDec(num, { n: t.n * den, s: t.s });
      };
      switch (rule.cmp) {
        case 'between':
          return against(rule.value[0]) >= 0 && against(rule.value[1]) <= 0;
        case '=':
          return against(rule.value) === 0;
        case '!=':
          return against(rule.value) !== 0;
        case '<':
          return against(rule.value) < 0;
        case '<=':
          return against(rule.value) <= 0;
        case '>':
          return against(rule.value) > 0;
        case '>=':
          return against(rule.value) >= 0;
      }
      return false;
    }
    case 'occurrence': {
      const times = kept(ix, id, rule, now).map((e) => e.ts);
      if (!times.length) return false;
      const t = rule.which === 'first' ? Math.min(...times) : Math.max(...times);
      return (!rule.before || t < atRef(rule.before, now)) && (!rule.after || t >= atRef(rule.after, now));
    }
    case 'has_tag':
      return ix.tags.get(id)?.has(rule.tag) ?? false;
    case 'in_audience':
      return ix.audiences.get(id)?.has(rule.audience) ?? false;
    case 'consent': {
      // The latest choice by time, then by record order (the array's order).
      const changes = (ix.consent.get(id) ?? []).filter((c) => c.purpose === rule.purpose);
      let latest: (typeof changes)[number] | undefined;
      for (const c of changes) if (!latest || c.at >= latest.at) latest = c;
      const state = !latest ? 'unknown' : latest.granted ? 'granted' : 'denied';
      return state === rule.state;
    }
    case 'subscription': {
      const points = ix.contact.get(id)!;
      const contact = rule.channel === 'email' ? points.email : rule.channel === 'sms' ? points.sms : points.other;
      if (contact === undefined) return false;
      const out =
        ix.subscriptions.get(`${contact} ${rule.channel} `) === false ||
        (rule.topic !== undefined && ix.subscriptions.get(`${contact} ${rule.channel} ${rule.topic}`) === false);
      return out === (rule.state === 'unsubscribed');
    }
  }
}

/** The members the oracle finds among `ids` (merged or unknown ids are never members). */
function oracle(ix: Index, rule: Rule, now: Date, ids: readonly string[]): Set<string> {
  const live = new Set(ix.live);
  return new Set(ids.filter((id) => live.has(id) && holds(rule, id, ix, now.getTime())));
}

// ---------------------------------------------------------------------------------------------------
// The rules: every op and cmp, windows, filters, aggregates, occurrences, nesting, the brief's examples.

interface Case {
  name: string;
  rule: Rule;
  /** Another `now` (anniversaries across a year end and in a leap year). */
  now?: Date;
}
type Cmp = Comparison;
const trait = (t: string, c: Cmp): Rule => ({ op: 'trait', trait: t, ...c });
const ORDER = 'Order Completed';
const VIEW = 'Product Viewed';
const CART = 'Added to Cart';
const ordered = (within?: Window, min?: number): Rule => ({
  op: 'performed',
  event: ORDER,
  ...(within && { within }),
  ...(min !== undefined && { min }),
});
const days = (last: number): Window => ({ last, unit: 'days' });

const RULES: Case[] = [
  // Traits: equality in each operand type, and != on missing or formless values.
  { name: 'trait = string, any case', rule: trait('plan', { cmp: '=', value: 'PRO' }) },
  { name: 'trait != string (false when missing, null, array)', rule: trait('plan', { cmp: '!=', value: 'free' }) },
  {
    name: 'not (trait = string) includes the missing',
    rule: { op: 'not', rule: trait('plan', { cmp: '=', value: 'free' }) },
  },
  { name: 'trait = number (numbers and numeric strings)', rule: trait('age', { cmp: '=', value: 42 }) },
  { name: 'trait != number (false without a number form)', rule: trait('age', { cmp: '!=', value: 42 }) },
  { name: 'trait = true (JSON boolean or text)', rule: trait('vip', { cmp: '=', value: true }) },
  { name: 'trait != false', rule: trait('vip', { cmp: '!=', value: false }) },
  { name: 'trait = string on booleans and numbers', rule: trait('vip', { cmp: '=', value: 'yes' }) },
  { name: 'trait > number', rule: trait('age', { cmp: '>', value: 65 }) },
  { name: 'trait <= decimal', rule: trait('ltv', { cmp: '<=', value: 99.5 }) },
  { name: 'trait < 0 (negative numbers and strings)', rule: trait('score', { cmp: '<', value: 0 }) },
  { name: 'trait between numbers', rule: trait('ltv', { cmp: 'between', value: [100, 500] }) },
  { name: 'trait < date-time', rule: trait('last_login', { cmp: '<', value: '2026-01-01T00:00:00Z' }) },
  { name: 'trait between dates', rule: trait('signup_date', { cmp: 'between', value: ['2025-09-01', '2025-12-31'] }) },
  { name: 'trait >= text (code point order)', rule: trait('first_name', { cmp: '>=', value: 'M' }) },
  { name: 'trait < text', rule: trait('country', { cmp: '<', value: 'G' }) },
  { name: 'trait in mixed values', rule: trait('plan', { cmp: 'in', value: ['team', 'enterprise', 42] }) },
  { name: 'trait in numbers and text', rule: trait('age', { cmp: 'in', value: [18, 21, '30'] }) },
  {
    name: 'trait contains (array element or substring)',
    rule: trait('interests', { cmp: 'contains', value: 'running' }),
  },
  { name: 'trait contains true (array of mixed types)', rule: trait('interests', { cmp: 'contains', value: 'TRUE' }) },
  { name: 'trait contains, unicode any case', rule: trait('first_name', { cmp: 'contains', value: 'AN' }) },
  { name: 'trait starts_with accented', rule: trait('first_name', { cmp: 'starts_with', value: 'é' }) },
  { name: 'trait regex (case-sensitive)', rule: trait('code', { cmp: 'regex', value: '^[A-Z]{2}-[0-9]{4}$' }) },
  { name: 'trait regex on a number', rule: trait('age', { cmp: 'regex', value: '^4[0-9]$' }) },
  { name: 'trait exists ("" [] {} exist; null does not)', rule: trait('nickname', { cmp: 'exists' }) },
  { name: 'trait is_empty (absent, null, "", [], {})', rule: trait('nickname', { cmp: 'is_empty' }) },
  { name: 'not trait is_empty on objects', rule: { op: 'not', rule: trait('address', { cmp: 'is_empty' }) } },
  { name: 'trait is_empty on arrays', rule: trait('interests', { cmp: 'is_empty' }) },
  { name: 'trait within_last', rule: trait('last_login', { cmp: 'within_last', days: 7 }) },
  { name: 'trait within_next', rule: trait('renewal_date', { cmp: 'within_next', days: 30 }) },
  { name: 'trait older_than', rule: trait('signup_date', { cmp: 'older_than', days: 90 }) },
  {
    name: 'birthday within 7 days (29 Feb on the 28th)',
    rule: trait('birthday', { cmp: 'anniversary_within', days: 7 }),
  },
  { name: 'birthday today', rule: trait('birthday', { cmp: 'anniversary_within', days: 0 }) },
  {
    name: 'birthday within 7 days across a year end',
    rule: trait('birthday', { cmp: 'anniversary_within', days: 7 }),
    now: new Date('2027-12-29T08:00:00Z'),
  },
  {
    name: 'birthday within 3 days in a leap year',
    rule: trait('birthday', { cmp: 'anniversary_within', days: 3 }),
    now: new Date('2028-02-27T10:00:00Z'),
  },
  // Computed traits and accounts (any account).
  { name: 'computed >= number', rule: { op: 'computed', trait: 'order_count', cmp: '>=', value: 3 } },
  { name: 'computed = string', rule: { op: 'computed', trait: 'favorite_category', cmp: '=', value: 'shoes' } },
  { name: 'computed between', rule: { op: 'computed', trait: 'churn_risk', cmp: 'between', value: [0.5, 1] } },
  {
    name: 'computed key.path inside an object',
    rule: { op: 'computed', trait: 'rfm.segment', cmp: '=', value: 'champions' },
  },
  { name: 'account = string', rule: { op: 'account', trait: 'plan', cmp: '=', value: 'enterprise' } },
  { name: 'account >= number', rule: { op: 'account', trait: 'seats', cmp: '>=', value: 50 } },
  {
    name: 'account != (any account; none = false)',
    rule: { op: 'account', trait: 'industry', cmp: '!=', value: 'retail' },
  },
  { name: 'not account exists', rule: { op: 'not', rule: { op: 'account', trait: 'plan', cmp: 'exists' } } },
  // performed: windows in each unit, fixed dates, min/max, where filters.
  {
    name: 'added to cart in the last 24 h and no order since',
    rule: {
      op: 'and',
      rules: [
        { op: 'performed', event: CART, within: { last: 24, unit: 'hours' } },
        { op: 'not', rule: ordered({ last: 24, unit: 'hours' }) },
      ],
    },
  },
  {
    name: 'performed within 90 minutes',
    rule: { op: 'performed', event: VIEW, within: { last: 90, unit: 'minutes' } },
  },
  { name: 'performed within 6 hours', rule: { op: 'performed', event: 'Search', within: { last: 6, unit: 'hours' } } },
  {
    name: 'performed min 3 max 10 in 30 days',
    rule: { op: 'performed', event: VIEW, within: days(30), min: 3, max: 10 },
  },
  { name: 'performed max 0 (never)', rule: { op: 'performed', event: ORDER, min: 0, max: 0 } },
  {
    name: 'performed max 1 without min (at most once: 0 counts)',
    rule: { op: 'performed', event: ORDER, within: days(60), max: 1 },
  },
  { name: 'performed from/to dates', rule: ordered({ from: '2025-11-28', to: '2025-12-01' }) },
  {
    name: 'performed from/to times with zones',
    rule: ordered({ from: '2026-02-01T00:00:00Z', to: '2026-02-24T15:00:00+01:00' }),
  },
  { name: 'performed, a recent sign-up', rule: { op: 'performed', event: 'Signed Up', within: days(14) } },
  { name: 'performed, a page name', rule: { op: 'performed', event: 'Product', within: days(7), min: 2 } },
  { name: 'performed, a screen name', rule: { op: 'performed', event: 'Checkout', within: days(30) } },
  { name: 'performed, internal source events count', rule: { op: 'performed', event: 'Unsubscribed' } },
  {
    name: 'performed where = and is_empty',
    rule: {
      op: 'performed',
      event: ORDER,
      within: days(60),
      where: [
        { property: 'category', cmp: '=', value: 'shoes' },
        { property: 'coupon', cmp: 'is_empty' },
      ],
    },
  },
  {
    name: 'performed where nested path, min 2',
    rule: { op: 'performed', event: ORDER, min: 2, where: [{ property: 'shipping.country', cmp: '=', value: 'fr' }] },
  },
  {
    name: 'performed where regex, min 5',
    rule: {
      op: 'performed',
      event: VIEW,
      min: 5,
      where: [{ property: 'product_id', cmp: 'regex', value: '^SKU-1[0-9]{3}$' }],
    },
  },
  {
    name: 'performed where >= on numeric strings',
    rule: { op: 'performed', event: ORDER, where: [{ property: 'items', cmp: '>=', value: 3 }] },
  },
  {
    name: 'performed where in',
    rule: {
      op: 'performed',
      event: ORDER,
      within: days(90),
      where: [{ property: 'category', cmp: 'in', value: ['shoes', 'BAGS'] }],
    },
  },
  {
    name: 'performed where != (missing coupon fails)',
    rule: { op: 'performed', event: ORDER, where: [{ property: 'coupon', cmp: '!=', value: 'SAVE10' }] },
  },
  {
    name: 'performed where exists (null fails)',
    rule: { op: 'performed', event: ORDER, where: [{ property: 'coupon', cmp: 'exists' }] },
  },
  {
    name: 'performed where between',
    rule: { op: 'performed', event: ORDER, min: 2, where: [{ property: 'total', cmp: 'between', value: [50, 100] }] },
  },
  {
    name: 'performed where starts_with, nested unicode',
    rule: {
      op: 'performed',
      event: VIEW,
      min: 3,
      where: [{ property: 'product.brand', cmp: 'starts_with', value: 'über' }],
    },
  },
  {
    name: 'performed where contains',
    rule: { op: 'performed', event: 'Search', where: [{ property: 'query', cmp: 'contains', value: 'SHOE' }] },
  },
  // aggregate: every fn; sum of nothing is 0, avg/min/max of nothing is false.
  {
    name: 'count in 90 days >= 3',
    rule: { op: 'aggregate', fn: 'count', event: ORDER, within: days(90), cmp: '>=', value: 3 },
  },
  { name: 'count = 0 (no events at all)', rule: { op: 'aggregate', fn: 'count', event: ORDER, cmp: '=', value: 0 } },
  {
    name: 'count != 0 in 48 hours',
    rule: { op: 'aggregate', fn: 'count', event: VIEW, within: { last: 48, unit: 'hours' }, cmp: '!=', value: 0 },
  },
  {
    name: 'sum in 180 days >= 1000',
    rule: { op: 'aggregate', fn: 'sum', property: 'total', event: ORDER, within: days(180), cmp: '>=', value: 1000 },
  },
  {
    name: 'sum of nothing is 0',
    rule: { op: 'aggregate', fn: 'sum', property: 'total', event: ORDER, within: days(7), cmp: '<=', value: 0 },
  },
  {
    name: 'sum = integer',
    rule: { op: 'aggregate', fn: 'sum', property: 'quantity', event: CART, within: days(30), cmp: '=', value: 2 },
  },
  { name: 'avg >= 500', rule: { op: 'aggregate', fn: 'avg', property: 'total', event: ORDER, cmp: '>=', value: 500 } },
  {
    name: 'avg between, with a where',
    rule: {
      op: 'aggregate',
      fn: 'avg',
      property: 'total',
      event: ORDER,
      where: [{ property: 'coupon', cmp: 'exists' }],
      cmp: 'between',
      value: [100, 300],
    },
  },
  { name: 'min < 20', rule: { op: 'aggregate', fn: 'min', property: 'total', event: ORDER, cmp: '<', value: 20 } },
  {
    name: 'max >= 5 on numeric strings',
    rule: { op: 'aggregate', fn: 'max', property: 'items', event: ORDER, cmp: '>=', value: 5 },
  },
  {
    name: 'max > in 24 hours',
    rule: {
      op: 'aggregate',
      fn: 'max',
      property: 'price',
      event: VIEW,
      within: { last: 24, unit: 'hours' },
      cmp: '>',
      value: 250,
    },
  },
  // occurrence: first/last, before/after, daysAgo/date; the window never applies.
  {
    name: 'first order in the last 30 days',
    rule: { op: 'occurrence', which: 'first', event: ORDER, after: { daysAgo: 30 } },
  },
  {
    name: 'last order before 60 days ago',
    rule: { op: 'occurrence', which: 'last', event: ORDER, before: { daysAgo: 60 } },
  },
  {
    name: 'first sign-up between dates',
    rule: {
      op: 'occurrence',
      which: 'first',
      event: 'Signed Up',
      after: { date: '2025-12-01' },
      before: { date: '2026-01-15' },
    },
  },
  {
    name: 'last view of a category in 2 days',
    rule: {
      op: 'occurrence',
      which: 'last',
      event: VIEW,
      after: { daysAgo: 2 },
      where: [{ property: 'category', cmp: 'starts_with', value: 'ÉLEC' }],
    },
  },
  {
    name: 'last big order before a date',
    rule: {
      op: 'occurrence',
      which: 'last',
      event: ORDER,
      before: { date: '2025-12-01' },
      where: [{ property: 'total', cmp: '>=', value: 200 }],
    },
  },
  {
    name: 'last view before now (future events count)',
    rule: { op: 'occurrence', which: 'last', event: VIEW, before: { daysAgo: 0 } },
  },
  {
    name: 'performed where date within_next',
    rule: { op: 'performed', event: ORDER, where: [{ property: 'delivery_date', cmp: 'within_next', days: 3 }] },
  },
  {
    name: 'performed where date older_than, within_last',
    rule: {
      op: 'performed',
      event: ORDER,
      where: [
        { property: 'delivery_date', cmp: 'older_than', days: 100 },
        { property: 'delivery_date', cmp: 'within_last', days: 120 },
      ],
    },
  },
  { name: 'occurrence without bounds', rule: { op: 'occurrence', which: 'first', event: 'Search' } },
  // Tags, audiences, consent, subscriptions.
  { name: 'has_tag', rule: { op: 'has_tag', tag: 'beta_tester' } },
  {
    name: 'has_tag or has_tag',
    rule: {
      op: 'or',
      rules: [
        { op: 'has_tag', tag: 'wholesale' },
        { op: 'has_tag', tag: 'vip_manual' },
      ],
    },
  },
  { name: 'in_audience', rule: { op: 'in_audience', audience: 'high_value' } },
  { name: 'not in_audience', rule: { op: 'not', rule: { op: 'in_audience', audience: 'newsletter_engaged' } } },
  { name: 'consent granted', rule: { op: 'consent', purpose: 'marketing', state: 'granted' } },
  { name: 'consent denied', rule: { op: 'consent', purpose: 'analytics', state: 'denied' } },
  { name: 'consent unknown', rule: { op: 'consent', purpose: 'personalization', state: 'unknown' } },
  { name: 'email unsubscribed (every topic)', rule: { op: 'subscription', channel: 'email', state: 'unsubscribed' } },
  {
    name: 'email topic unsubscribed',
    rule: { op: 'subscription', channel: 'email', topic: 'newsletter', state: 'unsubscribed' },
  },
  { name: 'email subscribed', rule: { op: 'subscription', channel: 'email', state: 'subscribed' } },
  {
    name: 'email topic subscribed',
    rule: { op: 'subscription', channel: 'email', topic: 'promotions', state: 'subscribed' },
  },
  { name: 'sms unsubscribed', rule: { op: 'subscription', channel: 'sms', state: 'unsubscribed' } },
  { name: 'sms subscribed', rule: { op: 'subscription', channel: 'sms', topic: 'alerts', state: 'subscribed' } },
  {
    name: 'push topic unsubscribed (userId or profile)',
    rule: { op: 'subscription', channel: 'push', topic: 'offers', state: 'unsubscribed' },
  },
  { name: 'push unsubscribed', rule: { op: 'subscription', channel: 'push', state: 'unsubscribed' } },
  // The brief's audiences, and nesting.
  {
    name: 'RFM champions',
    rule: {
      op: 'and',
      rules: [
        ordered(days(30)),
        { op: 'aggregate', fn: 'count', event: ORDER, within: days(180), cmp: '>=', value: 4 },
        { op: 'aggregate', fn: 'sum', property: 'total', event: ORDER, within: days(180), cmp: '>=', value: 800 },
      ],
    },
  },
  {
    name: 'dormant high AOV',
    rule: {
      op: 'and',
      rules: [
        { op: 'not', rule: ordered(days(90)) },
        { op: 'aggregate', fn: 'avg', property: 'total', event: ORDER, cmp: '>=', value: 500 },
        ordered(days(180), 2),
      ],
    },
  },
  {
    name: 'registered 7+ days ago (trait) with no first order',
    rule: { op: 'and', rules: [trait('signup_date', { cmp: 'older_than', days: 7 }), { op: 'not', rule: ordered() }] },
  },
  {
    name: 'registered 7+ days ago (event) with no first order',
    rule: {
      op: 'and',
      rules: [
        { op: 'occurrence', which: 'first', event: 'Signed Up', before: { daysAgo: 7 } },
        { op: 'not', rule: ordered() },
      ],
    },
  },
  {
    name: 'birthday soon, marketing allowed, reachable by email',
    rule: {
      op: 'and',
      rules: [
        trait('birthday', { cmp: 'anniversary_within', days: 7 }),
        { op: 'not', rule: { op: 'consent', purpose: 'marketing', state: 'denied' } },
        { op: 'subscription', channel: 'email', state: 'subscribed' },
      ],
    },
  },
  {
    name: 'nested and/or/not',
    rule: {
      op: 'or',
      rules: [
        {
          op: 'and',
          rules: [
            { op: 'has_tag', tag: 'wholesale' },
            { op: 'account', trait: 'plan', cmp: 'starts_with', value: 'ENTER' },
          ],
        },
        {
          op: 'and',
          rules: [
            { op: 'in_audience', audience: 'newsletter_engaged' },
            { op: 'not', rule: { op: 'or', rules: [trait('vip', { cmp: '=', value: true }), ordered(days(30))] } },
            { op: 'performed', event: VIEW, within: days(7) },
          ],
        },
      ],
    },
  },
];

/** Everything a rule tree uses, to prove the list covers the language. */
function coverage(rules: readonly Rule[]): Set<string> {
  const seen = new Set<string>();
  const window = (w: Window | undefined) => w && seen.add('last' in w ? `unit:${w.unit}` : 'window:from-to');
  const walk = (r: Rule): void => {
    seen.add(`op:${r.op}`);
    if (r.op === 'and' || r.op === 'or') r.rules.forEach(walk);
    else if (r.op === 'not') walk(r.rule);
    else if (r.op === 'trait' || r.op === 'computed' || r.op === 'account') seen.add(`cmp:${r.cmp}`);
    else if (r.op === 'consent' || r.op === 'subscription') seen.add(`${r.op}:${r.state}`);
    if ('where' in r) for (const f of r.where ?? []) seen.add(`cmp:${f.cmp}`).add('where');
    if (r.op === 'performed') {
      window(r.within);
      if (r.min !== undefined) seen.add('performed:min');
      if (r.max !== undefined) seen.add('performed:max');
    }
    if (r.op === 'aggregate') seen.add(`fn:${r.fn}`).add(`aggregate:${r.cmp}`) && window(r.within);
    if (r.op === 'occurrence') {
      seen.add(`which:${r.which}`);
      for (const [side, ref] of [
        ['before', r.before],
        ['after', r.after],
      ] as const) {
        if (ref) seen.add(`${side}:${'daysAgo' in ref ? 'daysAgo' : 'date'}`);
      }
    }
  };
  rules.forEach(walk);
  return seen;
}
const MUST_COVER = [
  ...['and', 'or', 'not', 'trait', 'computed', 'account', 'performed', 'aggregate', 'occurrence'].map((o) => `op:${o}`),
  ...['has_tag', 'in_audience', 'consent', 'subscription'].map((o) => `op:${o}`),
  ...['=', '!=', '<', '<=', '>', '>=', 'between', 'in', 'contains', 'starts_with', 'regex', 'exists', 'is_empty'].map(
    (c) => `cmp:${c}`,
  ),
  ...['within_last', 'within_next', 'older_than', 'anniversary_within'].map((c) => `cmp:${c}`),
  ...['count', 'sum', 'avg', 'min', 'max'].map((f) => `fn:${f}`),
  ...['=', '!=', '<', '<=', '>', '>=', 'between'].map((c) => `aggregate:${c}`),
  ...['unit:minutes', 'unit:hours', 'unit:days', 'window:from-to', 'performed:min', 'performed:max', 'where'],
  ...['which:first', 'which:last', 'before:daysAgo', 'before:date', 'after:daysAgo', 'after:date'],
  ...['consent:granted', 'consent:denied', 'consent:unknown', 'subscription:subscribed', 'subscription:unsubscribed'],
];

// ---------------------------------------------------------------------------------------------------
// Diagnosis: what a differing profile holds, limited to the facts the rule reads.

function decText(d: Dec): string {
  const digits = (d.n < 0n ? -d.n : d.n).toString().padStart(d.s + 1, '0');
  return `${d.n < 0n ? '-' : ''}${d.s ? `${digits.slice(0, -d.s)}.${digits.slice(-d.s)}` : digits}`;
}
/** A value and the forms the oracle reads from it. */
function forms(v: Json | undefined): string {
  if (v === undefined) return '(absent)';
  const [t, n, d] = [textOf(v), numberOf(v), dateOf(v)];
  const text = t === undefined ? 'none' : JSON.stringify(t);
  return `${JSON.stringify(v)} (text ${text}, number ${n ? decText(n) : 'none'}, date ${d === undefined ? 'none' : new Date(d).toISOString()})`;
}

function facts(d: AudienceData, ix: Index, id: string, rule: Rule, now: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const note = (key: string, value: unknown) => {
    out[key] = value;
  };
  const walk = (r: Rule): void => {
    if (r.op === 'and' || r.op === 'or') r.rules.forEach(walk);
    if (r.op === 'not') walk(r.rule);
    if (r.op === 'trait') note(`trait ${r.trait}`, forms(ix.traits.get(id)?.get(r.trait)));
    if (r.op === 'computed') note(`computed ${r.trait}`, forms(ix.computed.get(id)?.get(r.trait.split('.')[0]!)));
    if (r.op === 'account') {
      note(
        `accounts ${r.trait}`,
        (ix.accountIds.get(id) ?? []).map((a, k) => [a, ix.accounts.get(id)![k]![r.trait] ?? '(absent)']),
      );
    }
    if (r.op === 'performed' || r.op === 'aggregate' || r.op === 'occurrence') {
      const all = ix.events.get(id)?.get(r.event) ?? [];
      const shown = kept(ix, id, r, now)
        .sort((a, b) => b.ts - a.ts)
        .slice(0, 12)
        .map(
          (e) =>
            `${e.type} ${new Date(e.ts).toISOString()} (${((now - e.ts) / DAY).toFixed(3)} d ago) ${JSON.stringify(e.properties)}`,
        );
      const others = d.events.filter((e) => e.profileId === id && e.event === r.event && !EVENT_TYPES.has(e.type));
      note(`events ${r.event}`, {
        all: all.length,
        keptByWhere: kept(ix, id, r, now).length,
        latestKept: shown,
        otherTypes: others.map((e) => `${e.type} ${new Date(e.ts).toISOString()}`),
      });
    }
    if (r.op === 'has_tag')
      note(
        `tag ${r.tag}`,
        d.tagAssignments.filter((a) => a.profileId === id && a.tag === r.tag),
      );
    if (r.op === 'in_audience')
      note(
        `audience ${r.audience}`,
        d.memberships.filter((m) => m.profileId === id && m.audience === r.audience),
      );
    if (r.op === 'consent') {
      const changes = (ix.consent.get(id) ?? []).filter((c) => c.purpose === r.purpose);
      note(
        `consent ${r.purpose} (record order)`,
        changes.map((c) => `${new Date(c.at).toISOString()} ${c.granted}`),
      );
    }
    if (r.op === 'subscription') {
      const identities = d.identities.filter((i) => i.profileId === id);
      const email = ix.traits.get(id)?.get('email');
      // Every address the person could be reached at, in any case: the rows that might be (wrongly) used.
      const points = new Set(
        [...Object.values(ix.contact.get(id)!), ...identities.map((i) => `${i.type}:${i.value}`), `email:${email}`].map(
          lower,
        ),
      );
      note('contact points', ix.contact.get(id));
      note(
        'identities',
        identities.map((i) => `${i.type}:${i.value} @${new Date(i.createdAt).toISOString()}`),
      );
      note(
        `subscriptions ${r.channel}`,
        d.subscriptions.filter((s) => s.channel === r.channel && points.has(lower(s.contact))),
      );
    }
  };
  walk(rule);
  return out;
}

function mismatchReport(
  d: AudienceData,
  ix: Index,
  c: Case,
  now: Date,
  scope: string,
  engine: Set<string>,
  expected: Set<string>,
): string {
  const missing = [...expected].filter((id) => !engine.has(id));
  const extra = [...engine].filter((id) => !expected.has(id));
  const merged = new Set(ix.merged);
  const lines = [
    `rule "${c.name}" (${scope}) at ${now.toISOString()}: ${JSON.stringify(c.rule)}`,
    `engine ${engine.size} members, oracle ${expected.size}; ${missing.length} only in the oracle, ${extra.length} only in the engine`,
  ];
  for (const [label, ids] of [
    ['oracle says member, engine not', missing],
    ['engine says member, oracle not', extra],
  ] as const) {
    for (const id of ids.slice(0, 5)) {
      const kind = merged.has(id) ? ' (MERGED profile)' : ix.contact.has(id) ? '' : ' (UNKNOWN id)';
      lines.push(
        `- ${label}: ${id}${kind}\n  ${JSON.stringify(facts(d, ix, id, c.rule, now.getTime()), null, 1).replaceAll('\n', '\n  ')}`,
      );
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------

describe('audience rules: the SQL engine against an independent evaluation', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }
  const data = generateAudienceData(SEED, PEOPLE);
  const ix = indexData(data);
  let db: TestDatabase;
  let sql: Sql;

  // A scope of ~300 ids: live and merged profiles, and ids that are no profile at all.
  let state = SEED;
  const next = () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 4_294_967_296;
  };
  const all = data.profiles.map((p) => p.id);
  const scope = [
    ...Array.from({ length: SCOPE_SIZE - 20 }, () => all[Math.floor(next() * all.length)]!),
    ...ix.merged.slice(0, 10),
    ...Array.from({ length: 10 }, (_, k) => `00000000-0000-4000-8000-${String(k).padStart(12, '0')}`),
  ];

  beforeAll(async () => {
    db = await createTestDatabase('audiences-oracle.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 4, onnotice: () => {} }) as unknown as Sql;
    await migrate(sql);
    await loadAudienceData(sql, data);
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('the dataset is as large and as varied as promised', async () => {
    const now = AUDIENCE_NOW.getTime();
    const live = new Set(ix.live);
    const tracked = data.events.filter((e) => e.type === 'track' && e.profileId && live.has(e.profileId));
    expect(ix.live.length).toBeGreaterThanOrEqual(10_000);
    expect(ix.merged.length).toBeGreaterThan(0);
    expect(tracked.length).toBeGreaterThanOrEqual(200_000);
    const first = tracked.reduce((min, e) => Math.min(min, e.ts), now);
    expect(first).toBeGreaterThanOrEqual(now - 180 * DAY);
    expect(first).toBeLessThan(now - 179 * DAY);
    const [row] = await sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM events WHERE type = 'track' AND profile_id IS NOT NULL`;
    expect(row!.n).toBe(data.events.filter((e) => e.type === 'track' && e.profileId).length);
    // Consent ties are broken by record order: the ids must follow the generated order.
    const consent = await sql<
      { p: string; g: boolean }[]
    >`SELECT profile_id AS p, granted AS g FROM consent_changes ORDER BY id`;
    expect(consent.map((c) => `${c.p}${c.g}`)).toEqual(data.consent.map((c) => `${c.profileId}${c.granted}`));
  });

  it('the rules cover every operator, comparison, aggregate, window and time reference', () => {
    const seen = coverage(RULES.map((c) => c.rule));
    expect(MUST_COVER.filter((k) => !seen.has(k))).toEqual([]);
    expect(RULES.length).toBeGreaterThanOrEqual(30);
  });

  it.each(RULES)('$name', async (c) => {
    const now = c.now ?? AUDIENCE_NOW;
    const expected = oracle(ix, c.rule, now, ix.live);
    // Never vacuous: some live profiles match, some do not.
    expect(expected.size, `"${c.name}" matches no profile: tune the data or the rule`).toBeGreaterThan(0);
    expect(expected.size, `"${c.name}" matches every profile: tune the data or the rule`).toBeLessThan(ix.live.length);
    const engine = await evaluateRule(sql, c.rule, { now });
    const same = engine.size === expected.size && [...engine].every((id) => expected.has(id));
    if (!same) expect.fail(mismatchReport(data, ix, c, now, 'every live profile', engine, expected));
    const scoped = await evaluateRule(sql, c.rule, { now, profileIds: scope });
    const expectedScoped = oracle(ix, c.rule, now, scope);
    const sameScoped = scoped.size === expectedScoped.size && [...scoped].every((id) => expectedScoped.has(id));
    if (!sameScoped)
      expect.fail(mismatchReport(data, ix, c, now, `scope of ${scope.length} ids`, scoped, expectedScoped));
  });
});
