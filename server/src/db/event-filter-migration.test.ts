import { eventFilterSchema } from '@cairn/core';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchesFilter } from '../pipeline/deliver/filter.ts';
import { fromLegacyFilter } from '../pipeline/deliver/legacy-filter.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../testing/index.ts';
import { listMigrations, migrate } from './migrate.ts';

const CONVERTS = 14;

type Legacy = { types?: string[]; events?: string[]; where?: { path: string; op: string; value?: unknown }[] };

// The matcher of before (deliver/filter.ts until migration 0014), the reference the converted
// filters are held to.
function matchedBefore(event: Record<string, unknown>, filter: Legacy): boolean {
  const at = (path: string) =>
    path
      .split('.')
      .reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as never)[k] : undefined), event);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const order = (a: unknown, b: unknown) =>
    typeof a === 'number' && typeof b === 'number'
      ? a - b
      : typeof a === 'string' && typeof b === 'string'
        ? a < b
          ? -1
          : a > b
            ? 1
            : 0
        : null;
  if (filter.types?.length && !filter.types.includes(event.type as string)) return false;
  const name = event.type === 'track' ? event.event : event.name;
  if (filter.events?.length && (typeof name !== 'string' || !filter.events.includes(name))) return false;
  return (filter.where ?? []).every((c) => {
    const v = at(c.path);
    const o = order(v, c.value);
    if (c.op === 'exists') return v !== undefined && v !== null;
    if (c.op === 'eq') return same(v, c.value);
    if (c.op === 'neq') return !same(v, c.value);
    if (c.op === 'contains')
      return (
        (typeof v === 'string' && typeof c.value === 'string' && v.includes(c.value)) ||
        (Array.isArray(v) && v.some((x) => same(x, c.value)))
      );
    if (c.op === 'in') return Array.isArray(c.value) && c.value.some((x) => same(x, v));
    if (o === null) return false;
    return { gt: o > 0, gte: o >= 0, lt: o < 0, lte: o <= 0 }[c.op] ?? false;
  });
}

const LEGACY: Legacy[] = [
  {},
  { types: ['track', 'page'] },
  { types: [], events: [] },
  { events: ['Order Completed', 'audience.entered'] },
  { events: ['Order Completed'], where: [{ path: 'properties.total', op: 'gte', value: 100 }] },
  { where: [{ path: 'properties.burst', op: 'neq', value: true }] },
  { where: [{ path: 'properties.coupon', op: 'exists' }] },
  { where: [{ path: 'properties.coupon', op: 'eq', value: 'SPRING' }] },
  { where: [{ path: 'properties.total', op: 'lt', value: 50 }] },
  { where: [{ path: 'properties.tags', op: 'contains', value: 'gift' }] },
  { where: [{ path: 'properties.plan', op: 'in', value: ['pro', 'team', null] }] },
  { where: [{ path: 'properties.total', op: 'gt', value: true }] },
  { where: [{ path: 'properties.total', op: 'in', value: [] }] },
  { where: [{ path: 'context.locale', op: 'eq', value: 'fr-FR' }] },
  { types: ['track'], where: [{ path: 'properties.items', op: 'neq', value: [1] }] },
];
// The rule language does not tell a JSON null from an absent value (`exists`, `is_empty`): `eq null`
// (null only, before) and `eq` without value (absent only) both become "absent or null", `neq`
// without value (present, even null) becomes "present and not null".
const NULL_OR_ABSENT: [Legacy, boolean[]][] = [
  [{ where: [{ path: 'properties.coupon', op: 'eq', value: null }] }, [false, true, true, true, true]],
  [{ where: [{ path: 'properties.coupon', op: 'neq' }] }, [true, false, false, false, false]],
];

const EVENTS: Record<string, unknown>[] = [
  { type: 'track', event: 'Order Completed', properties: { total: 120, coupon: 'SPRING', tags: ['gift'] } },
  { type: 'track', event: 'Order Completed', properties: { total: 20, burst: true, plan: 'pro' } },
  { type: 'track', event: 'audience.entered', properties: { audience: 'vip' }, context: { locale: 'fr-FR' } },
  { type: 'page', name: 'Pricing', properties: { plan: 'team', coupon: null } },
  { type: 'identify', traits: { plan: 'pro' }, context: { locale: 'de-DE' } },
];

describe.skipIf(POSTGRES_SKIP_REASON)(`migration ${CONVERTS}: destination filters become event filters`, () => {
  let db: TestDatabase;
  let sql: postgres.Sql;

  beforeAll(async () => {
    db = await createTestDatabase('event-filter-migration.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    // The database as the release before it left it: migrations up to the one before, recorded as
    // migrate() records them, so that migrate() applies the rest.
    const before = (await listMigrations()).filter((m) => m.version < CONVERTS);
    await sql.begin(async (tx) => {
      await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
      for (const m of before) {
        await tx.unsafe(m.sql);
        await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      }
    });
    for (const [i, filter] of [...LEGACY, ...NULL_OR_ABSENT.map(([f]) => f)].entries()) {
      await sql`
        INSERT INTO destinations (id, name, plugin, settings, filter)
        VALUES (${`d${i}`}, ${`legacy ${i}`}, 'webhook', '{}', ${sql.json(filter as never)})`;
    }
    await sql`INSERT INTO destinations (id, name, plugin, settings) VALUES ('plain', 'no filter', 'webhook', '{}')`;
    expect(await migrate(sql)).toContain(CONVERTS);
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('converts every stored filter by the table the API converts input with', async () => {
    const rows = await sql<{ id: string; filter: unknown }[]>`SELECT id, filter FROM destinations ORDER BY id`;
    const stored = new Map(rows.map((r) => [r.id, r.filter]));
    expect(stored.get('plain')).toEqual({});
    for (const [i, legacy] of LEGACY.entries()) {
      const filter = stored.get(`d${i}`);
      expect(filter, JSON.stringify(legacy)).toEqual(fromLegacyFilter(legacy));
      expect(eventFilterSchema.safeParse(filter).success, JSON.stringify(filter)).toBe(true);
    }
    expect(stored.get('d4')).toEqual({
      event: ['Order Completed'],
      where: [{ property: 'total', cmp: '>=', value: 100 }],
    });
  });

  it('the converted filters match the events the old ones matched', async () => {
    const rows = await sql<{ id: string; filter: never }[]>`SELECT id, filter FROM destinations WHERE id <> 'plain'`;
    const stored = new Map(rows.map((r) => [r.id, r.filter]));
    for (const [i, legacy] of LEGACY.entries()) {
      for (const event of EVENTS) {
        expect(
          matchesFilter(event, stored.get(`d${i}`)!),
          `${JSON.stringify(legacy)} on ${JSON.stringify(event)}`,
        ).toBe(matchedBefore(event, legacy));
      }
    }
  });

  it('null and absent values are one: the documented difference', async () => {
    for (const [k, [legacy, expected]] of NULL_OR_ABSENT.entries()) {
      const [row] = await sql<
        { filter: never }[]
      >`SELECT filter FROM destinations WHERE id = ${`d${LEGACY.length + k}`}`;
      expect(row!.filter).toEqual(fromLegacyFilter(legacy));
      expect(EVENTS.map((e) => matchesFilter(e, row!.filter))).toEqual(expected);
    }
  });

  it('is applied once', async () => {
    expect(await migrate(sql)).toEqual([]);
  });
});
