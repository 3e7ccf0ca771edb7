import { describe, expect, it } from 'vitest';
import { medianOf, pacing, periodAt, previousToDate, robustBaseline, seasonalWindows } from './kpi.ts';

describe('periodAt', () => {
  it('cuts days, ISO weeks and months in the zone, DST days 23 hours long', () => {
    expect(periodAt(new Date('2026-03-29T12:00:00Z'), 'day', 'Europe/Berlin')).toEqual({
      from: '2026-03-28T23:00:00.000Z',
      to: '2026-03-29T22:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
    // Sunday 2026-11-01 late evening in New York is still the week of Monday 2026-10-26.
    expect(periodAt(new Date('2026-11-02T03:00:00Z'), 'week', 'America/New_York')).toEqual({
      from: '2026-10-26T04:00:00.000Z',
      to: '2026-11-02T05:00:00.000Z',
      timezone: 'America/New_York',
    });
    expect(periodAt(new Date('2026-02-10T00:00:00Z'), 'month', 'UTC')).toEqual({
      from: '2026-02-01T00:00:00.000Z',
      to: '2026-03-01T00:00:00.000Z',
      timezone: 'UTC',
    });
  });
});

describe('pacing', () => {
  const range = { from: '2026-05-01T00:00:00Z', to: '2026-05-02T00:00:00Z', timezone: 'UTC' };
  it('expects the target on a straight line and projects the pace so far', () => {
    expect(pacing({ value: 30, target: 100, range, at: new Date('2026-05-01T06:00:00Z') })).toEqual({
      value: 30,
      target: 100,
      achievementPct: 30,
      elapsed: 0.25,
      expected: 25,
      pacePct: 120,
      projected: 120,
    });
  });
  it('has no pace at the very start and stops at the end', () => {
    const start = pacing({ value: 0, target: 100, range, at: new Date(range.from) });
    expect([start.pacePct, start.projected, start.expected]).toEqual([null, null, 0]);
    const after = pacing({ value: 80, target: 100, range, at: new Date('2026-05-03T00:00:00Z') });
    expect([after.elapsed, after.expected, after.projected, after.achievementPct]).toEqual([1, 100, 80, 80]);
  });
  it('counts a 23-hour DST day by its own hours', () => {
    const day = periodAt(new Date('2026-03-29T12:00:00Z'), 'day', 'Europe/Berlin');
    const p = pacing({ value: 10, target: 23, range: day, at: new Date('2026-03-29T09:00:00Z') });
    expect(p.elapsed).toBeCloseTo(10 / 23, 10);
    expect(p.expected).toBeCloseTo(10, 10);
  });
});

describe('previousToDate', () => {
  it('takes as much of the previous period as has passed of this one', () => {
    const today = periodAt(new Date('2026-05-02T06:00:00Z'), 'day', 'UTC');
    expect(previousToDate(today, 'day', new Date('2026-05-02T06:00:00Z'))).toEqual({
      from: '2026-05-01T00:00:00.000Z',
      to: '2026-05-01T06:00:00.000Z',
      timezone: 'UTC',
    });
    const march = periodAt(new Date('2026-03-16T12:00:00Z'), 'month', 'UTC');
    // Half of March gone (15.5 of 31 days): half of February (14 of 28 days).
    expect(previousToDate(march, 'month', new Date('2026-03-16T12:00:00Z')).to).toBe('2026-02-15T00:00:00.000Z');
  });
});

describe('seasonalWindows', () => {
  it('keeps the weekday and wall clock over DST, oldest first', () => {
    const w = seasonalWindows(new Date('2026-04-01T08:00:00Z'), 'Europe/Berlin', 2);
    expect(w).toEqual([
      { from: '2026-03-17T23:00:00.000Z', to: '2026-03-18T09:00:00.000Z' },
      { from: '2026-03-24T23:00:00.000Z', to: '2026-03-25T09:00:00.000Z' },
      { from: '2026-03-31T22:00:00.000Z', to: '2026-04-01T08:00:00.000Z' },
    ]);
  });
});

describe('robustBaseline', () => {
  it('ignores one outlier week that a mean and standard deviation would not', () => {
    const b = robustBaseline([100, 104, 98, 101, 400], 3);
    expect([b.median, b.mad]).toEqual([101, 3]);
    expect(b.spread).toBeCloseTo(5.05, 10);
    expect(b.lower).toBeCloseTo(85.85, 10);
    expect(50 < b.lower).toBe(true);
    // mean ± 3 sd of the same history would accept 50 as normal.
    const mean = (100 + 104 + 98 + 101 + 400) / 5;
    const sd = Math.sqrt([100, 104, 98, 101, 400].reduce((s, v) => s + (v - mean) ** 2, 0) / 4);
    expect(50 > mean - 3 * sd).toBe(true);
  });
  it('floors the spread of a flat history', () => {
    expect(robustBaseline([10, 10, 10], 3)).toMatchObject({ median: 10, mad: 0, spread: 1, lower: 7, upper: 13 });
    expect(robustBaseline([0, 0], 2).spread).toBe(1);
    expect(() => robustBaseline([], 3)).toThrow(RangeError);
  });
  it('medianOf takes the middle two of an even count', () => {
    expect(medianOf([3, 1, 2, 10])).toBe(2.5);
  });
});
