// Identity resolution under concurrency (issue 4's required proof): a generated history of thousands
// of events for ~100 people, shuffled and processed by 4 identify workers across 2 server processes,
// ends in the same profiles, identities, traits, accounts, consent and event attachment as the same
// history processed sequentially — for several seeds and deliveries; no deadlocks, no duplicate profiles.
//
// Per case:
//   1. sequential reference: a fresh database, ONE server process with CAIRN_IDENTIFY_CONCURRENCY=1;
//      the events sorted by timestamp are sent in consecutive batches of SEQ_BATCH, and each batch is
//      fully processed (no unprocessed event, no live identify job) before the next is sent.
//      One worker and one batch in flight, and no event ever arrives earlier than one already
//      processed: nothing runs concurrently, every fold is the incremental, in-order one.
//   2. concurrent run: another fresh database, TWO server processes with CAIRN_IDENTIFY_CONCURRENCY=2
//      each (4 workers); the shuffled events go out in batches of 1–50, each to a random server, with
//      several requests in flight (see Case.delivery); then we wait until every event is processed and
//      the queue is empty.
//   3. both final states are normalised — profiles named by their sorted identity keys, events and the
//      events behind traits and consent by messageId, never database ids or random uuids — and compared
//      with each other and with a pure model computed here from the stored events with @cairn/core
//      (resolveIdentities over the links, foldEvent per group, consent changes per purpose), which says
//      which side is wrong when they differ. Each run must also be clean: every event stored, no failed
//      or retried job, no deadlock (pg_stat_database), no error or deadlock in the servers' output,
//      exit code 0 on SIGTERM.
//
// Every event has a distinct millisecond timestamp: the fold and the resolver break timestamp ties by
// event id, and ids follow arrival order, so tied timestamps would legitimately differ between runs.
import {
  compareTraitEvents,
  consentFromEvent,
  emptyProfileState,
  extractIdentities,
  foldEvent,
  type IdentityLink,
  identityKey,
  type JsonObject,
  type ProfileState,
  resolveIdentities,
  type TrackingEvent,
} from '@cairn/core';
import { createPii } from '@cairn/server';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  type TestDatabase,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { basic, sleep, waitFor } from './support/http.ts';

/**
 * How the concurrent run delivers: `burst` = CONCURRENT_REQUESTS requests in flight without pause
 * (large group commits, so few large jobs: big transactions contending for many locks); `trickle` =
 * fewer senders with random pauses (workers take jobs as they come: many small transactions
 * interleaving). A small `commitMaxRows` stops ingest from grouping requests into one commit: about
 * one job per request, so a worker fetch carries fewer events.
 */
interface Case {
  seed: number;
  people: number;
  delivery: 'burst' | 'trickle';
  commitMaxRows?: number;
}
const DEFAULT_CASES: Case[] = [
  { seed: 1, people: 100, delivery: 'burst' },
  { seed: 2, people: 100, delivery: 'trickle', commitMaxRows: 20 },
  { seed: 3, people: 70, delivery: 'trickle' },
  { seed: 4, people: 60, delivery: 'burst', commitMaxRows: 10 },
];
// IDENTIFY_SEEDS=11,12,13 explores other seeds (100 people each, the deliveries in turn);
// IDENTIFY_SEEDS=16@1 replays seed 16 with the delivery of DEFAULT_CASES[1].
const CASES: Case[] = process.env.IDENTIFY_SEEDS
  ? process.env.IDENTIFY_SEEDS.split(',').map((entry, i) => {
      const [seed, slot] = entry.split('@').map(Number);
      return { ...DEFAULT_CASES[(slot ?? i) % DEFAULT_CASES.length]!, seed: seed!, people: 100 };
    })
  : DEFAULT_CASES;
const DAYS = 14;
const SEQ_BATCH = 20;
const CONCURRENT_REQUESTS = 8;

// ---------------------------------------------------------------------------------------------------
// The generated history

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
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

interface Generated {
  ts: number;
  body: Record<string, unknown>;
}

interface Person {
  i: number;
  userId: string;
  email: string;
  crm: string;
  phone: string | null;
  devices: string[];
  /** When the person signs up, or null (stays anonymous). */
  signupAt: number | null;
  /** When each device was first logged in on (events from it carry the userId from then on). */
  loggedIn: Map<string, number>;
  account: string | null;
  consent: { Analytics: boolean; Marketing: boolean };
}

const PAGES = ['Home', 'Pricing', 'Docs', 'Blog', 'Product', 'Checkout'];
const TRACKS = ['Product Viewed', 'Added to Cart', 'Search', 'Video Played', 'Order Completed', 'Feature Used'];
const LOCALES = ['en-GB', 'fr-FR', 'de-DE', 'en-US'];
const PLANS = ['free', 'pro', 'team', 'enterprise'];
const SOURCES = ['news', 'ads', 'partner', 'social'];
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

/**
 * A realistic history for `people` people over DAYS days: anonymous browsing on 1–3 devices each,
 * newsletter sign-ups (email on context.traits before any userId), sign-ups (identify with userId,
 * anonymousId, email, sometimes phone and a CRM external id), logins on new devices (identify, alias,
 * or a track carrying both ids), server-side identifies with $set/$set_once/$unset/$add, context.traits
 * on tracks, group() calls, consent preferences, junk ids ("null", "undefined"), devices shared by two
 * users and emails shared by two users. Every event has a distinct millisecond timestamp.
 */
function generateHistory(seed: number, people: number): Generated[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const chance = (p: number) => rnd() < p;
  const ns = `s${seed}`;
  const T0 = Date.UTC(2026, 5, 1);
  const used = new Set<number>();
  const out: Generated[] = [];
  const emit = (at: number, body: Record<string, unknown>): number => {
    let t = Math.round(at);
    while (used.has(t)) t++;
    used.add(t);
    out.push({ ts: t, body: { ...body, messageId: `${ns}-m${out.length}`, timestamp: new Date(t).toISOString() } });
    return t;
  };
  const consentOf = (p: Person) => {
    // Preferences persist and flip now and then.
    if (chance(0.3)) p.consent.Analytics = !p.consent.Analytics;
    if (chance(0.3)) p.consent.Marketing = !p.consent.Marketing;
    return { consent: { categoryPreferences: { ...p.consent } } };
  };
  const crmIds = (p: Person) => [
    { id: p.crm, type: 'crm_id', collection: 'users', encoding: 'none' },
    ...(chance(0.3)
      ? [{ id: `cus_${p.i}_${ns}`, type: 'stripe_customer', collection: 'users', encoding: 'none' }]
      : []),
  ];
  // A messy spelling of an email, as forms send them.
  const spelled = (email: string) => (chance(0.3) ? ` ${email.toUpperCase()} ` : email);

  const persons: Person[] = Array.from({ length: people }, (_, i) => ({
    i,
    userId: `${ns}-user-${i}`,
    email: `person${i}.${ns}@example.test`,
    crm: `${ns}-crm-${i}`,
    phone: chance(0.3) ? `+44 7700 9${String(i).padStart(5, '0')}` : null,
    devices: Array.from({ length: int(1, 3) }, (_, d) => `${ns}-anon-${i}-${d}`),
    signupAt: null,
    loggedIn: new Map(),
    account: null,
    consent: { Analytics: chance(0.7), Marketing: chance(0.4) },
  }));
  const accounts = Array.from({ length: Math.max(3, Math.round(people / 8)) }, (_, k) => `${ns}-acct-${k}`);

  for (const p of persons) {
    const sessions = Array.from({ length: int(3, 10) }, () => ({
      at: T0 + rnd() * DAYS * DAY,
      device: pick(p.devices),
    })).sort((a, b) => a.at - b.at);
    const signupSession = chance(0.8) ? int(0, Math.min(3, sessions.length - 1)) : -1;
    if (chance(0.35)) p.account = pick(accounts);
    let newsletter = chance(0.15);
    for (const [n, s] of sessions.entries()) {
      let t = s.at;
      const dev = s.device;
      const step = () => {
        t += int(5_000, 240_000);
        return t;
      };
      const ids = () => {
        const since = p.loggedIn.get(dev);
        return since !== undefined && since <= t ? { anonymousId: dev, userId: p.userId } : { anonymousId: dev };
      };
      // Landing page, sometimes from a campaign or a referrer.
      emit(t, {
        type: 'page',
        ...ids(),
        name: pick(PAGES),
        properties: { path: `/${pick(PAGES).toLowerCase()}` },
        context: {
          page: {
            url: 'https://shop.test/',
            ...(chance(0.4) ? { referrer: `https://${pick(['search', 'social', 'news'])}.test/x` } : {}),
          },
          ...(chance(0.3) ? { campaign: { source: pick(SOURCES), medium: 'cpc', name: `c${int(1, 5)}` } } : {}),
          ...(chance(0.2) ? consentOf(p) : {}),
        },
      });
      if (newsletter && p.signupAt === null) {
        newsletter = false;
        emit(step(), {
          type: 'track',
          ...ids(),
          event: 'Newsletter Subscribed',
          context: { traits: { email: spelled(p.email), newsletter: true } },
        });
      }
      if (n === signupSession) {
        p.signupAt = step();
        p.loggedIn.set(dev, p.signupAt);
        emit(p.signupAt, {
          type: 'identify',
          userId: p.userId,
          anonymousId: dev,
          traits: {
            email: spelled(p.email),
            name: ` Person ${p.i} `,
            plan: 'free',
            trial: true,
            ...(p.phone ? { phone: p.phone } : {}),
            $set_once: { signup_channel: pick(['web', 'ios', 'android']), first_plan: 'free' },
            $add: { logins: 1 },
          },
          context: { ...(chance(0.5) ? { externalIds: crmIds(p) } : {}), ...(chance(0.5) ? consentOf(p) : {}) },
        });
      } else if (p.signupAt !== null && !p.loggedIn.has(dev) && chance(0.75)) {
        // A login on a device not logged in before: identify, alias or a track carrying both ids.
        const at = step();
        p.loggedIn.set(dev, at);
        const how = rnd();
        if (how < 0.5) {
          emit(at, {
            type: 'identify',
            userId: p.userId,
            anonymousId: dev,
            traits: { $add: { logins: 1 }, $set: { last_login_device: dev }, $set_once: { first_login_device: dev } },
          });
        } else if (how < 0.75) {
          emit(at, { type: 'alias', userId: p.userId, previousId: dev });
        } else {
          emit(at, {
            type: 'track',
            userId: p.userId,
            anonymousId: dev,
            event: 'Signed In',
            context: { traits: { email: spelled(p.email), locale: pick(LOCALES) } },
          });
        }
      }
      for (let k = int(1, 7); k > 0; k--) {
        const at = step();
        const junk = chance(0.03) ? { userId: pick(['null', 'undefined', ' Anonymous ']) } : {};
        const context = {
          ...(chance(0.2) ? { traits: { locale: pick(LOCALES), ...(chance(0.3) ? { plan: pick(PLANS) } : {}) } } : {}),
          ...(chance(0.12) ? consentOf(p) : {}),
        };
        if (chance(0.45)) {
          emit(at, { type: 'page', ...ids(), ...junk, name: pick(PAGES), context });
        } else {
          emit(at, {
            type: 'track',
            ...ids(),
            ...junk,
            event: pick(TRACKS),
            properties: { value: int(1, 500) },
            context,
          });
        }
      }
      if (chance(0.04)) {
        // Junk identify from a broken integration: blocked ids and trait values that are not identities.
        emit(step(), {
          type: 'identify',
          userId: pick(['undefined', 'null']),
          anonymousId: dev,
          traits: { email: 'undefined', nickname: `junk-${p.i}` },
        });
      }
    }
    if (p.signupAt !== null) {
      // Server-side identifies (no anonymousId): plan changes, counters, the CRM id.
      for (let k = int(0, 4); k > 0; k--) {
        const at = p.signupAt + rnd() * DAYS * DAY * 0.8 + MIN;
        const traits = pick<JsonObject>([
          { $set: { plan: pick(PLANS) }, $unset: ['trial'], $add: { upgrades: 1 } },
          { plan: pick(PLANS), company: ` Company ${p.i % 7} `, $set_once: { first_plan: 'free' } },
          { $add: { credits: int(-5, 20) }, $unset: { nickname: true } },
          { $set: { vip: chance(0.5) }, trial: null },
        ]);
        emit(at, { type: 'identify', userId: p.userId, traits, context: { externalIds: crmIds(p) } });
      }
      if (p.account) {
        for (let k = int(1, 3); k > 0; k--) {
          const at = p.signupAt + rnd() * DAYS * DAY * 0.5 + MIN;
          emit(at, {
            type: 'group',
            userId: p.userId,
            groupId: p.account,
            traits: { name: `Account ${p.account}`, plan: pick(PLANS), employees: int(5, 500) },
          });
        }
      }
    }
  }

  const identified = persons.filter((p) => p.signupAt !== null);
  // Shared devices: a second user logs in on someone else's device (a kiosk, a family laptop).
  for (let n = 0; n < Math.round(people / 12) && identified.length > 2; n++) {
    const [owner, guest] = [pick(identified), pick(identified)];
    if (owner === guest) continue;
    const device = pick(owner.devices);
    let at = Math.max(guest.signupAt!, owner.signupAt!) + rnd() * 3 * DAY;
    emit(at, { type: 'identify', userId: guest.userId, anonymousId: device, traits: { $add: { logins: 1 } } });
    for (let k = int(1, 4); k > 0; k--) {
      at += int(10_000, 120_000);
      emit(at, { type: 'track', userId: guest.userId, anonymousId: device, event: pick(TRACKS) });
    }
  }
  // Shared emails: a second user gives an email another user holds (a family address).
  for (let n = 0; n < Math.round(people / 15) && identified.length > 2; n++) {
    const [holder, other] = [pick(identified), pick(identified)];
    if (holder === other) continue;
    const at = Math.max(holder.signupAt!, other.signupAt!) + rnd() * 3 * DAY;
    emit(at, { type: 'identify', userId: other.userId, traits: { email: spelled(holder.email) } });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Normalised final state

interface ProfileSnapshot {
  traits: Record<string, { value: unknown; updatedAt: string; source: string; messageId: string }>;
  accounts: Record<string, { firstSeenAt: string; lastSeenAt: string }>;
  consent: Record<string, { granted: boolean; at: string; messageId: string | null }>;
  events: string[];
}

/** Profiles named by their sorted identity keys (joined with a space); unattached events apart. */
interface Snapshot {
  profiles: Map<string, ProfileSnapshot>;
  unattached: string[];
  /** Guard refusals as `messageId reason`: all recorded (a run), or those of the final partition (the model). */
  refusals: Set<string>;
}

const iso = (d: Date) => d.toISOString();
const nameOf = (keys: readonly string[]) => [...keys].sort().join(' ');
const emptyProfile = (): ProfileSnapshot => ({ traits: {}, accounts: {}, consent: {}, events: [] });

/** Reads the final state, asserting the invariants that do not need a second run to check. */
async function snapshot(sql: postgres.Sql): Promise<Snapshot> {
  const problems: string[] = [];
  const live = await sql<{ id: string; keys: string[] | null }[]>`
    SELECT p.id, array_agg(i.key) FILTER (WHERE i.key IS NOT NULL) AS keys
    FROM profiles p LEFT JOIN identities i ON i.profile_id = p.id
    WHERE p.merged_into IS NULL AND p.erased_at IS NULL
    GROUP BY p.id`;
  const nameOfProfile = new Map<string, string>();
  const profiles = new Map<string, ProfileSnapshot>();
  for (const p of live) {
    if (!p.keys?.length) continue; // checked below: only merged-away profiles may lack identities
    const name = nameOf(p.keys);
    if (profiles.has(name)) problems.push(`two live profiles hold ${name}`);
    nameOfProfile.set(p.id, name);
    profiles.set(name, emptyProfile());
  }
  const [counts] = await sql<{ empty: number; dead: number; doubled: number; groups: number }[]>`
    SELECT
      (SELECT count(*)::int FROM profiles p WHERE p.merged_into IS NULL AND p.erased_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.profile_id = p.id)) AS empty,
      (SELECT count(*)::int FROM identities i JOIN profiles p ON p.id = i.profile_id
        WHERE p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL) AS dead,
      (SELECT count(*)::int FROM (SELECT key FROM identities GROUP BY key HAVING count(DISTINCT profile_id) > 1) d)
        AS doubled,
      (SELECT count(DISTINCT profile_id)::int FROM identities) AS groups`;
  if (counts!.empty) problems.push(`${counts!.empty} live profiles without identities (duplicate profiles)`);
  if (counts!.dead) problems.push(`${counts!.dead} identities point at merged-away profiles`);
  if (counts!.doubled) problems.push(`${counts!.doubled} identities in two profiles`);
  if (counts!.groups !== profiles.size) {
    problems.push(`${profiles.size} live profiles with identities but ${counts!.groups} groups in identities`);
  }

  const profileName = (id: string, what: string) => {
    const name = nameOfProfile.get(id);
    if (!name) problems.push(`${what} on a profile that is not live: ${id}`);
    return name;
  };
  for (const t of await sql<
    { profile_id: string; key: string; value: unknown; updated_at: Date; source: string; message_id: string }[]
  >`
    SELECT t.profile_id, t.key, t.value, t.updated_at, t.source, e.message_id
    FROM profile_traits t LEFT JOIN events e ON e.id = t.event_id`) {
    const name = profileName(t.profile_id, `trait ${t.key}`);
    if (name) {
      profiles.get(name)!.traits[t.key] = {
        value: PII.openValue(t.value),
        updatedAt: iso(t.updated_at),
        source: t.source,
        messageId: t.message_id,
      };
    }
  }
  for (const a of await sql<{ profile_id: string; account_id: string; first_seen_at: Date; last_seen_at: Date }[]>`
    SELECT profile_id, account_id, first_seen_at, last_seen_at FROM profile_accounts`) {
    const name = profileName(a.profile_id, `account ${a.account_id}`);
    if (name) {
      profiles.get(name)!.accounts[a.account_id] = {
        firstSeenAt: iso(a.first_seen_at),
        lastSeenAt: iso(a.last_seen_at),
      };
    }
  }
  for (const c of await sql<
    { profile_id: string; purpose: string; granted: boolean; at: Date; message_id: string | null }[]
  >`
    SELECT DISTINCT ON (c.profile_id, c.purpose) c.profile_id, c.purpose, c.granted, c.at, e.message_id
    FROM consent_changes c LEFT JOIN events e ON e.id = c.event_id
    ORDER BY c.profile_id, c.purpose, c.at DESC, c.id DESC`) {
    const name = profileName(c.profile_id, `consent ${c.purpose}`);
    if (name) profiles.get(name)!.consent[c.purpose] = { granted: c.granted, at: iso(c.at), messageId: c.message_id };
  }
  const unattached: string[] = [];
  for (const e of await sql<
    { message_id: string; profile_id: string | null; identity_key: string | null; holder: string | null }[]
  >`
    SELECT e.message_id, e.profile_id, e.identity_key, i.profile_id AS holder
    FROM events e LEFT JOIN identities i ON i.key = e.identity_key
    ORDER BY e.message_id`) {
    if (!e.profile_id) {
      if (e.identity_key) problems.push(`event ${e.message_id} with identity ${e.identity_key} is unattached`);
      unattached.push(e.message_id);
      continue;
    }
    if (e.holder !== e.profile_id) problems.push(`event ${e.message_id} is not on the profile of ${e.identity_key}`);
    const name = profileName(e.profile_id, `event ${e.message_id}`);
    if (name) profiles.get(name)!.events.push(e.message_id);
  }
  expect(problems.slice(0, 20), 'invariants of the final state').toEqual([]);
  const refusals = await sql<{ message_id: string; reason: string }[]>`
    SELECT e.message_id, r.reason FROM identity_refusals r JOIN events e ON e.id = r.event_id`;
  return { profiles, unattached, refusals: new Set(refusals.map((r) => `${r.message_id} ${r.reason}`)) };
}

// Both runs share one secret: identity keys of emails and phones are blind indexes derived from it.
const SECRET = 'identify-concurrency-secret-0123';
const PII = createPii({ secret: SECRET });

/** The same state computed in this process from the stored events, with the pure core functions. */
async function model(sql: postgres.Sql): Promise<Snapshot> {
  const rows = await sql<{ id: string; type: string; timestamp: Date; payload: JsonObject; message_id: string }[]>`
    SELECT id, type, timestamp, payload, message_id FROM events`;
  const events = rows.map((r) => {
    // Stored sealed (PII at rest): the model works on clear values, as stage 2 does.
    const payload = PII.openPayload(r.payload);
    const keys = extractIdentities(payload as unknown as TrackingEvent, {}).map(identityKey);
    return {
      id: String(r.id),
      ts: r.timestamp.getTime(),
      type: r.type,
      payload,
      messageId: r.message_id,
      keys,
    };
  });
  // The server keeps one link per distinct set of identities: its earliest event.
  const links = new Map<string, IdentityLink & { order: { ts: number; id: string } }>();
  for (const e of events) {
    if (!e.keys.length) continue;
    const set = [...e.keys].sort().join('\n');
    const prev = links.get(set);
    if (prev && compareTraitEvents(prev.order, e) <= 0) continue;
    const ids = extractIdentities(e.payload as unknown as TrackingEvent, {});
    links.set(set, { eventId: e.id, ts: e.ts, ids, order: { ts: e.ts, id: e.id } });
  }
  const partition = resolveIdentities([...links.values()], {});
  // Profiles are named by their stored identity keys (email and phone by blind index).
  const nameOfGroup = new Map(partition.groups.map((g) => [g.key, nameOf(g.identities.map(PII.identityKey))]));
  const states = new Map<string, ProfileState>();
  const profiles = new Map<string, ProfileSnapshot>();
  for (const name of nameOfGroup.values()) {
    profiles.set(name, emptyProfile());
    states.set(name, emptyProfileState());
  }
  const byId = new Map(events.map((e) => [e.id, e]));
  const unattached: string[] = [];
  const latestConsent = new Map<string, Map<string, { granted: boolean; ts: number; id: string }>>();
  for (const e of [...events].sort(compareTraitEvents)) {
    const name = e.keys[0] ? nameOfGroup.get(partition.groupOf.get(e.keys[0])!) : undefined;
    if (!name) {
      unattached.push(e.messageId);
      continue;
    }
    profiles.get(name)!.events.push(e.messageId);
    foldEvent(states.get(name)!, e, {});
    const consent = latestConsent.get(name) ?? new Map();
    latestConsent.set(name, consent);
    // Consent history records changes: the choice in force dates from the event that changed it.
    for (const [purpose, granted] of consentFromEvent(e.payload, null)) {
      if (consent.get(purpose)?.granted !== granted) consent.set(purpose, { granted, ts: e.ts, id: e.id });
    }
  }
  for (const [name, p] of profiles) {
    const state = states.get(name)!;
    for (const [key, t] of state.traits) {
      p.traits[key] = {
        value: JSON.parse(JSON.stringify(t.value)),
        updatedAt: iso(new Date(t.ts)),
        source: t.source,
        messageId: byId.get(t.eventId)!.messageId,
      };
    }
    for (const [account, g] of state.groups) {
      p.accounts[account] = { firstSeenAt: iso(new Date(g.firstTs)), lastSeenAt: iso(new Date(g.lastTs)) };
    }
    for (const [purpose, c] of latestConsent.get(name) ?? []) {
      p.consent[purpose] = { granted: c.granted, at: iso(new Date(c.ts)), messageId: byId.get(c.id)!.messageId };
    }
    p.events.sort();
  }
  unattached.sort();
  const refusals = new Set(partition.refusals.map((r) => `${byId.get(r.eventId)!.messageId} ${r.reason}`));
  return { profiles, unattached, refusals };
}

/** Human-readable differences between two snapshots (at most `max`). */
function differences(expected: Snapshot, actual: Snapshot, max = 25): string[] {
  const out: string[] = [];
  const short = (v: unknown) => JSON.stringify(v)?.slice(0, 300);
  for (const [name, e] of expected.profiles) {
    const a = actual.profiles.get(name);
    if (!a) {
      out.push(`missing profile [${name}] (${e.events.length} events)`);
      continue;
    }
    for (const part of ['traits', 'accounts', 'consent'] as const) {
      const keys = new Set([...Object.keys(e[part]), ...Object.keys(a[part])]);
      for (const k of [...keys].sort()) {
        const [x, y] = [(e[part] as Record<string, unknown>)[k], (a[part] as Record<string, unknown>)[k]];
        if (short(x) !== short(y)) out.push(`[${name}] ${part}.${k}: expected ${short(x)}, got ${short(y)}`);
      }
    }
    if (short(e.events) !== short(a.events)) {
      const [ex, ac] = [new Set(e.events), new Set(a.events)];
      out.push(
        `[${name}] events: missing ${short(e.events.filter((m) => !ac.has(m)))}, extra ${short(a.events.filter((m) => !ex.has(m)))}`,
      );
    }
  }
  for (const name of actual.profiles.keys()) if (!expected.profiles.has(name)) out.push(`extra profile [${name}]`);
  if (short(expected.unattached) !== short(actual.unattached)) {
    out.push(`unattached events: expected ${short(expected.unattached)}, got ${short(actual.unattached)}`);
  }
  return out.slice(0, max);
}

// ---------------------------------------------------------------------------------------------------
// Running the servers

/** SIGTERM, and SIGKILL after 25 s: a server that cannot stop shows as a null exit code, never a hang. */
async function stopAll(servers: ServerProcess[]): Promise<(number | null)[]> {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  }, 25_000);
  try {
    return await Promise.all(servers.map((s) => s.exited));
  } finally {
    clearTimeout(timer);
  }
}

/** What the database and the servers are doing, for the message of a timeout. */
async function diagnose(sql: postgres.Sql, servers: ServerProcess[]): Promise<string> {
  const state = await sql`
    SELECT
      (SELECT count(*)::int FROM events WHERE processed_at IS NULL) AS unprocessed,
      (SELECT json_agg(j) FROM (SELECT state, count(*)::int AS n, max(retry_count) AS retries
        FROM pgboss.job WHERE name = 'identify' GROUP BY state) j) AS jobs,
      (SELECT json_agg(a) FROM (
        SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS xact_age,
          pg_blocking_pids(pid) AS blocked_by, left(query, 160) AS query
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND state <> 'idle') a) AS activity`;
  const tails = servers.map(
    (s, i) => `--- server ${i} output (tail):\n${s.output().split('\n').slice(-30).join('\n')}`,
  );
  return [JSON.stringify(state[0], null, 1), ...tails].join('\n');
}

async function post(url: string, writeKey: string, batch: object[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
      body: JSON.stringify({ batch }),
      signal: AbortSignal.timeout(30_000),
    });
    if (res.status === 200) return;
    // Ingest sheds load with 503 like any SDK sees it; anything else is a failure of the test.
    if (res.status !== 503 || attempt >= 10) throw new Error(`POST /v1/batch: HTTP ${res.status} ${await res.text()}`);
    await sleep(100 * attempt);
  }
}

/** Whether stage 2 is done: no unprocessed event and no live identify job. */
async function idle(sql: postgres.Sql): Promise<boolean> {
  const [row] = await sql<{ events: number; jobs: number }[]>`
    SELECT
      (SELECT count(*)::int FROM events WHERE processed_at IS NULL) AS events,
      (SELECT count(*)::int FROM pgboss.job WHERE name = 'identify' AND state < 'completed') AS jobs`;
  return row!.events === 0 && row!.jobs === 0;
}

/** Facts about a finished run that must hold for both runs. */
async function runFacts(sql: postgres.Sql, servers: ServerProcess[], sent: number): Promise<Record<string, unknown>> {
  // Backends flush their statistics (the deadlock count) as they exit, just after the servers did.
  await sleep(1000);
  await sql`SELECT pg_stat_clear_snapshot()`;
  const [row] = await sql<{ events: number; failed: number; retried: number; deadlocks: number }[]>`
    SELECT
      (SELECT count(*)::int FROM events) AS events,
      (SELECT count(*)::int FROM pgboss.job WHERE name = 'identify' AND state = 'failed') AS failed,
      (SELECT count(*)::int FROM pgboss.job WHERE name = 'identify' AND retry_count > 0) AS retried,
      (SELECT deadlocks::int FROM pg_stat_database WHERE datname = current_database()) AS deadlocks`;
  const output = servers.map((s) => s.output()).join('\n');
  return {
    events: row!.events === sent,
    failedJobs: row!.failed,
    retriedJobs: row!.retried,
    deadlocks: row!.deadlocks,
    loggedErrors: output.split('\n').filter((l) => /\berror\b|deadlock/i.test(l)),
  };
}

/**
 * How much the identify work overlapped: each worker fetch (jobs started together) is an interval from
 * its start to its last completion; the most intervals open at once is the concurrency reached.
 */
async function overlap(
  sql: postgres.Sql,
): Promise<{ jobs: number; fetches: number; maxParallel: number; longestMs: number }> {
  const fetches = await sql<{ jobs: number; start: Date; end: Date }[]>`
    SELECT count(*)::int AS jobs, started_on AS start, max(completed_on) AS end
    FROM pgboss.job WHERE name = 'identify' AND state = 'completed'
    GROUP BY started_on`;
  const edges = fetches.flatMap((f) => [
    { t: f.start.getTime(), d: 1 },
    { t: f.end.getTime(), d: -1 },
  ]);
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let maxParallel = 0;
  for (const e of edges) {
    open += e.d;
    maxParallel = Math.max(maxParallel, open);
  }
  return {
    jobs: fetches.reduce((n, f) => n + f.jobs, 0),
    fetches: fetches.length,
    maxParallel,
    longestMs: Math.max(...fetches.map((f) => f.end.getTime() - f.start.getTime())),
  };
}

const CLEAN = { events: true, failedJobs: 0, retriedJobs: 0, deadlocks: 0, loggedErrors: [] };

async function writeKeyOf(sql: postgres.Sql): Promise<string> {
  const [demo] = await sql<{ write_key: string }[]>`SELECT write_key FROM sources WHERE id = 'src_demo'`;
  return demo!.write_key;
}

/** Sequential reference: one server, one worker, one batch at a time in timestamp order. */
async function runSequential(name: string, history: Generated[], progress: (what: string) => void) {
  const db = await createTestDatabase(name, 'postgres');
  progress('sequential: database created');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const servers: ServerProcess[] = [];
  try {
    servers.push(await spawnServer({ ...db.env, CAIRN_IDENTIFY_CONCURRENCY: '1', CAIRN_SECRET: SECRET }));
    progress('sequential: server listening');
    const key = await writeKeyOf(sql);
    const ordered = [...history].sort((a, b) => a.ts - b.ts);
    for (let i = 0; i < ordered.length; i += SEQ_BATCH) {
      await post(
        servers[0]!.url,
        key,
        ordered.slice(i, i + SEQ_BATCH).map((e) => e.body),
      );
      const deadline = Date.now() + 60_000;
      while (!(await idle(sql))) {
        if (Date.now() > deadline) {
          throw new Error(`batch ${i / SEQ_BATCH} not processed in 60 s:\n${await diagnose(sql, servers)}`);
        }
        await sleep(10);
      }
    }
    const codes = await stopAll(servers);
    return { db, sql, codes, facts: await runFacts(sql, servers, history.length) };
  } catch (err) {
    await stopAll(servers);
    await sql.end();
    await db.drop();
    throw err;
  }
}

/** Concurrent run: two servers with two workers each, the shuffled history in batches of 1–50. */
async function runConcurrent(name: string, history: Generated[], c: Case, progress: (what: string) => void) {
  const rnd = prng(c.seed * 7919 + 1);
  const db = await createTestDatabase(name, 'postgres');
  progress('concurrent: database created');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const servers: ServerProcess[] = [];
  try {
    const env = {
      ...db.env,
      CAIRN_SECRET: SECRET,
      CAIRN_IDENTIFY_CONCURRENCY: '2',
      ...(c.commitMaxRows ? { CAIRN_COMMIT_MAX_ROWS: String(c.commitMaxRows) } : {}),
    };
    // One after the other: the cold-start race has its own test (two-servers.test.ts).
    servers.push(await spawnServer(env));
    servers.push(await spawnServer(env));
    progress('concurrent: both servers listening');
    const key = await writeKeyOf(sql);
    const shuffled = [...history];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const batches: { url: string; events: object[] }[] = [];
    for (let i = 0; i < shuffled.length; ) {
      const size = 1 + Math.floor(rnd() * 50);
      const server = servers[rnd() < 0.5 ? 0 : 1]!;
      batches.push({ url: server.url, events: shuffled.slice(i, i + size).map((e) => e.body) });
      i += size;
    }
    let next = 0;
    const senders = c.delivery === 'burst' ? CONCURRENT_REQUESTS : 3;
    await Promise.all(
      Array.from({ length: senders }, async () => {
        while (next < batches.length) {
          const b = batches[next++]!;
          await post(b.url, key, b.events);
          if (c.delivery === 'trickle') await sleep(Math.floor(rnd() * 60));
        }
      }),
    );
    const sent = Date.now();
    progress('concurrent: everything sent');
    await waitFor('every event processed and the queue empty', () => idle(sql), 120_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await diagnose(sql, servers)}`);
    });
    const drainedMs = Date.now() - sent;
    const codes = await stopAll(servers);
    const facts = await runFacts(sql, servers, history.length);
    return { db, sql, codes, batches: batches.length, drainedMs, facts, overlap: await overlap(sql) };
  } catch (err) {
    await stopAll(servers);
    await sql.end();
    await db.drop();
    throw err;
  }
}

describe('identity resolution: shuffled on 4 workers in 2 processes = sequential', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  for (const c of CASES) {
    const { seed, people } = c;
    it(`seed ${seed}: ${people} people, ${c.delivery}${c.commitMaxRows ? `, commits of ${c.commitMaxRows}` : ''}`, async () => {
      const history = generateHistory(seed, people);
      const t0 = Date.now();
      // Progress lines: if the test times out, they say where the time went.
      const progress = (what: string) => console.info(`seed ${seed}: ${what} at ${Date.now() - t0} ms`);
      const seq = await runSequential(`test/identify-concurrency.test.ts:seq:${seed}`, history, progress);
      const t1 = Date.now();
      let conc: Awaited<ReturnType<typeof runConcurrent>> | undefined;
      const dbs: { db: TestDatabase; sql: postgres.Sql }[] = [seq];
      try {
        conc = await runConcurrent(`test/identify-concurrency.test.ts:conc:${seed}`, history, c, progress);
        dbs.push(conc);
        const t2 = Date.now();
        const reference = await snapshot(seq.sql);
        const concurrent = await snapshot(conc.sql);
        const pure = await model(seq.sql);
        const mergeLog = async (sql: postgres.Sql) =>
          (
            await sql<
              { kind: string; n: number }[]
            >`SELECT kind, count(*)::int AS n FROM merges GROUP BY kind ORDER BY kind`
          )
            .map((r) => `${r.n} ${r.kind}s`)
            .join(', ') || 'none';
        console.info(
          `seed ${seed}: ${history.length} events, ${people} people, ${reference.profiles.size} profiles; ` +
            `sequential ${t1 - t0} ms, concurrent ${t2 - t1} ms (${conc.batches} requests, ${conc.drainedMs} ms to drain after, ` +
            `${conc.overlap.jobs} jobs in ${conc.overlap.fetches} fetches, up to ${conc.overlap.maxParallel} at once, ` +
            `longest ${conc.overlap.longestMs} ms); ` +
            `merge log: sequential ${await mergeLog(seq.sql)}, concurrent ${await mergeLog(conc.sql)}; ` +
            `refusals: final ${pure.refusals.size}, recorded sequential ${reference.refusals.size}, ` +
            `concurrent ${concurrent.refusals.size}`,
        );

        expect(seq.codes, 'sequential server exit codes').toEqual([0]);
        expect(conc.codes, 'concurrent servers exit codes').toEqual([0, 0]);
        expect(seq.facts, 'sequential run').toEqual(CLEAN);
        expect(conc.facts, 'concurrent run').toEqual(CLEAN);
        // The generator makes what it claims: thousands of events, ~people profiles, guards firing.
        expect(history.length).toBeGreaterThan(people * 20);
        const [guards] = await seq.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM identity_refusals`;
        expect(guards!.n).toBeGreaterThan(0);

        expect({
          'concurrent run vs the sequential run': differences(reference, concurrent, 60),
          'sequential run vs the pure model': differences(pure, reference, 10),
        }).toEqual({ 'concurrent run vs the sequential run': [], 'sequential run vs the pure model': [] });
        expect(concurrent.profiles.size).toBe(pure.profiles.size);
        // Every refusal of the final partition is on record in both runs. The table is an audit log, so
        // a run that replayed partial link sets (late, earlier links) may also hold refusals of those.
        const unrecorded = (run: Snapshot) => [...pure.refusals].filter((r) => !run.refusals.has(r));
        expect({ sequential: unrecorded(reference), concurrent: unrecorded(concurrent) }).toEqual({
          sequential: [],
          concurrent: [],
        });
      } finally {
        for (const d of dbs) {
          await d.sql.end();
          await d.db.drop();
        }
      }
    }, 300_000);
  }
});
