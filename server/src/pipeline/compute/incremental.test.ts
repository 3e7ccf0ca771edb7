import { r } from '@cairn/core';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../db/index.ts';
import { migrate } from '../../db/migrate.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../../testing/index.ts';
import { loadDefinitions } from './definitions.ts';
import { evaluateRule } from './evaluate.ts';
import { sweepOnce } from './sweep.ts';
import { computeForEvents, recomputeDefinition } from './worker.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 5, 1);
const PROFILES = Array.from({ length: 40 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
const NAMES = ['Added to Cart', 'Order Completed', 'Product Viewed'] as const;

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
};

describe.skipIf(POSTGRES_SKIP_REASON !== null)('incremental evaluation equals a full recompute', () => {
  let db: TestDatabase;
  let sql: Sql;
  let seq = 0;

  beforeAll(async () => {
    db = await createTestDatabase('compute/incremental.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 4, onnotice: () => {} }) as unknown as Sql;
    await migrate(sql);
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  async function reset(): Promise<void> {
    await sql`TRUNCATE audience_memberships, audience_counts, audiences, tag_assignments, tags,
      computed_trait_values, computed_traits, profile_traits, events, profiles CASCADE`;
    await sql`DELETE FROM settings WHERE key = 'compute.sweep'`;
    await sql`INSERT INTO profiles (id) SELECT unnest(${PROFILES}::uuid[])`;
    await sql`INSERT INTO computed_traits (key, name, definition)
      VALUES ('aov', 'AOV', ${sql.json({ kind: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total' })})`;
    await sql`INSERT INTO tags (key, name, rule) VALUES ('browser', 'Browser', ${sql.json(r.performed('Product Viewed', { within: r.last(72, 'hours') }) as never)})`;
    for (const [key, rule] of Object.entries(AUDIENCES))
      await sql`INSERT INTO audiences (key, name, rule) VALUES (${key}, ${key}, ${sql.json(rule as never)})`;
  }

  type Step =
    | { kind: 'events'; events: { p: number; name: number; total: number; ageH: number }[] }
    | { kind: 'trait'; p: number; plan: string }
    | { kind: 'time'; hours: number };

  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 5,
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
  );

  it('after random event batches, trait changes and clock moves (with sweeps), memberships equal a full evaluation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 10 }), async (steps) => {
        await reset();
        let now = T0;
        const clock = () => new Date(now);
        // The starting point: every definition computed once over everybody.
        for (const d of await loadDefinitions(sql))
          await recomputeDefinition({ sql, now: clock }, { kind: d.kind, key: d.key });
        await sweepOnce({ sql }, clock());
        for (const s of steps) {
          if (s.kind === 'time') {
            now += s.hours * HOUR;
            await sweepOnce({ sql }, clock());
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
        // audiences read stored state, so compare each against a fresh evaluation of its own rule).
        const at = clock();
        const fresh = new Map(
          (
            await sql<{ id: string; v: number }[]>`
              SELECT profile_id::text AS id, round(avg((payload #>> '{properties,total}')::numeric), 6)::float AS v
              FROM events WHERE event = 'Order Completed' GROUP BY profile_id`
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
      { numRuns: 25, seed: 20261122, endOnFailure: true },
    );
  }, 240_000);
});
