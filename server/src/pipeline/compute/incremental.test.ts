import { r } from '@cairn/core';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.ts';
import type { Sql } from '../../db/index.ts';
import { migrate } from '../../db/migrate.ts';
import { createLogger } from '../../log.ts';
import { createPii } from '../../pii/index.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../../testing/index.ts';
import { type IdentifyContext, identifyEvents } from '../identify/process.ts';
import { loadDefinitions } from './definitions.ts';
import { evaluateRule } from './evaluate.ts';
import { sweepOnce } from './sweep.ts';
import { computeForEvents, recomputeDefinition } from './worker.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 5, 1);
const PROFILES = Array.from({ length: 40 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
const NAMES = ['Added to Cart', 'Order Completed', 'Product Viewed', 'Review Posted'] as const;
// What identified people (through stage 2) send: mostly names that no rule below reads.
const PERSON_NAMES = ['Signed In', 'Product Viewed', 'Review Posted', 'Order Completed', 'Signed In'] as const;

// Definitions covering event windows (which move with time), aggregates, traits, computed traits,
// tags of rules and audiences of audiences: what the incremental path must keep equal to a full one.
const AUDIENCES = {
  cart_no_order: r.and(
    r.performed('Added to Cart', { within: r.last(24, 'hours') }),
    r.not(r.performed('Order Completed', { within: r.last(24, 'hours') })),
  ),
  big_spenders: r.aggregate('sum', 'Order Completed', { property: 'total', within: r.last(7, 'days') }).gte(300),
  frequent: r.performed('Product Viewed', { min: 3, within: r.last(48, 'hours') }),
  vip_and_cart: r.and(r.inAudience('big_spenders'), r.hasTag('browser')),
  aov_high: r.computed('aov').gte(150),
  lapsed: r.and(r.occurrence('last', 'Order Completed', { before: { daysAgo: 2 } }), r.trait('plan').eq('pro')),
  // Rules that hold without any event: a new profile belongs at once, a merge can take it out.
  never_reviewed: r.not(r.performed('Review Posted')),
  no_orders: r.performed('Order Completed', { max: 0 }),
  small_spender: r.aggregate('sum', 'Order Completed', { property: 'total' }).lt(50),
  not_pro: r.not(r.trait('plan').eq('pro')),
  registered_no_order: r.and(r.performed('Signed In'), r.inAudience('no_orders')),
};

/** One event of an identified person: what ingest stores, before stage 2 attaches it to a profile. */
interface Raw {
  type: 'track' | 'identify';
  event?: string;
  userId?: string;
  anonymousId?: string;
  properties?: { total: number };
  traits?: { plan: string };
  at: number;
}

type PersonEvent = { name: number; total: number; ageH: number };

type Step =
  | { kind: 'events'; events: { p: number; name: number; total: number; ageH: number }[] }
  | { kind: 'trait'; p: number; plan: string }
  | { kind: 'time'; hours: number }
  // A person never seen before, whose first events arrive after the definitions were computed.
  | { kind: 'signup'; anonymous: boolean; events: PersonEvent[] }
  // More events of someone identified earlier (a userId or an anonymousId).
  | { kind: 'returning'; who: number; events: PersonEvent[] }
  // An anonymous visitor (new, or seen before) with events, then identified as a userId (existing or
  // new) by an identify event carrying both ids: before it in its own batch, or in the same batch.
  | {
      kind: 'merge';
      anon: number | null;
      events: PersonEvent[];
      user: number | null;
      plan: 'pro' | 'free' | null;
      together: boolean;
      // Hours the identify event is late by: an older link can re-partition people (a split).
      lateH: number;
    };

describe.skipIf(POSTGRES_SKIP_REASON !== null)('incremental evaluation equals a full recompute', () => {
  let db: TestDatabase;
  let sql: Sql;
  let ctx: IdentifyContext;
  let seq = 0;

  beforeAll(async () => {
    db = await createTestDatabase('compute/incremental.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 4, onnotice: () => {} }) as unknown as Sql;
    await migrate(sql);
    // Stage 2's settings as server.ts builds them from the configuration.
    const config = loadConfig({ DATABASE_URL: db.url, CAIRN_SECRET: 'incremental-test-secret-0123456789' });
    ctx = {
      identity: config.identity,
      traits: { defaultCallingCode: config.identity.defaultCallingCode },
      purposes: config.consentPurposes,
      secret: config.secret!,
      pii: createPii({
        secret: config.secret!,
        oldSecrets: config.pii.oldSecrets,
        traits: config.pii.traits,
        identity: config.identity,
      }),
      log: createLogger('silent'),
      concurrency: 1,
    };
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  async function reset(): Promise<void> {
    await sql`TRUNCATE audience_memberships, audience_counts, audiences, tag_assignments, tags,
      computed_trait_values, computed_traits, profile_traits, events, identity_links, identity_refusals,
      identities, merges, consent_changes, profile_accounts, account_traits, accounts, compute_changes,
      compute_postponed, profiles CASCADE`;
    await sql`DELETE FROM settings WHERE key = 'compute.sweep'`;
    await sql`INSERT INTO profiles (id) SELECT unnest(${PROFILES}::uuid[])`;
    await sql`INSERT INTO computed_traits (key, name, definition)
      VALUES ('aov', 'AOV', ${sql.json({ kind: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total' })})`;
    await sql`INSERT INTO tags (key, name, rule) VALUES ('browser', 'Browser', ${sql.json(r.performed('Product Viewed', { within: r.last(72, 'hours') }) as never)})`;
    for (const [key, rule] of Object.entries(AUDIENCES))
      await sql`INSERT INTO audiences (key, name, rule) VALUES (${key}, ${key}, ${sql.json(rule as never)})`;
  }

  /** Stores events as ingest does (insertEvents): unprocessed, with no profile yet. */
  async function ingest(events: readonly Raw[]): Promise<string[]> {
    const rows = events.map(({ at, ...e }) => {
      const messageId = `r${seq++}`;
      const timestamp = new Date(at).toISOString();
      const payload = { ...e, messageId, timestamp, receivedAt: timestamp };
      return {
        m: messageId,
        t: e.type,
        e: e.event ?? null,
        u: e.userId ?? null,
        a: e.anonymousId ?? null,
        ts: timestamp,
        p: payload,
      };
    });
    const inserted = await sql<{ id: string }[]>`
      INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload)
      SELECT 'cairn', m, t, e, u, a, ts, ts, p
      FROM json_to_recordset(${JSON.stringify(rows)}::text::json)
        AS x (m text, t text, e text, u text, a text, ts timestamptz, p jsonb)
      RETURNING id::text`;
    return inserted.map((x) => x.id);
  }

  const personEvents = fc.array(
    fc.record({
      name: fc.nat(PERSON_NAMES.length - 1),
      total: fc.integer({ min: 1, max: 400 }),
      ageH: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100 })),
    }),
    { minLength: 1, maxLength: 3 },
  );

  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('events' as const),
        events: fc.array(
          fc.record({
            p: fc.nat(PROFILES.length - 1),
            name: fc.nat(NAMES.length - 1),
            total: fc.integer({ min: 1, max: 400 }),
            // Mostly now, sometimes late-arriving older events.
            ageH: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 200 })),
          }),
          { minLength: 1, maxLength: 15 },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('trait' as const),
        p: fc.nat(PROFILES.length - 1),
        plan: fc.constantFrom('pro', 'free'),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('time' as const), hours: fc.integer({ min: 1, max: 60 }) }) },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant('signup' as const), anonymous: fc.boolean(), events: personEvents }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('returning' as const), who: fc.nat(), events: personEvents }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('merge' as const),
        anon: fc.option(fc.nat(), { freq: 2 }),
        events: fc.oneof(
          { weight: 1, arbitrary: fc.constant<PersonEvent[]>([]) },
          { weight: 5, arbitrary: personEvents },
        ),
        user: fc.option(fc.nat(), { freq: 6 }),
        plan: fc.constantFrom('pro', 'free', null),
        together: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 3, arbitrary: fc.constant(false) }),
        lateH: fc.oneof(
          { weight: 3, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 100 }) },
          // Older than anything else: it decides before every other link of the same people.
          { weight: 1, arbitrary: fc.constant(1000) },
        ),
      }),
    },
    {
      // A visitor seen before, identified as somebody new by a link older than all others: the visitor
      // leaves the profile it was merged into (a split).
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('merge' as const),
        anon: fc.nat(),
        events: fc.constant<PersonEvent[]>([]),
        user: fc.constant(null),
        plan: fc.constant(null),
        together: fc.constant(false),
        lateH: fc.constant(1000),
      }),
    },
  );

  it('after random event batches, sign-ups, merges, trait changes and clock moves (with sweeps), memberships equal a full evaluation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 12 }), async (steps) => {
        await reset();
        let now = T0;
        const clock = () => new Date(now);
        // The ids identified people use, in the order they appeared.
        const users: string[] = [];
        const anons: string[] = [];
        let person = 0;
        // One of the ids seen before, or a new one.
        const pick = (seen: string[], which: number | null, prefix: string): string => {
          if (which !== null && seen.length) return seen[which % seen.length]!;
          const id = `${prefix}${person++}`;
          seen.push(id);
          return id;
        };
        const tracks = (ids: { userId?: string; anonymousId?: string }, events: readonly PersonEvent[]): Raw[] =>
          events.map((e) => {
            const name = PERSON_NAMES[e.name]!;
            return {
              type: 'track',
              event: name,
              ...ids,
              ...(name === 'Order Completed' ? { properties: { total: e.total } } : {}),
              at: now - e.ageH * HOUR,
            };
          });
        // Exactly what the workers do: stage 2 over the stored events, handing on the profiles each
        // chunk created, merged, split or restored; then stage 3 over the events and those profiles.
        const pipeline = async (events: readonly Raw[]) => {
          const ids = await ingest(events);
          const restructured: string[] = [];
          await identifyEvents(sql, ids, ctx, async (_tx, _ids, changed) => {
            restructured.push(...changed);
          });
          await computeForEvents({ sql, now: clock }, ids, undefined, restructured);
        };
        // The starting point: every definition computed once over everybody.
        for (const d of await loadDefinitions(sql))
          await recomputeDefinition({ sql, now: clock }, { kind: d.kind, key: d.key });
        await sweepOnce({ sql }, clock());
        // Somebody to merge with from the start: a user and a visitor arriving after the computation.
        await pipeline(tracks({ userId: pick(users, null, 'u') }, [{ name: 0, total: 0, ageH: 0 }]));
        await pipeline(tracks({ anonymousId: pick(anons, null, 'a') }, [{ name: 1, total: 0, ageH: 0 }]));
        for (const s of steps) {
          if (s.kind === 'time') {
            now += s.hours * HOUR;
            await sweepOnce({ sql }, clock());
            continue;
          }
          if (s.kind === 'signup') {
            const id = pick(s.anonymous ? anons : users, null, s.anonymous ? 'a' : 'u');
            await pipeline(tracks(s.anonymous ? { anonymousId: id } : { userId: id }, s.events));
            continue;
          }
          if (s.kind === 'returning') {
            const known = [...users.map((userId) => ({ userId })), ...anons.map((anonymousId) => ({ anonymousId }))];
            if (known.length) await pipeline(tracks(known[s.who % known.length]!, s.events));
            continue;
          }
          if (s.kind === 'merge') {
            const anonymousId = pick(anons, s.anon, 'a');
            const userId = pick(users, s.user, 'u');
            const browsing = tracks({ anonymousId }, s.events);
            const identify: Raw = {
              type: 'identify',
              anonymousId,
              userId,
              ...(s.plan ? { traits: { plan: s.plan } } : {}),
              at: now - s.lateH * HOUR,
            };
            if (s.together) await pipeline([...browsing, identify]);
            else {
              if (browsing.length) await pipeline(browsing);
              await pipeline([identify]);
            }
            continue;
          }
          const rows =
            s.kind === 'trait'
              ? await sql<{ id: string }[]>`
                  WITH e AS (
                    INSERT INTO events (source_id, message_id, type, event, timestamp, received_at, payload, profile_id, processed_at)
                    VALUES ('cairn', ${`t${seq++}`}, 'identify', NULL, ${new Date(now)}, now(), '{}', ${PROFILES[s.p]!}, now())
                    RETURNING id, profile_id)
                  INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
                  SELECT profile_id, 'plan', ${JSON.stringify(s.plan)}::jsonb, ${new Date(now)}, id, 'identify' FROM e
                  ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value
                  RETURNING event_id::text AS id`
              : await sql<{ id: string }[]>`
                  INSERT INTO events (source_id, message_id, type, event, timestamp, received_at, payload, profile_id, processed_at)
                  SELECT 'cairn', 'm' || (${seq}::int + ord), 'track', ev.name, ev.ts, now(), ev.payload::jsonb, ev.profile_id, now()
                  FROM unnest(${s.events.map((e) => NAMES[e.name] as string)}::text[], ${s.events.map((e) => new Date(now - e.ageH * HOUR).toISOString())}::timestamptz[],
                    ${s.events.map((e) => JSON.stringify({ properties: { total: e.total } }))}::text[], ${s.events.map((e) => PROFILES[e.p]!)}::uuid[])
                    WITH ORDINALITY AS ev (name, ts, payload, profile_id, ord)
                  RETURNING id::text`;
          if (s.kind === 'events') seq += s.events.length;
          await computeForEvents(
            { sql, now: clock },
            rows.map((x) => x.id),
          );
        }
        // Full evaluation at the same instant, in dependency order (computed values, tags and the
        // audiences read stored state, so compare each against a fresh evaluation of its own rule),
        // over the live profiles: a profile merged away holds no value, tag or membership.
        const at = clock();
        const fresh = new Map(
          (
            await sql<{ id: string; v: number }[]>`
              SELECT e.profile_id::text AS id, round(avg((e.payload #>> '{properties,total}')::numeric), 6)::float AS v
              FROM events e JOIN profiles p ON p.id = e.profile_id AND p.merged_into IS NULL
              WHERE e.event = 'Order Completed'
              GROUP BY e.profile_id`
          ).map((x) => [x.id, x.v]),
        );
        const stored = new Map(
          (
            await sql<
              { id: string; v: number }[]
            >`SELECT profile_id::text AS id, (value #>> '{}')::float AS v FROM computed_trait_values WHERE key = 'aov'`
          ).map((x) => [x.id, x.v]),
        );
        expect(stored).toEqual(fresh);
        const tagged = new Set(
          (
            await sql<
              { id: string }[]
            >`SELECT profile_id::text AS id FROM tag_assignments WHERE tag = 'browser' AND removed_at IS NULL`
          ).map((x) => x.id),
        );
        expect([...tagged].sort()).toEqual(
          [
            ...(await evaluateRule(sql, r.performed('Product Viewed', { within: r.last(72, 'hours') }), { now: at })),
          ].sort(),
        );
        const ghosts = await sql<{ audience: string; id: string }[]>`
          SELECT m.audience, m.profile_id::text AS id
          FROM audience_memberships m JOIN profiles p ON p.id = m.profile_id
          WHERE m.exited_at IS NULL AND p.merged_into IS NOT NULL`;
        expect(ghosts).toEqual([]);
        for (const key of Object.keys(AUDIENCES)) {
          const members = (
            await sql<
              { id: string }[]
            >`SELECT profile_id::text AS id FROM audience_memberships WHERE audience = ${key} AND exited_at IS NULL`
          ).map((x) => x.id);
          const full = [...(await evaluateRule(sql, AUDIENCES[key as keyof typeof AUDIENCES], { now: at }))];
          expect({ key, members: members.sort() }).toEqual({ key, members: full.sort() });
        }
      }),
      { numRuns: 50, seed: 20261122, endOnFailure: true },
    );
  }, 240_000);
});
