import { DateTime, IANAZone } from 'luxon';
import { z } from 'zod';

/** The buckets a time series is cut into, in the query's time zone. Weeks start on Monday (ISO). */
export type TimeInterval = 'hour' | 'day' | 'week' | 'month';
export const INTERVALS: readonly TimeInterval[] = ['hour', 'day', 'week', 'month'];

/** A query's time range: `[from, to)`, and the time zone its days, weeks and months are cut in. */
export interface TimeRange {
  from: string;
  to: string;
  /** An IANA time zone (`Europe/Berlin`); default UTC. */
  timezone: string;
}

/** The longest range a query may cover, and the most buckets a series may have. */
export const RANGE_LIMITS = { maxDays: 732, maxBuckets: 2_000 } as const;

const instant = z.iso.datetime({ offset: true });

/**
 * The zod schema of a time range: ISO-8601 instants with an offset, `from` before `to`, at most
 * {@link RANGE_LIMITS}.maxDays apart, and a time zone `Intl` knows.
 *
 * @example
 * timeRangeSchema.parse({ from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z', timezone: 'Europe/Berlin' });
 */
export const timeRangeSchema = z
  .object({
    from: instant.describe('Start, inclusive (ISO-8601 with an offset)'),
    to: instant.describe('End, exclusive (ISO-8601 with an offset)'),
    timezone: z
      .string()
      .max(64)
      .default('UTC')
      .refine((tz) => IANAZone.isValidZone(tz), { message: 'not an IANA time zone (e.g. Europe/Berlin)' })
      .describe('The IANA time zone days, weeks and months are cut in (default UTC)'),
  })
  .superRefine((r, ctx) => {
    const from = Date.parse(r.from);
    const to = Date.parse(r.to);
    if (!(from < to)) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' });
    else if (to - from > RANGE_LIMITS.maxDays * 86_400_000)
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: `the range may cover at most ${RANGE_LIMITS.maxDays} days`,
      });
  });

/**
 * The starts of the buckets that intersect `[from, to)` in the range's time zone, as instants (ISO,
 * UTC). The first bucket starts at or before `from` (a partial bucket); DST days are 23 or 25 hours
 * long, as the wall clock says. Throws past {@link RANGE_LIMITS}.maxBuckets.
 *
 * @example
 * bucketStarts({ from: '2026-03-28T00:00:00Z', to: '2026-03-31T00:00:00Z', timezone: 'Europe/Berlin' }, 'day');
 * // ['2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', '2026-03-30T22:00:00.000Z']
 */
export function bucketStarts(range: TimeRange, interval: TimeInterval): string[] {
  const zone = range.timezone;
  const end = DateTime.fromISO(range.to, { zone });
  let at = DateTime.fromISO(range.from, { zone }).startOf(interval, { useLocaleWeeks: false });
  const out: string[] = [];
  while (at < end) {
    out.push(at.toUTC().toISO()!);
    if (out.length > RANGE_LIMITS.maxBuckets)
      throw new RangeError(`more than ${RANGE_LIMITS.maxBuckets} ${interval} buckets: choose a longer interval`);
    at = at.plus({ [`${interval}s`]: 1 });
  }
  return out;
}

/**
 * The bucket (its start, ISO UTC) an instant falls in, in a time zone.
 *
 * @example
 * bucketOf('2026-03-29T22:30:00Z', 'day', 'Europe/Berlin'); // '2026-03-29T22:00:00.000Z'
 */
export function bucketOf(at: string | Date, interval: TimeInterval, timezone: string): string {
  const t =
    typeof at === 'string' ? DateTime.fromISO(at, { zone: timezone }) : DateTime.fromJSDate(at, { zone: timezone });
  return t.startOf(interval, { useLocaleWeeks: false }).toUTC().toISO()!;
}

/**
 * The range of the same length just before `range` (for period-over-period comparison). Calendar
 * ranges shift by whole calendar units when both ends are bucket starts of `interval` (a month
 * compares with the month before, whatever its length); otherwise by the exact duration.
 *
 * @example
 * previousRange({ from: '2026-03-01T00:00:00Z', to: '2026-04-01T00:00:00Z', timezone: 'UTC' }, 'month');
 * // { from: '2026-02-01T00:00:00.000Z', to: '2026-03-01T00:00:00.000Z', timezone: 'UTC' }
 */
export function previousRange(range: TimeRange, interval: TimeInterval): TimeRange {
  const zone = range.timezone;
  const from = DateTime.fromISO(range.from, { zone });
  const to = DateTime.fromISO(range.to, { zone });
  const aligned = (t: DateTime) => +t.startOf(interval, { useLocaleWeeks: false }) === +t;
  if (aligned(from) && aligned(to)) {
    let n = 0;
    for (let t = from; t < to; t = t.plus({ [`${interval}s`]: 1 })) n++;
    const prevFrom = from.minus({ [`${interval}s`]: n });
    return { from: prevFrom.toUTC().toISO()!, to: from.toUTC().toISO()!, timezone: zone };
  }
  const ms = +to - +from;
  return { from: from.minus(ms).toUTC().toISO()!, to: from.toUTC().toISO()!, timezone: zone };
}
