import { describe, expect, it } from 'vitest';
import { FilterSchema, matchesFilter } from './filter.ts';
import { fromLegacyFilter } from './legacy-filter.ts';

const order = { type: 'track', event: 'Order Completed', properties: { total: 120, coupon: 'X' } };

describe('destination filters', () => {
  it('match by type, name and conditions', () => {
    expect(matchesFilter(order, {})).toBe(true);
    expect(matchesFilter(order, { type: ['track'] })).toBe(true);
    expect(matchesFilter(order, { type: 'page' })).toBe(false);
    expect(matchesFilter(order, { event: ['Order Completed'] })).toBe(true);
    expect(matchesFilter({ type: 'page', name: 'Home' }, { event: ['Home'] })).toBe(true);
    expect(matchesFilter(order, { where: [{ property: 'total', cmp: '>=', value: 100 }] })).toBe(true);
    expect(matchesFilter(order, { where: [{ property: 'total', cmp: '<', value: 100 }] })).toBe(false);
    expect(matchesFilter(order, { where: [{ property: 'missing', cmp: 'exists' }] })).toBe(false);
    expect(matchesFilter(order, { where: [{ not: { property: 'burst', cmp: '=', value: true } }] })).toBe(true);
    expect(matchesFilter(order, { where: [{ field: 'type', cmp: '=', value: 'track' }] })).toBe(true);
  });

  it('an audience event is a track event: matched by its name', () => {
    const entered = { type: 'track', event: 'audience.entered', properties: { audience: 'vip' } };
    expect(matchesFilter(entered, FilterSchema.parse({ event: ['audience.entered'] }))).toBe(true);
  });

  it('refuses types that no event can have, and says what is valid', () => {
    const typo = FilterSchema.safeParse({ type: ['trak'] });
    expect(typo.success).toBe(false);
    expect(typo.error?.issues[0]?.path).toEqual(['type', 0]);
    expect(typo.error?.issues[0]?.message).toBe(
      '"trak" is not an event type (one of track, identify, page, screen, group, alias)',
    );
    const audience = FilterSchema.safeParse({ type: ['audience.entered'] });
    expect(audience.error?.issues[0]?.message).toMatch(/"audience.entered" is a track event name: use event$/);
    expect(FilterSchema.parse({ type: ['track', 'page'] })).toEqual({ type: ['track', 'page'] });
    expect(FilterSchema.parse(undefined)).toEqual({});
  });
});

describe('the filter form of before (deprecated, accepted for one release)', () => {
  it('is converted on input and matches what it matched', () => {
    const legacy = { events: ['Order Completed'], where: [{ path: 'properties.total', op: 'gte', value: 100 }] };
    const filter = FilterSchema.parse(legacy);
    expect(filter).toEqual({ event: ['Order Completed'], where: [{ property: 'total', cmp: '>=', value: 100 }] });
    expect(matchesFilter(order, filter)).toBe(true);
    expect(matchesFilter({ ...order, properties: { total: 99 } }, filter)).toBe(false);
    expect(FilterSchema.parse({ types: ['track'] })).toEqual({ type: ['track'] });
    expect(FilterSchema.safeParse({ types: ['trak'] }).error?.issues[0]?.path).toEqual(['type', 0]);
  });

  it('converts every operator by the table of legacy-filter.ts', () => {
    const convert = (c: Record<string, unknown>) => fromLegacyFilter({ where: [{ path: 'properties.a', ...c }] });
    const p = { property: 'a' };
    expect(convert({ op: 'exists' })).toEqual({ where: [{ ...p, cmp: 'exists' }] });
    expect(convert({ op: 'eq', value: 'x' })).toEqual({ where: [{ ...p, cmp: '=', value: 'x' }] });
    expect(convert({ op: 'eq', value: null })).toEqual({ where: [{ not: { ...p, cmp: 'exists' } }] });
    expect(convert({ op: 'neq', value: true })).toEqual({ where: [{ not: { ...p, cmp: '=', value: true } }] });
    expect(convert({ op: 'neq' })).toEqual({ where: [{ ...p, cmp: 'exists' }] });
    expect(convert({ op: 'neq', value: { a: 1 } })).toEqual({});
    expect(convert({ op: 'lt', value: 3 })).toEqual({ where: [{ ...p, cmp: '<', value: 3 }] });
    expect(convert({ op: 'contains', value: 3 })).toEqual({ where: [{ ...p, cmp: 'contains', value: '3' }] });
    expect(convert({ op: 'in', value: ['a', null, 2] })).toEqual({ where: [{ ...p, cmp: 'in', value: ['a', 2] }] });
    expect(convert({ op: 'gt', value: true })).toEqual({
      where: [{ ...p, cmp: 'exists' }, { not: { ...p, cmp: 'exists' } }],
    });
    expect(fromLegacyFilter({ where: [{ path: 'context.locale', op: 'exists' }] })).toEqual({
      where: [{ field: 'context.locale', cmp: 'exists' }],
    });
    expect(fromLegacyFilter({ types: [], events: [] })).toEqual({});
  });

  it('a missing value passes neq, as it did', () => {
    const filter = FilterSchema.parse({ where: [{ path: 'properties.burst', op: 'neq', value: true }] });
    expect(matchesFilter(order, filter)).toBe(true);
    expect(matchesFilter({ ...order, properties: { burst: true } }, filter)).toBe(false);
  });

  it('refuses a list given in both forms', () => {
    expect(FilterSchema.safeParse({ events: ['a'], event: 'b' }).success).toBe(false);
  });
});
