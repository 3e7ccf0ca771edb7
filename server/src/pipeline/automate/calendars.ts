import type { Tx } from '../../db/index.ts';

// Custom calendars (a shopping festival's days) that calendar triggers name: `{ custom: '<key>' }`.

/** A day of a calendar: a date (`2026-11-11`) or a day every year (`11-11`), with an optional label. */
export interface CalendarDay {
  date: string;
  name?: string;
}

/** A calendar as stored. */
export interface CalendarRow {
  key: string;
  name: string;
  description: string | null;
  days: CalendarDay[];
  createdAt: Date;
  updatedAt: Date;
}

/** The fields of a calendar an API write sets. */
export interface CalendarRecord {
  name: string;
  description: string | null;
  days: CalendarDay[];
}

const COLUMNS = (sql: Tx) => sql`key, name, description, days, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Every calendar, by key. */
export async function listCalendars(sql: Tx): Promise<CalendarRow[]> {
  return sql<CalendarRow[]>`SELECT ${COLUMNS(sql)} FROM calendars ORDER BY key`;
}

/** One calendar, or undefined. */
export async function getCalendar(sql: Tx, key: string): Promise<CalendarRow | undefined> {
  const [row] = await sql<CalendarRow[]>`SELECT ${COLUMNS(sql)} FROM calendars WHERE key = ${key}`;
  return row;
}

/** Stores a new calendar; false when the key is taken. */
export async function insertCalendar(sql: Tx, key: string, c: CalendarRecord): Promise<boolean> {
  const rows = await sql`
    INSERT INTO calendars (key, name, description, days)
    VALUES (${key}, ${c.name}, ${c.description}, ${sql.json(c.days as never)})
    ON CONFLICT (key) DO NOTHING RETURNING key`;
  return rows.length === 1;
}

/** Replaces a calendar's fields. */
export async function updateCalendar(sql: Tx, key: string, c: CalendarRecord): Promise<void> {
  await sql`
    UPDATE calendars SET name = ${c.name}, description = ${c.description}, days = ${sql.json(c.days as never)},
      updated_at = now()
    WHERE key = ${key}`;
}

/** Deletes a calendar. */
export async function deleteCalendar(sql: Tx, key: string): Promise<void> {
  await sql`DELETE FROM calendars WHERE key = ${key}`;
}

/** A flow whose working copy or live version names the calendar, if any. */
export async function flowNamingCalendar(sql: Tx, key: string): Promise<string | undefined> {
  const [user] = await sql<{ id: string }[]>`
    SELECT f.id FROM flows f
    WHERE f.definition->'trigger'->'calendar'->>'custom' = ${key}
      OR EXISTS (SELECT 1 FROM flow_versions v WHERE v.flow_id = f.id AND v.version = f.version
                 AND v.definition->'trigger'->'calendar'->>'custom' = ${key})
    LIMIT 1`;
  return user?.id;
}

/** The keys of every calendar (what flows may name). */
export async function calendarKeys(sql: Tx): Promise<string[]> {
  return (await sql<{ key: string }[]>`SELECT key FROM calendars ORDER BY key`).map((r) => r.key);
}

/**
 * A calendar's dates around `year` (`YYYY-MM-DD`): its dated days as they are, its yearly days
 * (`MM-DD`) in the years `year - 1` to `year + 2` (an offset can move a day across a new year).
 *
 * @example
 * calendarDates([{ date: '11-11' }, { date: '2026-06-18' }], 2026); // ['2025-11-11', '2026-11-11', …, '2026-06-18']
 */
export function calendarDates(days: readonly CalendarDay[], year: number): string[] {
  return days.flatMap((d) =>
    /^\d{2}-\d{2}$/.test(d.date) ? [year - 1, year, year + 1, year + 2].map((y) => `${y}-${d.date}`) : [d.date],
  );
}

/** Custom calendars' dates by key, for `nextEntry` (unknown keys have none). */
export async function calendarsFor(sql: Tx, keys: readonly string[], year: number): Promise<Record<string, string[]>> {
  if (!keys.length) return {};
  const rows = await sql<{ key: string; days: CalendarDay[] }[]>`
    SELECT key, days FROM calendars WHERE key = ANY(${keys as string[]}::text[])`;
  return Object.fromEntries(rows.map((r) => [r.key, calendarDates(r.days, year)]));
}
