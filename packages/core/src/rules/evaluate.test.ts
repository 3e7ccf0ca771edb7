import { describe, expect, it } from 'vitest';
import type { Comparison, EventFilter } from './ast.ts';
import { compareValue, matchEvent } from './evaluate.ts';
import { compileEventFilter, describeEventFilter, eventFilterJsonSchema, eventFilterSchema } from './event-filter.ts';
import { dateOf, textOf, valueAt } from './values.ts';

const now = Date.parse('2026-11-22T12:00:00Z');
const holds = (v: unknown, c: Comparison) => compareValue(v, c, now);

const order = {
  type: 'track',
  event: 'Order Completed',
  userId: 'u1',
  properties: { total: 120, coupon: 'SPRING', items: [{ sku: 'a' }, { sku: 'b' }], tags: ['Gift', 3] },
  context: { locale: 'fr-FR' },
};

describe('compareValue (README "Comparisons")', () => {
  it('= and != by number, boolean or lower-cased text; != is false when the value has no such form', () => {
    expect(holds('42', { cmp: '=', value: 42 })).toBe(true);
    expect(holds(42, { cmp: '=', value: '42' })).toBe(true);
    expect(holds('VIP', { cmp: '=', value: 'vip' })).toBe(true);
    expect(holds('TRUE', { cmp: '=', value: true })).toBe(true);
    expect(holds(undefined, { cmp: '!=', value: 'x' })).toBe(false);
    expect(holds({ a: 1 }, { cmp: '!=', value: 'x' })).toBe(false);
    expect(holds('y', { cmp: '!=', value: 'x' })).toBe(true);
    expect(holds('4x', { cmp: '=', value: 4 })).toBe(false);
  });

  it('orders numbers exactly (as numeric), dates as dates (to the microsecond), other text by code point', () => {
    expect(holds('0.30000000000000001', { cmp: '>', value: 0.3 })).toBe(true);
    expect(holds(1e21, { cmp: '=', value: '1000000000000000000000' })).toBe(true);
    expect(holds('2026-01-01T00:00:00.0000001Z', { cmp: '>', value: '2026-01-01' })).toBe(false);
    expect(holds('2026-01-01T00:00:00.000001Z', { cmp: '>', value: '2026-01-01' })).toBe(true);
    expect(holds('2026-01-01T01:00:00+02:00', { cmp: '<', value: '2026-01-01' })).toBe(true);
    expect(holds('2026-02-30', { cmp: '<', value: '2027-01-01' })).toBe(false);
    expect(holds('b', { cmp: 'between', value: ['a', 'c'] })).toBe(true);
    expect(holds('\u{1F600}', { cmp: '>', value: '\uFFFD' })).toBe(true);
    expect(holds(true, { cmp: '>', value: 'a' })).toBe(true); // its text, 'true'
    expect(holds({ a: 1 }, { cmp: '>', value: 'a' })).toBe(false);
  });

  it('in, contains, starts_with, regex, exists, is_empty', () => {
    expect(holds('Pro', { cmp: 'in', value: ['free', 'pro'] })).toBe(true);
    expect(holds('7', { cmp: 'in', value: [7] })).toBe(true);
    expect(holds(['Gift', 3], { cmp: 'contains', value: 'gift' })).toBe(true);
    expect(holds(['Gifts'], { cmp: 'contains', value: 'gift' })).toBe(false);
    expect(holds('Big Gifts', { cmp: 'contains', value: 'GIFT' })).toBe(true);
    expect(holds('Spring', { cmp: 'starts_with', value: 'spr' })).toBe(true);
    expect(holds('a\nb', { cmp: 'regex', value: '^a.b$' })).toBe(true);
    expect(holds('ABC', { cmp: 'regex', value: '^abc' })).toBe(false);
    expect(holds(null, { cmp: 'exists' })).toBe(false);
    expect(holds(0, { cmp: 'exists' })).toBe(true);
    for (const v of [undefined, null, '', [], {}]) expect(holds(v, { cmp: 'is_empty' })).toBe(true);
    expect(holds(0, { cmp: 'is_empty' })).toBe(false);
  });

  it('relative dates against the given now', () => {
    expect(holds('2026-11-20', { cmp: 'within_last', days: 3 })).toBe(true);
    expect(holds('2026-11-19T12:00:00Z', { cmp: 'within_last', days: 3 })).toBe(false);
    expect(holds('2026-11-25', { cmp: 'within_next', days: 3 })).toBe(true);
    expect(holds('2026-01-01', { cmp: 'older_than', days: 30 })).toBe(true);
    expect(holds('2026-11-21T12:00:00Z', { cmp: 'older_than', days: 1 })).toBe(true); // <= now - N days
    expect(holds('2026-11-21T12:00:00.000001Z', { cmp: 'older_than', days: 1 })).toBe(false);
    expect(holds('2026-11-22T12:00:00Z', { cmp: 'within_next', days: 1 })).toBe(true); // now <= d
    expect(holds('2026-11-23T12:00:00Z', { cmp: 'within_next', days: 1 })).toBe(false); // d < now + N days
    expect(holds('1990-11-25', { cmp: 'anniversary_within', days: 3 })).toBe(true);
    expect(holds('1990-11-21', { cmp: 'anniversary_within', days: 3 })).toBe(false);
    expect(compareValue('2000-02-29', { cmp: 'anniversary_within', days: 0 }, Date.parse('2027-02-28T10:00:00Z'))).toBe(
      true,
    );
  });
});

describe('value forms', () => {
  it('read numbers as Postgres prints them, dates to the microsecond, paths as jsonb #> does', () => {
    expect(textOf(1e-7)).toBe('0.0000001');
    expect(textOf(-2.5)).toBe('-2.5');
    expect(dateOf('2026-01-01')).toBe(BigInt(Date.UTC(2026, 0, 1)) * 1000n);
    expect(dateOf('0000-01-01')).toBeUndefined();
    expect(valueAt(order, ['properties', 'items', '-1', 'sku'])).toBe('b');
    expect(valueAt(order, ['properties', 'items', 'x'])).toBeUndefined();
    expect(valueAt(order, ['properties', 'total', 'x'])).toBeUndefined();
  });
});

describe('matchEvent', () => {
  const match = (f: EventFilter, e: Record<string, unknown> = order) => matchEvent(f, e, now);

  it('by name (one or any of several), type, properties, fields from the root and negations', () => {
    expect(match({})).toBe(true);
    expect(match({ event: 'Order Completed' })).toBe(true);
    expect(match({ event: ['Signed Up', 'Order Completed'], type: 'track' })).toBe(true);
    expect(match({ type: ['page', 'screen'] })).toBe(false);
    expect(match({ event: 'Pricing' }, { type: 'page', name: 'Pricing' })).toBe(true);
    expect(match({ event: 'Pricing' }, { type: 'identify', name: 'Pricing' })).toBe(false);
    expect(match({ where: [{ property: 'total', cmp: '>=', value: 100 }] })).toBe(true);
    expect(match({ where: [{ property: 'items.0.sku', cmp: '=', value: 'A' }] })).toBe(true);
    expect(match({ where: [{ field: 'context.locale', cmp: 'starts_with', value: 'fr' }] })).toBe(true);
    expect(match({ where: [{ field: 'userId', cmp: '=', value: 'u2' }] })).toBe(false);
    expect(match({ where: [{ not: { property: 'burst', cmp: '=', value: true } }] })).toBe(true);
    expect(match({ where: [{ not: { property: 'coupon', cmp: 'exists' } }] })).toBe(false);
  });

  it('a rule leaf’s event match is an event filter', () => {
    const leaf = {
      event: 'Order Completed',
      type: 'track' as const,
      where: [{ property: 'total', cmp: '>' as const, value: 100 }],
    };
    expect(match(leaf)).toBe(true);
  });
});

describe('eventFilterSchema', () => {
  it('takes names, types and conditions; refuses unknown types, fields and impossible dates with paths', () => {
    const f = { event: ['a', 'b'], type: 'track', where: [{ not: { field: 'context.locale', cmp: 'exists' } }] };
    expect(eventFilterSchema.parse(f)).toEqual(f);
    const typo = eventFilterSchema.safeParse({ type: ['trak'] });
    expect(typo.error?.issues[0]?.path).toEqual(['type', 0]);
    expect(typo.error?.issues[0]?.message).toBe(
      '"trak" is not an event type (one of track, identify, page, screen, group, alias)',
    );
    expect(eventFilterSchema.safeParse({ events: ['a'] }).success).toBe(false);
    const date = eventFilterSchema.safeParse({ where: [{ property: 'd', cmp: '>', value: '2026-02-30' }] });
    expect(date.error?.issues).toEqual([expect.objectContaining({ path: ['where', 0, 'value'] })]);
    expect(eventFilterSchema.safeParse({ where: [{ property: 'x', cmp: 'regex', value: '(?=a)' }] }).success).toBe(
      false,
    );
  });

  it('is described by a JSON Schema generated from it', () => {
    const schema = JSON.stringify(eventFilterJsonSchema());
    expect(schema).toContain('"additionalProperties":false');
    expect(schema).toContain('"field"');
    expect(schema).toContain('"not"');
    expect(schema).not.toContain('$schema');
  });
});

describe('compileEventFilter and describeEventFilter', () => {
  it('compiles to one parameterised condition over an events row', () => {
    const { text, values } = compileEventFilter(
      { type: 'track', event: ['a'], where: [{ not: { field: 'userId', cmp: '=', value: 'x' } }] },
      { now: new Date(now) },
    ).render();
    expect(text).toContain('e.type = ANY($1::text[])');
    expect(text).toContain('NOT coalesce(');
    expect(values.slice(0, 3)).toEqual([['track'], ['a'], ['userId']]);
    expect(compileEventFilter({}, { now: new Date(now) }).render().text).toBe('true');
  });

  it('reads aloud', () => {
    expect(describeEventFilter({ event: ['a', 'b'], where: [{ not: { property: 'x', cmp: 'exists' } }] })).toBe(
      '"a" or "b" where not (x is set)',
    );
  });
});
