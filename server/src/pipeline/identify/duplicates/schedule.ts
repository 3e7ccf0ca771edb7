import { DateTime } from 'luxon';
import type { PgBoss } from 'pg-boss';
import { bossExecutor, type Sql, type Tx } from '../../../db/index.ts';
import { DomainError } from '../../../infra/errors.ts';
import { startPeriodic } from '../../../infra/periodic.ts';
import { DUPLICATE_SCAN_QUEUE, ensureQueue } from '../../../jobs/queues.ts';
import type { Logger } from '../../../log.ts';
import type { Pii } from '../../../pii/index.ts';
import { scanDuplicates } from './scan.ts';

// Scheduled duplicate scans (migration 0040). Off by default: a scan reads every live profile (minutes
// at a few hundred thousand, docs/benchmarks.md) and its pairs wait for a reviewer; an operator who
// reviews them chooses when that load is welcome. Every server checks the schedule every
// SCHEDULE_CHECK_MS against the runtime's clock; the first to see a period without a claim inserts the
// claim (the period is the primary key) and the scan's job in one transaction, so each period is scanned
// once however many servers run and whenever they restart. When every server was down at a period's
// start, the first back claims the current period as a catch-up (migration 0043): one scan, recorded with
// the number of periods before it that were missed. Those are not replayed one by one: a scan re-keys
// every profile changed since the last scan, so one scan finds what theirs would have.

/** How often each server looks at the schedule (one read of a one-row table). */
export const SCHEDULE_CHECK_MS = 2_000;

/**
 * A claim made this long after its period began is a catch-up: servers look every SCHEDULE_CHECK_MS, so
 * only a period whose start no server saw is claimed this late.
 */
export const CATCH_UP_AFTER_MS = 60_000;

/** The last period claimed, as the API shows it. */
export interface ScheduleRun {
  period: string;
  claimedAt: string;
  /** Claimed late: no server was up when the period began. */
  catchUp: boolean;
  /** Periods before it (since the previous claim, or since the schedule was set) that got no scan. */
  missedPeriods: number;
  /** The scan, once it committed. */
  scanId: string | null;
}

/** The schedule as the API shows it. */
export interface DuplicateSchedule {
  enabled: boolean;
  /** Every N hours from midnight in `timeZone` (N divides 24), or null with `dailyAt`. */
  everyHours: number | null;
  /** `HH:MM` in `timeZone`, or null with `everyHours`. */
  dailyAt: string | null;
  timeZone: string;
  /** Re-key every profile (`?full=true` of a manual scan) instead of only those whose values changed. */
  full: boolean;
  updatedAt: string;
  updatedBy: string | null;
}

interface Row {
  enabled: boolean;
  every_hours: number | null;
  daily_at: string | null;
  time_zone: string;
  full_scan: boolean;
  updated_at: Date;
  updated_by: string | null;
}

const OFF: Row = {
  enabled: false,
  every_hours: null,
  daily_at: null,
  time_zone: 'UTC',
  full_scan: false,
  updated_at: new Date(0),
  updated_by: null,
};

const view = (r: Row): DuplicateSchedule => ({
  enabled: r.enabled,
  everyHours: r.every_hours,
  dailyAt: r.daily_at,
  timeZone: r.time_zone,
  full: r.full_scan,
  updatedAt: r.updated_at.toISOString(),
  updatedBy: r.updated_by,
});

async function readRow(sql: Tx): Promise<Row> {
  const [row] = await sql<Row[]>`
    SELECT enabled, every_hours, daily_at, time_zone, full_scan, updated_at, updated_by FROM duplicate_schedule`;
  return row ?? OFF;
}

/**
 * The schedule (off until set).
 *
 * @example
 * const s = await getDuplicateSchedule(sql);
 */
export async function getDuplicateSchedule(sql: Tx): Promise<DuplicateSchedule> {
  return view(await readRow(sql));
}

/**
 * Replaces the schedule (already validated: exactly one of `everyHours` and `dailyAt` when enabled).
 * Periods that began before this change are not scanned for it: the next period is the first.
 *
 * @example
 * await putDuplicateSchedule(sql, { enabled: true, everyHours: null, dailyAt: '03:00', timeZone: 'Europe/Berlin', full: false }, 'k1', now);
 */
export async function putDuplicateSchedule(
  sql: Tx,
  s: Omit<DuplicateSchedule, 'updatedAt' | 'updatedBy'>,
  actor: string,
  now: Date,
): Promise<DuplicateSchedule> {
  if (!DateTime.now().setZone(s.timeZone).isValid) {
    throw new DomainError(400, 'invalid_request', `timeZone: "${s.timeZone}" is not an IANA time zone`);
  }
  const [row] = await sql<Row[]>`
    INSERT INTO duplicate_schedule (id, enabled, every_hours, daily_at, time_zone, full_scan, updated_at, updated_by)
    VALUES (true, ${s.enabled}, ${s.everyHours}, ${s.dailyAt}, ${s.timeZone}, ${s.full}, ${now}, ${actor})
    ON CONFLICT (id) DO UPDATE
    SET enabled = excluded.enabled, every_hours = excluded.every_hours, daily_at = excluded.daily_at,
      time_zone = excluded.time_zone, full_scan = excluded.full_scan, updated_at = excluded.updated_at,
      updated_by = excluded.updated_by
    RETURNING enabled, every_hours, daily_at, time_zone, full_scan, updated_at, updated_by`;
  return view(row!);
}

/**
 * The start of the period `now` is in (wall-clock times in the schedule's zone, through luxon: a
 * daily time that a DST change skips moves forward as luxon moves it), or null when the schedule is off.
 *
 * @example
 * periodStart({ enabled: true, everyHours: 6, dailyAt: null, timeZone: 'UTC', ... }, new Date('2030-01-01T13:00Z'));
 * // 2030-01-01T12:00:00.000Z
 */
export function periodStart(
  s: Pick<DuplicateSchedule, 'enabled' | 'everyHours' | 'dailyAt' | 'timeZone'>,
  now: Date,
): Date | null {
  if (!s.enabled) return null;
  const local = DateTime.fromJSDate(now, { zone: s.timeZone });
  if (s.everyHours) {
    const hour = Math.floor(local.hour / s.everyHours) * s.everyHours;
    return local.set({ hour, minute: 0, second: 0, millisecond: 0 }).toJSDate();
  }
  if (!s.dailyAt) return null;
  const [h, m] = s.dailyAt.split(':').map(Number) as [number, number];
  let start = local.set({ hour: h, minute: m, second: 0, millisecond: 0 });
  if (start > local) start = start.minus({ days: 1 }).set({ hour: h, minute: m });
  return start.toJSDate();
}

/**
 * The periods that began after `after` (exclusive) and before `current` (exclusive), no earlier than
 * `since` (capped: a schedule of one hour, off for years, counts at most 100,000).
 *
 * @example
 * missedPeriods(s, new Date('2030-01-01T14:00Z'), new Date('2030-01-01T11:00Z'), new Date(0)); // 2 (12:00, 13:00)
 */
export function missedPeriods(
  s: Pick<DuplicateSchedule, 'enabled' | 'everyHours' | 'dailyAt' | 'timeZone'>,
  current: Date,
  after: Date | null,
  since: Date,
): number {
  let n = 0;
  for (let p = periodStart(s, new Date(current.getTime() - 1)); p && n < 100_000; n++) {
    if ((after && p.getTime() <= after.getTime()) || p.getTime() < since.getTime()) break;
    p = periodStart(s, new Date(p.getTime() - 1));
  }
  return n;
}

/**
 * Claims the period `now` is in, when the schedule is on, the period began after the schedule was last
 * set, and no server claimed it yet: the claim and the scan's job commit together. A claim more than
 * {@link CATCH_UP_AFTER_MS} after the period began is recorded as a catch-up, with the periods missed
 * before it. Returns the period claimed, or null.
 *
 * @example
 * await claimScheduledScan(sql, boss, clock());
 */
export async function claimScheduledScan(sql: Sql, boss: PgBoss, now: Date): Promise<string | null> {
  const s = view(await readRow(sql));
  const start = periodStart(s, now);
  if (!start || start.getTime() < Date.parse(s.updatedAt)) return null;
  const catchUp = now.getTime() - start.getTime() > CATCH_UP_AFTER_MS;
  return (await sql.begin(async (tx) => {
    // Only a catch-up counts what it missed (a claim on time missed nothing).
    const [last] = catchUp
      ? await tx<
          { period: Date | null }[]
        >`SELECT max(period) AS period FROM duplicate_schedule_runs WHERE period < ${start}`
      : [];
    const missed = catchUp ? missedPeriods(s, start, last?.period ?? null, new Date(s.updatedAt)) : 0;
    const [claimed] = await tx<{ period: Date }[]>`
      INSERT INTO duplicate_schedule_runs (period, catch_up, missed)
      VALUES (${start}, ${catchUp}, ${missed})
      ON CONFLICT (period) DO NOTHING
      RETURNING period`;
    if (!claimed) return null;
    const period = claimed.period.toISOString();
    await boss.send(DUPLICATE_SCAN_QUEUE.name, { period, full: s.full, catchUp }, { db: bossExecutor(tx) });
    return period;
  })) as string | null;
}

/**
 * The last period claimed, or null.
 *
 * @example
 * const run = await lastScheduleRun(sql); // { period, catchUp: true, missedPeriods: 2, ... }
 */
export async function lastScheduleRun(sql: Tx): Promise<ScheduleRun | null> {
  const [r] = await sql<
    { period: Date; claimed_at: Date; catch_up: boolean; missed: number; scan_id: string | null }[]
  >`
    SELECT period, claimed_at, catch_up, missed, scan_id::text
    FROM duplicate_schedule_runs
    ORDER BY period DESC
    LIMIT 1`;
  return r
    ? {
        period: r.period.toISOString(),
        claimedAt: r.claimed_at.toISOString(),
        catchUp: r.catch_up,
        missedPeriods: r.missed,
        scanId: r.scan_id,
      }
    : null;
}

/**
 * Starts the schedule on this server: the check every {@link SCHEDULE_CHECK_MS} (and once now), and the
 * worker of the scan queue. A retried job whose period's scan committed already does nothing.
 *
 * @example
 * const stop = await startDuplicateSchedule({ sql, boss, pii, log, clock });
 */
export async function startDuplicateSchedule(deps: {
  sql: Sql;
  boss: PgBoss;
  pii: Pii;
  log: Logger;
  clock: () => Date;
}): Promise<() => Promise<void>> {
  await ensureQueue(deps.boss, DUPLICATE_SCAN_QUEUE);
  const id = await deps.boss.work<{ period: string; full?: boolean; catchUp?: boolean }>(
    DUPLICATE_SCAN_QUEUE.name,
    { batchSize: 1, pollingIntervalSeconds: 1 },
    async function scheduledScan([job]) {
      if (!job) return;
      const r = await scanDuplicates(deps.sql, deps.pii, 'schedule', job.data.full === true, job.data.period);
      const what = job.data.catchUp ? 'catch-up scan' : 'scheduled scan';
      if (r) deps.log.info(`duplicates: ${what} ${r.id} for ${job.data.period}: ${r.newCandidates} new pairs`);
    },
  );
  const check = startPeriodic({
    name: 'duplicates.schedule',
    everyMs: SCHEDULE_CHECK_MS,
    run: () => claimScheduledScan(deps.sql, deps.boss, deps.clock()),
    log: deps.log,
  });
  void check.runNow();
  return async () => {
    await check.stop();
    await deps.boss.offWork(DUPLICATE_SCAN_QUEUE.name, { id });
  };
}
