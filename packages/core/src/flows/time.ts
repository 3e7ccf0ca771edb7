/**
 * Time for flows: durations, local times of day in a person's zone, dates of traits, cron and
 * holidays. Zone arithmetic is luxon's (the IANA database through `Intl`), never hand-written offsets:
 * a local 10:00 is found in the zone's calendar, so a day with a DST change is 23 or 25 hours long.
 */
import { CronExpressionParser } from 'cron-parser';
import Holidays from 'date-holidays';
import { DateTime, IANAZone } from 'luxon';
import { dateOf } from '../rules/values.ts';
import type { Duration, LocalTime, Weekday } from './ast.ts';

const UNIT_MS = { days: 86_400_000, hours: 3_600_000, minutes: 60_000, seconds: 1000 } as const;

/** The zone flows fall back to when neither the person nor the flow names one. */
export const DEFAULT_ZONE = 'UTC';

/** The weekdays in ISO order (Monday 1 ... Sunday 7), as `wait_until` names them. */
export const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/**
 * Whether `zone` is an IANA time zone the runtime knows (`Europe/Berlin`, `UTC`).
 *
 * @example
 * isTimeZone('America/New_York'); // true
 * isTimeZone('CET+1'); // false
 */
export function isTimeZone(zone: string): boolean {
  // Fixed offsets ("UTC+3") are not zones: a person's zone must follow their DST.
  if (zone === 'UTC' || !zone.includes('/')) return zone === 'UTC';
  // Every step resolves the person's zone, and luxon builds an Intl formatter to check one: remembered.
  let known = ZONES_CHECKED.get(zone);
  if (known === undefined) {
    known = IANAZone.isValidZone(zone);
    if (ZONES_CHECKED.size < 10_000) ZONES_CHECKED.set(zone, known);
  }
  return known;
}
const ZONES_CHECKED = new Map<string, boolean>();

/**
 * A duration in milliseconds (a day is 24 hours).
 *
 * @example
 * durationMs({ days: 1, hours: 2 }); // 93_600_000
 */
export function durationMs(d: Duration): number {
  return (
    (d.days ?? 0) * UNIT_MS.days +
    (d.hours ?? 0) * UNIT_MS.hours +
    (d.minutes ?? 0) * UNIT_MS.minutes +
    (d.seconds ?? 0) * UNIT_MS.seconds
  );
}

/**
 * A duration in words.
 *
 * @example
 * describeDuration({ days: 3, hours: 1 }); // '3 days 1 hour'
 */
export function describeDuration(d: Duration): string {
  const parts = (['days', 'hours', 'minutes', 'seconds'] as const).flatMap((u) =>
    d[u] ? [`${d[u]} ${d[u] === 1 ? u.slice(0, -1) : u}`] : [],
  );
  return parts.join(' ') || '0 seconds';
}

/** `HH:MM` as hour and minute; undefined when it is no time of day. */
export function parseLocalTime(t: LocalTime): { hour: number; minute: number } | undefined {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(t);
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : undefined;
}

/** The wall-clock time `t` on the local date of `day`, in its zone (a time in a DST gap moves forward). */
function atTime(day: DateTime, t: LocalTime): DateTime {
  const { hour, minute } = parseLocalTime(t)!;
  return day.set({ hour, minute, second: 0, millisecond: 0 });
}

/**
 * The first instant at or after `afterMs` when the clock in `zone` shows `time`, on one of
 * `weekdays` (every day when absent). On a spring-forward day a time inside the gap is the first
 * instant after it (02:30 → 03:30); on a fall-back day an ambiguous time is its first occurrence.
 *
 * @example
 * nextLocalTime(Date.parse('2026-03-28T12:00:00Z'), 'Europe/Berlin', '10:00'); // 2026-03-29T08:00:00Z (CEST)
 */
export function nextLocalTime(afterMs: number, zone: string, time: LocalTime, weekdays?: readonly Weekday[]): number {
  const start = DateTime.fromMillis(afterMs, { zone });
  for (let i = 0; i < 8; i++) {
    const candidate = atTime(start.plus({ days: i }).startOf('day'), time);
    const weekday = WEEKDAYS[candidate.weekday - 1]!;
    if (candidate.toMillis() >= afterMs && (!weekdays?.length || weekdays.includes(weekday)))
      return candidate.toMillis();
  }
  throw new Error(`no ${time} on ${weekdays?.join(', ')} in ${zone}`);
}

/**
 * The local calendar date a date value stands for: a `YYYY-MM-DD` date as written, a timestamp as
 * the date it is in `zone`. Undefined for anything the rule language does not read as a date.
 *
 * @example
 * localDateOf('2026-05-01T02:00:00Z', 'America/New_York'); // '2026-04-30'
 */
export function localDateOf(value: unknown, zone: string): string | undefined {
  if (typeof value !== 'string' || dateOf(value) === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
  const ms = Number(dateOf(value)! / 1000n);
  return DateTime.fromMillis(ms, { zone }).toISODate() ?? undefined;
}

/**
 * A local date (`YYYY-MM-DD`) moved by `offsetDays` calendar days, at `time` in `zone`, as epoch ms.
 *
 * @example
 * localDateTime('2026-10-25', 0, '10:00', 'Europe/Berlin'); // 2026-10-25T09:00:00Z (CET again)
 */
export function localDateTime(date: string, offsetDays: number, time: LocalTime, zone: string): number {
  const day = DateTime.fromISO(date, { zone }).plus({ days: offsetDays });
  return atTime(day, time).toMillis();
}

/**
 * When a date trait's moment comes: with `time`, its local date ± `offsetDays` at that time; without,
 * the instant it names (a bare date is local midnight) ± `offsetDays` calendar days. Undefined when
 * the value is no date.
 *
 * @example
 * dateTraitTime('2026-06-01', { offsetDays: -3, time: '09:00' }, 'Europe/Berlin'); // 2026-05-29T07:00:00Z
 */
export function dateTraitTime(
  value: unknown,
  options: { offsetDays?: number; time?: LocalTime },
  zone: string,
): number | undefined {
  const date = localDateOf(value, zone);
  if (date === undefined) return undefined;
  const offsetDays = options.offsetDays ?? 0;
  if (options.time) return localDateTime(date, offsetDays, options.time, zone);
  const instant =
    typeof value === 'string' && value.length === 10
      ? DateTime.fromISO(value, { zone })
      : DateTime.fromMillis(Number(dateOf(value)! / 1000n), { zone });
  return instant.plus({ days: offsetDays }).toMillis();
}

/**
 * The next yearly anniversary of a date (29 February is 28 February in other years, as the rule
 * language's `anniversary_within`) ± `offsetDays`, at `time` in `zone`, at or after `afterMs`.
 *
 * @example
 * nextAnniversary('1990-06-15', -7, '10:00', 'Asia/Tokyo', Date.parse('2026-01-01T00:00:00Z')); // 2026-06-08T01:00:00Z
 */
export function nextAnniversary(
  value: unknown,
  offsetDays: number,
  time: LocalTime,
  zone: string,
  afterMs: number,
): number | undefined {
  const date = localDateOf(value, zone);
  if (date === undefined) return undefined;
  const [, month, day] = date.split('-').map(Number) as [number, number, number];
  const year = DateTime.fromMillis(afterMs, { zone }).year;
  // An offset can move the moment into the year before or after the anniversary's own.
  for (let y = year - 1; y <= year + 2; y++) {
    const feb29 = month === 2 && day === 29 && !DateTime.local(y, 1, 1).isInLeapYear;
    const on = DateTime.fromObject({ year: y, month, day: feb29 ? 28 : day }, { zone });
    const at = atTime(on.plus({ days: offsetDays }), time).toMillis();
    if (at >= afterMs) return at;
  }
  return undefined;
}

/**
 * Whether a cron expression (5 fields, or 6 with seconds first) parses; the error otherwise.
 *
 * @example
 * cronError('0 9 * * 1'); // undefined
 * cronError('61 * * * *'); // 'Constraint error, got value 61 expected range 0-59'
 */
export function cronError(expression: string): string | undefined {
  try {
    CronExpressionParser.parse(expression, { strict: false });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The first occurrence of a cron expression strictly after `afterMs`, in `zone`.
 *
 * @example
 * nextCron('0 9 * * 1', 'Europe/Berlin', Date.parse('2026-03-27T00:00:00Z')); // 2026-03-30T07:00:00Z
 */
export function nextCron(expression: string, zone: string, afterMs: number): number {
  const it = CronExpressionParser.parse(expression, { currentDate: new Date(afterMs), tz: zone });
  return it.next().getTime();
}

// date-holidays builds a country's calendar from a large rule set: one instance per country/region
// is reused (a cache of a pure computation, not state that changes what anything returns).
const holidayCache = new Map<string, Holidays>();
function holidaysOf(country: string, region?: string): Holidays {
  const key = `${country}/${region ?? ''}`;
  let h = holidayCache.get(key);
  if (!h) {
    h = region ? new Holidays(country, region) : new Holidays(country);
    holidayCache.set(key, h);
  }
  return h;
}

/**
 * Whether date-holidays knows the country (ISO 3166-1 alpha-2) and, when given, its region.
 *
 * @example
 * isHolidayCountry('DE', 'BY'); // true
 */
export function isHolidayCountry(country: string, region?: string): boolean {
  const countries = new Holidays().getCountries() as Record<string, string>;
  if (!Object.hasOwn(countries, country)) return false;
  if (!region) return true;
  const states = (new Holidays().getStates(country) ?? {}) as Record<string, string>;
  return Object.hasOwn(states, region);
}

/**
 * The public holidays of a country (and region) in a year, as local dates with their names.
 *
 * @example
 * publicHolidays('DE', 2026)[0]; // { date: '2026-01-01', name: 'Neujahr' }
 */
export function publicHolidays(country: string, year: number, region?: string): { date: string; name: string }[] {
  const list = holidaysOf(country, region).getHolidays(year) || [];
  const days = list.filter((h) => h.type === 'public').map((h) => ({ date: h.date.slice(0, 10), name: h.name }));
  // A holiday spanning several rules (an observed Monday) can appear twice: keep each date once.
  return days.filter((d, i) => days.findIndex((e) => e.date === d.date) === i);
}

/**
 * The next day of a calendar (dates `YYYY-MM-DD`) moved by `offsetDays`, at `time` in `zone`, at or
 * after `afterMs`, with the calendar day it stands for.
 *
 * @example
 * nextCalendarDay(['2026-11-11'], -3, '09:00', 'Asia/Shanghai', Date.parse('2026-01-01T00:00:00Z'));
 * // { at: 2026-11-08T01:00:00Z, day: '2026-11-11' }
 */
export function nextCalendarDay(
  dates: readonly string[],
  offsetDays: number,
  time: LocalTime,
  zone: string,
  afterMs: number,
): { at: number; day: string } | undefined {
  let best: { at: number; day: string } | undefined;
  for (const day of dates) {
    const at = localDateTime(day, offsetDays, time, zone);
    if (at >= afterMs && (!best || at < best.at)) best = { at, day };
  }
  return best;
}

/**
 * The zone an instant is shown in for people reading a journal: ISO-8601 with the zone's offset.
 *
 * @example
 * localIso(Date.parse('2026-03-29T08:00:00Z'), 'Europe/Berlin'); // '2026-03-29T10:00:00.000+02:00'
 */
export function localIso(ms: number, zone: string): string {
  return DateTime.fromMillis(ms, { zone }).toISO() ?? new Date(ms).toISOString();
}
