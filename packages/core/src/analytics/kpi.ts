import { DateTime } from 'luxon';
import { previousRange, type TimeRange } from './range.ts';

/** The period a KPI's target is set for, cut in the KPI's time zone (weeks are ISO, from Monday). */
export type KpiPeriod = 'day' | 'week' | 'month';
export const KPI_PERIODS: readonly KpiPeriod[] = ['day', 'week', 'month'];

/**
 * The period holding the instant `at` in a time zone, as a range `[from, to)`.
 *
 * @example
 * periodAt(new Date('2026-03-29T12:00:00Z'), 'day', 'Europe/Berlin');
 * // { from: '2026-03-28T23:00:00.000Z', to: '2026-03-29T22:00:00.000Z', timezone: 'Europe/Berlin' } (23 h: DST)
 */
export function periodAt(at: Date, period: KpiPeriod, timezone: string): TimeRange {
  const start = DateTime.fromJSDate(at, { zone: timezone }).startOf(period, { useLocaleWeeks: false });
  return {
    from: start.toUTC().toISO()!,
    to: start
      .plus({ [`${period}s`]: 1 })
      .toUTC()
      .toISO()!,
    timezone,
  };
}

/** How far a period is, and where a value is headed at that pace. */
export interface Pacing {
  /** The value so far. */
  value: number;
  target: number;
  /** Value / target, in percent (null for a zero target). */
  achievementPct: number | null;
  /** The share of the period gone at `at`, 0..1. */
  elapsed: number;
  /** Where the value should be now on a straight line from 0 to the target. */
  expected: number;
  /** Value / expected, in percent (null while nothing is expected yet). */
  pacePct: number | null;
  /** The value at the period's end if it keeps its pace so far (null before any time has passed). */
  projected: number | null;
}

/**
 * Linear pacing of a value against a target over `[from, to)` at the instant `at`: the expected value
 * is the target times the share of the period gone (a 23-hour DST day counts its own 23 hours).
 *
 * @example
 * pacing({ value: 30, target: 100, range: { from: '2026-05-01T00:00:00Z', to: '2026-05-02T00:00:00Z', timezone: 'UTC' },
 *   at: new Date('2026-05-01T06:00:00Z') });
 * // { value: 30, target: 100, achievementPct: 30, elapsed: 0.25, expected: 25, pacePct: 120, projected: 120 }
 */
export function pacing(input: { value: number; target: number; range: TimeRange; at: Date }): Pacing {
  const from = Date.parse(input.range.from);
  const to = Date.parse(input.range.to);
  const elapsed = Math.min(1, Math.max(0, (input.at.getTime() - from) / (to - from)));
  const expected = input.target * elapsed;
  return {
    value: input.value,
    target: input.target,
    achievementPct: input.target === 0 ? null : (input.value / input.target) * 100,
    elapsed,
    expected,
    pacePct: expected === 0 ? null : (input.value / expected) * 100,
    projected: elapsed === 0 ? null : input.value / elapsed,
  };
}

/**
 * The part of the previous period as far into it as `at` is into the current one (like for like: the
 * first 6 hours of today against the first 6 hours of yesterday; a month by its share of time).
 *
 * @example
 * previousToDate({ from: '2026-05-02T00:00:00Z', to: '2026-05-03T00:00:00Z', timezone: 'UTC' }, 'day', new Date('2026-05-02T06:00:00Z'));
 * // { from: '2026-05-01T00:00:00.000Z', to: '2026-05-01T06:00:00.000Z', timezone: 'UTC' }
 */
export function previousToDate(current: TimeRange, period: KpiPeriod, at: Date): TimeRange {
  const prev = previousRange(current, period);
  const from = Date.parse(current.from);
  const share = Math.min(1, Math.max(0, (at.getTime() - from) / (Date.parse(current.to) - from)));
  const prevFrom = Date.parse(prev.from);
  const prevTo = prevFrom + Math.round(share * (Date.parse(prev.to) - prevFrom));
  return { from: prev.from, to: new Date(prevTo).toISOString(), timezone: current.timezone };
}

/**
 * The seasonal windows of an anomaly check: today so far (local midnight to `at`), then the same
 * weekday and wall-clock span 1..`weeks` weeks earlier (wall clock kept across DST changes), oldest
 * first, so their bounds ascend.
 *
 * @example
 * seasonalWindows(new Date('2026-05-13T09:00:00Z'), 'UTC', 2);
 * // [{ from: '2026-04-29T00:00:00.000Z', to: '2026-04-29T09:00:00.000Z' }, { from: '2026-05-06T00:00...', ... }, today]
 */
export function seasonalWindows(at: Date, timezone: string, weeks: number): { from: string; to: string }[] {
  const now = DateTime.fromJSDate(at, { zone: timezone });
  const day = now.startOf('day');
  const out: { from: string; to: string }[] = [];
  for (let k = weeks; k >= 0; k--)
    out.push({ from: day.minus({ weeks: k }).toUTC().toISO()!, to: now.minus({ weeks: k }).toUTC().toISO()! });
  return out;
}

/** Where a value lies against its seasonal baseline. */
export interface Baseline {
  median: number;
  /** Median absolute deviation from the median. */
  mad: number;
  /** The spread used: 1.4826 × MAD (a standard deviation's equivalent for normal data), floored. */
  spread: number;
  lower: number;
  upper: number;
}

const MAD_SCALE = 1.4826;

/**
 * A robust baseline of past values: median ± k × 1.4826 × MAD. Median and MAD, not mean and standard
 * deviation: with 4-12 past weeks one holiday or one earlier incident moves a mean and inflates a
 * standard deviation enough to hide the next anomaly, while the median and MAD ignore it. A perfectly
 * flat history (MAD 0) would make any change an anomaly, so the spread is floored at 5% of the median
 * and at 1 (one event, one person).
 *
 * @example
 * robustBaseline([100, 104, 98, 101, 400], 3); // median 101, mad 3, spread ≈ 5.05 (the 400 ignored)
 */
export function robustBaseline(history: readonly number[], k: number): Baseline {
  if (!history.length) throw new RangeError('a baseline needs at least one past value');
  const median = medianOf(history);
  const mad = medianOf(history.map((v) => Math.abs(v - median)));
  const spread = Math.max(MAD_SCALE * mad, Math.abs(median) * 0.05, 1);
  return { median, mad, spread, lower: median - k * spread, upper: median + k * spread };
}

/**
 * The median of numbers (the mean of the middle two for an even count).
 *
 * @example
 * medianOf([3, 1, 2, 10]); // 2.5
 */
export function medianOf(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
