import { describe, expect, it } from 'vitest';
import {
  type RetentionQuery,
  retentionBounds,
  retentionHorizon,
  retentionPassSql,
  retentionRowsOfPass,
  retentionSql,
  retentionTable,
} from './retention.ts';

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

describe('retention as one pass per person', () => {
  // Three weekly cohorts from Monday 2026-03-02 in Berlin (the clocks change on 2026-03-29), two periods.
  const q: RetentionQuery = {
    range: { from: '2026-03-01T23:00:00Z', to: '2026-03-22T23:00:00Z', timezone: 'Europe/Berlin' },
    cohort: 'week',
    start: { event: 'Signed Up' },
    return: {},
    mode: 'recurring',
    periods: 2,
    bounded: true,
  };
  it('bounds the buckets from the first cohort to the horizon, on the wall clock', () => {
    expect(retentionBounds(q)).toEqual([
      '2026-03-01T23:00:00.000Z',
      '2026-03-08T23:00:00.000Z',
      '2026-03-15T23:00:00.000Z',
      '2026-03-22T23:00:00.000Z',
      '2026-03-29T22:00:00.000Z',
      '2026-04-05T22:00:00.000Z',
    ]);
    expect(retentionBounds(q).at(-1)).toBe(retentionHorizon(q));
  });
  it('binds every value and refuses more buckets than a bigint has bits', () => {
    const { text, values } = retentionPassSql(q, { now: new Date('2026-05-01T00:00:00Z') }).render();
    expect(values).toContainEqual(['Signed Up']);
    expect(text).toContain('ORDER BY timestamp DESC, id DESC');
    expect(() => retentionPassSql({ ...q, cohort: 'day', periods: 60 }, { now: new Date() })).toThrow(RangeError);
  });
  it('counts cohorts and periods from the bucket masks (bounded and unbounded)', () => {
    // 2 people entered weeks 0 and 1 (came back in week 0 after starting, and in week 2); 1 entered week 1, came back in week 3.
    const rows = [
      { first: null, entered: String(0b11), back: String(0b101), after: String(0b1), n: 2 },
      { first: null, entered: String(0b10), back: String(0b1000), after: null, n: 1 },
    ];
    const counts = (bounded: boolean) =>
      Object.fromEntries(
        retentionRowsOfPass({ ...q, bounded }, rows).map((r) => [`${r.cohort_ms}/${r.period}`, r.people]),
      );
    const [w0, w1] = retentionBounds(q).map((b) => Date.parse(b));
    expect(counts(true)).toEqual({
      [`${w0}/-1`]: 2,
      [`${w0}/0`]: 2,
      [`${w0}/2`]: 2,
      [`${w1}/-1`]: 3,
      [`${w1}/1`]: 2,
      [`${w1}/2`]: 1,
    });
    expect(counts(false)).toEqual({ [`${w0}/-1`]: 2, [`${w0}/2`]: 2, [`${w1}/-1`]: 3, [`${w1}/1`]: 2, [`${w1}/2`]: 1 });
    // First time: the cohort is the first bucket only.
    const first = retentionRowsOfPass({ ...q, mode: 'first_time' }, [
      { first: 1, entered: null, back: '8', after: '2', n: 4 },
    ]);
    expect(first).toEqual(
      expect.arrayContaining([
        { cohort_ms: w1, period: -1, people: 4 },
        { cohort_ms: w1, period: 0, people: 4 },
        { cohort_ms: w1, period: 2, people: 4 },
      ]),
    );
    expect(first).toHaveLength(3);
  });
});
