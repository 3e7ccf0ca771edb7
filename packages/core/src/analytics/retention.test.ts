import { describe, expect, it } from 'vitest';
import { type RetentionQuery, retentionHorizon, retentionSql, retentionTable } from './retention.ts';

const query: RetentionQuery = {
  range: { from: '2026-03-02T00:00:00Z', to: '2026-03-16T00:00:00Z', timezone: 'UTC' },
  cohort: 'week',
  start: { event: 'Signed Up' },
  return: {},
  mode: 'first_time',
  periods: 2,
  bounded: true,
};
const monday = (d: string) => Date.parse(`2026-03-${d}T00:00:00Z`);

describe('retention', () => {
  it('looks at returns up to the end of the last cohort’s last period, on the wall clock', () => {
    expect(retentionHorizon(query)).toBe('2026-03-30T00:00:00.000Z');
    // Berlin: the weeks after the DST change start at 22:00 UTC.
    expect(
      retentionHorizon({
        range: { from: '2026-03-16T00:00:00+01:00', to: '2026-03-23T00:00:00+01:00', timezone: 'Europe/Berlin' },
        cohort: 'week',
        periods: 1,
      }),
    ).toBe('2026-03-29T22:00:00.000Z');
  });

  it('fills every cohort and period, with percent and completeness', () => {
    const rows = [
      { cohort_ms: monday('02'), period: -1, people: 4 },
      { cohort_ms: monday('02'), period: 0, people: 2 },
      { cohort_ms: monday('02'), period: 1, people: 1 },
    ];
    const table = retentionTable(query, rows, new Date('2026-03-20T00:00:00Z'));
    expect(table).toEqual([
      {
        cohort: '2026-03-02T00:00:00.000Z',
        size: 4,
        periods: [
          { period: 0, start: '2026-03-02T00:00:00.000Z', people: 2, percent: 50, complete: true },
          { period: 1, start: '2026-03-09T00:00:00.000Z', people: 1, percent: 25, complete: true },
          { period: 2, start: '2026-03-16T00:00:00.000Z', people: 0, percent: 0, complete: false },
        ],
      },
      {
        cohort: '2026-03-09T00:00:00.000Z',
        size: 0,
        periods: [
          { period: 0, start: '2026-03-09T00:00:00.000Z', people: 0, percent: null, complete: true },
          { period: 1, start: '2026-03-16T00:00:00.000Z', people: 0, percent: null, complete: false },
          { period: 2, start: '2026-03-23T00:00:00.000Z', people: 0, percent: null, complete: false },
        ],
      },
    ]);
  });

  it('sums the last return periods from the right when unbounded', () => {
    const rows = [
      { cohort_ms: monday('02'), period: -1, people: 3 },
      { cohort_ms: monday('02'), period: 0, people: 1 },
      { cohort_ms: monday('02'), period: 2, people: 1 },
    ];
    const [first] = retentionTable({ ...query, bounded: false }, rows, new Date('2027-01-01T00:00:00Z'));
    expect(first!.periods.map((p) => [p.people, p.percent])).toEqual([
      [2, 66.67],
      [1, 33.33],
      [1, 33.33],
    ]);
  });

  it('builds one parameterised statement (values never in the text)', () => {
    for (const mode of ['first_time', 'recurring'] as const)
      for (const bounded of [true, false]) {
        const { text, values } = retentionSql(
          { ...query, mode, bounded, start: { event: "it's" } },
          { now: new Date() },
        ).render();
        expect(text).not.toContain("it's");
        expect(values).toContain('UTC');
        expect(text).toMatch(/bool_or\(s\) OVER/);
        expect(text.includes('NOT EXISTS')).toBe(mode === 'first_time');
        expect(text.includes('max(k)')).toBe(!bounded);
      }
  });
});
