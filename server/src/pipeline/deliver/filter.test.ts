import { describe, expect, it } from 'vitest';
import { FilterSchema, matchesFilter } from './filter.ts';

const order = { type: 'track', event: 'Order Completed', properties: { total: 120, coupon: 'X' } };

describe('destination filters', () => {
  it('match by type, name and conditions', () => {
    expect(matchesFilter(order, {})).toBe(true);
    expect(matchesFilter(order, { types: ['track'] })).toBe(true);
    expect(matchesFilter(order, { types: ['page'] })).toBe(false);
    expect(matchesFilter(order, { events: ['Order Completed'] })).toBe(true);
    expect(matchesFilter({ type: 'page', name: 'Home' }, { events: ['Home'] })).toBe(true);
    expect(matchesFilter(order, { where: [{ path: 'properties.total', op: 'gte', value: 100 }] })).toBe(true);
    expect(matchesFilter(order, { where: [{ path: 'properties.total', op: 'lt', value: 100 }] })).toBe(false);
    expect(matchesFilter(order, { where: [{ path: 'properties.missing', op: 'exists' }] })).toBe(false);
  });

  it('an audience event is a track event: matched by its name', () => {
    const entered = { type: 'track', event: 'audience.entered', properties: { audience: 'vip' } };
    expect(matchesFilter(entered, FilterSchema.parse({ events: ['audience.entered'] }))).toBe(true);
  });

  it('refuses types that no event can have, and says what is valid', () => {
    const typo = FilterSchema.safeParse({ types: ['trak'] });
    expect(typo.success).toBe(false);
    expect(typo.error?.issues[0]?.path).toEqual(['types', 0]);
    expect(typo.error?.issues[0]?.message).toBe(
      '"trak" is not an event type (one of track, identify, page, screen, group, alias)',
    );
    const audience = FilterSchema.safeParse({ types: ['audience.entered'] });
    expect(audience.error?.issues[0]?.message).toMatch(/"audience.entered" is a track event name: use events$/);
    expect(FilterSchema.parse({ types: ['track', 'page'] })).toEqual({ types: ['track', 'page'] });
  });
});
