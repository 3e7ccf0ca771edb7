import { DateTime } from 'luxon';
import { z } from 'zod';
import type { TimeInterval, TimeRange } from './range.ts';

/**
 * When a scheduled report goes out: every day, every week on an ISO weekday (1 = Monday … 7 = Sunday),
 * or every month on a day (29–31 fall on the last day of shorter months), at a local time in a zone.
 */
export type ReportSchedule =
  | { every: 'day'; at: string; timezone: string }
  | { every: 'week'; weekday: number; at: string; timezone: string }
  | { every: 'month'; day: number; at: string; timezone: string };

const isZone = (zone: string) => DateTime.local().setZone(zone).isValid;
const AT = /^([01]\d|2[0-3]):([0-5]\d)$/;
const base = {
  at: z.string().regex(AT, 'a local time HH:MM (24-hour)'),
  timezone: z.string().min(1).refine(isZone, 'not an IANA time zone (e.g. Europe/Berlin)'),
};

/**
 * Validates a {@link ReportSchedule}.
 *
 * @example
 * reportScheduleSchema.parse({ every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' });
 */
export const reportScheduleSchema = z.discriminatedUnion('every', [
  z.strictObject({ every: z.literal('day'), ...base }),
  z.strictObject({ every: z.literal('week'), weekday: z.number().int().min(1).max(7), ...base }),
  z.strictObject({ every: z.literal('month'), day: z.number().int().min(1).max(31), ...base }),
]);

/** The period a report covers, and the one before it (shown beside it). */
export interface ReportPeriod {
  /** The send time this period belongs to (ISO, UTC). */
  due: string;
  interval: TimeInterval;
  /** The last complete day / week (ISO, from Monday) / month before `due`, in the schedule's zone. */
  range: TimeRange;
  previous: TimeRange;
}

const intervalOf = (s: ReportSchedule): TimeInterval => s.every;

// The send time in the period (day, week or month) that holds `t`. A local time that does not exist
// (spring forward) is moved forward by the gap, an ambiguous one (fall back) is one of its two instants
// (luxon's rules: the standard-time one), so a 02:30 report on the day clocks jump from 02:00 to 03:00 goes at 03:30.
function occurrenceIn(s: ReportSchedule, t: DateTime): DateTime {
  const [hour, minute] = s.at.split(':').map(Number) as [number, number];
  const start = t.startOf(intervalOf(s), { useLocaleWeeks: false });
  let day = start;
  if (s.every === 'week') day = start.plus({ days: s.weekday - 1 });
  if (s.every === 'month') day = start.set({ day: Math.min(s.day, start.daysInMonth!) });
  return DateTime.fromObject({ year: day.year, month: day.month, day: day.day, hour, minute }, { zone: s.timezone });
}

const step = (s: ReportSchedule, t: DateTime, n: number) => t.plus({ [`${intervalOf(s)}s`]: n });

/**
 * The latest send time at or before `now` (the one a server that was down catches up with: earlier
 * missed ones are not sent).
 *
 * @example
 * latestDue({ every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' }, new Date('2026-11-18T12:00:00Z'));
 * // 2026-11-16T08:00:00.000Z (Monday 09:00 in Berlin)
 */
export function latestDue(s: ReportSchedule, now: Date): Date {
  const local = DateTime.fromJSDate(now, { zone: s.timezone });
  const here = occurrenceIn(s, local);
  if (+here <= +now) return here.toJSDate();
  return occurrenceIn(s, step(s, local.startOf(intervalOf(s), { useLocaleWeeks: false }), -1)).toJSDate();
}

/**
 * The first send time strictly after `after`.
 *
 * @example
 * nextDue({ every: 'day', at: '07:30', timezone: 'UTC' }, new Date('2026-11-18T07:30:00Z'));
 * // 2026-11-19T07:30:00.000Z
 */
export function nextDue(s: ReportSchedule, after: Date): Date {
  const local = DateTime.fromJSDate(after, { zone: s.timezone });
  const here = occurrenceIn(s, local);
  if (+here > +after) return here.toJSDate();
  return occurrenceIn(s, step(s, local.startOf(intervalOf(s), { useLocaleWeeks: false }), 1)).toJSDate();
}

/**
 * The period a send time reports on: the last complete day, ISO week or month before it in the
 * schedule's zone (a weekly report on a Wednesday covers Monday to Sunday of the week before), and
 * the one before that. DST days are 23 or 25 hours long; each period is a whole local day/week/month.
 *
 * @example
 * reportPeriod({ every: 'month', day: 1, at: '06:00', timezone: 'UTC' }, new Date('2026-11-01T06:00:00Z'));
 * // range 2026-10-01 → 2026-11-01, previous 2026-09-01 → 2026-10-01
 */
export function reportPeriod(s: ReportSchedule, due: Date): ReportPeriod {
  const interval = intervalOf(s);
  const to = DateTime.fromJSDate(due, { zone: s.timezone }).startOf(interval, { useLocaleWeeks: false });
  const from = step(s, to, -1);
  const before = step(s, from, -1);
  const iso = (t: DateTime) => t.toUTC().toISO()!;
  return {
    due: due.toISOString(),
    interval,
    range: { from: iso(from), to: iso(to), timezone: s.timezone },
    previous: { from: iso(before), to: iso(from), timezone: s.timezone },
  };
}
