import { compileEventFilter, type EventFilter, eventFilterSchema, eventName, matchEvent } from '@cairn/core';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../db/migrate.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../../testing/index.ts';

// The in-memory evaluator (matchEvent, flow triggers and destination filters) against the SQL
// compiler (compileEventFilter) on a real Postgres with Cairn's own SQL functions (cairn_num,
// cairn_text, cairn_ts, ...): random events, random valid filters, the same answer for every event.

// Text both sides lower-case alike (Postgres by its locale, JavaScript by Unicode: they differ on a
// few letters such as a final sigma, which rules leave to the database).
// Mostly from a small pool, so that equalities, prefixes and substrings often hold (in either case).
const text = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('abc', 'ABC', 'Abc', 'ab', 'b', 'C', 'É', 'éa', 'a\nc', '😀', 'true', 'TRUE'),
  },
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.constantFrom('a', 'B', 'c', 'Z', 'É', 'é', ' ', '\n', '-', '.', '1', '😀'),
      maxLength: 6,
    }),
  },
);
const numberText = fc.constantFrom('42', '-3.50', '007', '0.30000000000000001', '1e5', '-0', '12.');
const dateText = fc.constantFrom(
  '2026-11-20',
  '2026-11-22T12:00:00Z',
  // Exactly a day or a year away from an instant below: the boundaries of relative dates.
  '2026-11-21T12:00:00Z',
  '2026-11-23T12:00:00Z',
  '2025-11-22T12:00:00Z',
  '2027-02-27T23:30:00Z',
  '2023-02-28',
  '2026-11-21T12:00:00.000001Z',
  '2026-12-22',
  '2025-11-22T13:00:00+01:00',
  '2026-11-22T11:59:59.999999Z',
  '2026-11-22T12:00:00.0000005Z',
  '2026-11-22 12:00:00+01',
  '2026-11-23T00:00:00-0330',
  '2026-02-30',
  '1990-11-25',
  '2000-02-29',
  '2026-11-22T24:00',
  '0000-01-01',
);
const number = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.1, 0.3, 1e21, 1e-7, -2.5, 1.5, 5e-324),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const scalar = fc.oneof(
  { weight: 3, arbitrary: text },
  { weight: 2, arbitrary: number },
  { weight: 1, arbitrary: numberText },
  { weight: 2, arbitrary: dateText },
  { weight: 1, arbitrary: fc.boolean() },
);
const value = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom({}, { x: 1 }, '', []) },
);

const NAMES = ['A', 'B', 'audience.entered'];
const TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
const PROPERTIES = ['a', 'b', 'n.x', 'arr.0', 'arr.-1'];
const FIELDS = ['userId', 'context.locale', 'properties.a', 'type', 'traits.plan'];

const event = fc
  .record({
    type: fc.constantFrom(...TYPES),
    name: fc.constantFrom(...NAMES),
    userId: fc.option(text, { nil: undefined }),
    properties: fc.record(
      { a: value, b: value, n: fc.record({ x: value }), arr: fc.array(value, { maxLength: 3 }) },
      { requiredKeys: ['a'] },
    ),
    locale: fc.option(value, { nil: undefined }),
    plan: fc.option(value, { nil: undefined }),
  })
  .map(({ type, name, userId, properties, locale, plan }) => {
    const e: Record<string, unknown> = { type, properties };
    if (type === 'track') e.event = name;
    else e.name = name;
    if (userId !== undefined) e.userId = userId;
    if (locale !== undefined) e.context = { locale };
    if (plan !== undefined) e.traits = { plan };
    return e;
  });

const ordering = fc.oneof(number, text, numberText, dateText);
const comparison = fc.oneof(
  fc.record({ cmp: fc.constantFrom('=', '!='), value: scalar }),
  fc.record({ cmp: fc.constantFrom('<', '<=', '>', '>='), value: ordering }),
  fc.record({ cmp: fc.constant('between'), value: fc.tuple(ordering, ordering) }),
  fc.record({ cmp: fc.constant('in'), value: fc.array(scalar, { minLength: 1, maxLength: 4 }) }),
  fc.record({ cmp: fc.constantFrom('contains', 'starts_with'), value: text.filter((s) => s.length > 0) }),
  fc.record({
    cmp: fc.constant('regex'),
    value: fc.constantFrom('^a', 'c$', 'a.c', '[0-9]+', '^[A-Z]', 'é', '.', '^$'),
  }),
  fc.record({ cmp: fc.constantFrom('exists', 'is_empty') }),
  fc.record({
    cmp: fc.constantFrom('within_last', 'within_next', 'older_than', 'anniversary_within'),
    days: fc.oneof(fc.constantFrom(0, 1, 365, 366), fc.integer({ min: 0, max: 400 })),
  }),
);
const condition = fc
  .tuple(
    fc.oneof(
      // Mostly the property every event has.
      { weight: 4, arbitrary: fc.constant({ property: 'a' }) },
      { weight: 2, arbitrary: fc.constantFrom(...PROPERTIES).map((property) => ({ property })) },
      { weight: 2, arbitrary: fc.constantFrom(...FIELDS).map((field) => ({ field })) },
    ),
    comparison,
    fc.boolean(),
  )
  .map(([target, c, negated]) => (negated ? { not: { ...target, ...c } } : { ...target, ...c }));
const oneOrMany = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, fc.array(a, { minLength: 1, maxLength: 3 }));
// Names and types narrow seldom, and few conditions: most filters then match some events.
const sometimes = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
const filter = fc
  .record({
    event: sometimes(oneOrMany(fc.constantFrom(...NAMES))),
    type: sometimes(oneOrMany(fc.constantFrom(...TYPES))),
    where: fc.array(condition, { minLength: 1, maxLength: 2 }),
  })
  .map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)))
  // Only valid filters (dates that exist, bounds in order, no ordered booleans): what the API stores.
  .filter((f) => eventFilterSchema.safeParse(f).success) as fc.Arbitrary<EventFilter>;

const instant = fc.constantFrom('2026-11-22T12:00:00Z', '2027-02-28T23:30:00Z', '2024-02-29T00:00:00Z').map(Date.parse);

describe.skipIf(POSTGRES_SKIP_REASON)('matchEvent agrees with the SQL compiler of event filters', () => {
  let db: TestDatabase;
  let sql: postgres.Sql;

  beforeAll(async () => {
    db = await createTestDatabase('filter.property.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    await migrate(sql);
    // The columns of the events table a filter reads, without its constraints (sources, ids).
    await sql`CREATE TABLE ev (id integer PRIMARY KEY, type text NOT NULL, event text, payload jsonb NOT NULL)`;
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('on random events and filters, at random instants', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { minLength: 1, maxLength: 12 }),
        fc.array(filter, { minLength: 1, maxLength: 6 }),
        instant,
        async (events, filters, nowMs) => {
          await sql`TRUNCATE ev`;
          const rows = events.map((e, id) => ({ id, type: e.type, event: eventName(e) ?? null, payload: e }));
          await sql`INSERT INTO ev ${sql(rows.map((r) => ({ ...r, payload: sql.json(r.payload as never) })) as never)}`;
          for (const f of filters) {
            const { text, values } = compileEventFilter(f, { now: new Date(nowMs) }).render();
            // Compiler-made text with bound parameters (see compute/evaluate.ts#runFragment).
            const found = await sql.unsafe(`SELECT e.id FROM ev e WHERE ${text} ORDER BY e.id`, values as never[]);
            const inSql = found.map((r) => r.id as number);
            const inMemory = events.flatMap((e, id) => (matchEvent(f, e, nowMs) ? [id] : []));
            expect(inMemory, JSON.stringify({ filter: f, now: new Date(nowMs) })).toEqual(inSql);
          }
        },
      ),
      { numRuns: Number(process.env.FILTER_RUNS ?? 500) },
    );
  });
});
