import type { ReportSchedule } from '@cairn/core';
import type { Sql, Tx } from '../../db/index.ts';

/** Where a report goes: an email destination (to these addresses), a chat destination, or a webhook. */
export type ReportDestination =
  | { type: 'email'; destinationId: string; to: string[] }
  | { type: 'chat'; destinationId: string }
  | { type: 'webhook'; destinationId: string };

/** One query of a report: a trends body without its range (the period gives it), and a title. */
export interface ReportQuery {
  title?: string;
  // The body of POST /api/analytics/trends minus range and compare (validated by the API).
  [field: string]: unknown;
}

/** A stored report. */
export interface Report {
  id: string;
  name: string;
  schedule: ReportSchedule;
  queries: ReportQuery[];
  destination: ReportDestination;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** A report's send for one period. */
export interface ReportRun {
  reportId: string;
  periodStart: Date;
  periodEnd: Date;
  dueAt: Date;
  status: 'sending' | 'sent' | 'failed';
  attempts: number;
  leaseUntil: Date;
  lastError: string | null;
  summary: unknown;
  sentAt: Date | null;
}

const REPORT = (sql: Tx) => sql`
  id::text, name, schedule, queries, destination, enabled, created_at AS "createdAt", updated_at AS "updatedAt"`;
const RUN = (sql: Tx) => sql`
  report_id::text AS "reportId", period_start AS "periodStart", period_end AS "periodEnd", due_at AS "dueAt",
  status, attempts, lease_until AS "leaseUntil", last_error AS "lastError", summary, sent_at AS "sentAt"`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a report is made of (create and replace). */
export type ReportFields = Pick<Report, 'name' | 'schedule' | 'queries' | 'destination' | 'enabled'>;

/**
 * Stores a new report; returns its id.
 *
 * @example
 * const id = await insertReport(sql, { name: 'Weekly', schedule, queries, destination, enabled: true });
 */
export async function insertReport(sql: Tx, f: ReportFields, at: Date): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO reports (name, schedule, queries, destination, enabled, created_at, updated_at)
    VALUES (${f.name}, ${sql.json(f.schedule as never)}, ${sql.json(f.queries as never)},
      ${sql.json(f.destination as never)}, ${f.enabled}, ${at}, ${at})
    RETURNING id::text`;
  return row!.id;
}

/**
 * One report, or undefined (also for an id that is not a UUID).
 *
 * @example
 * const report = await getReport(sql, id);
 */
export async function getReport(sql: Tx, id: string): Promise<Report | undefined> {
  if (!UUID.test(id)) return undefined;
  const [row] = await sql<Report[]>`SELECT ${REPORT(sql)} FROM reports WHERE id = ${id}`;
  return row;
}

/**
 * Every report, oldest first (`enabledOnly`: the ones the worker sends).
 *
 * @example
 * for (const r of await listReports(sql, { enabledOnly: true })) ...
 */
export async function listReports(sql: Tx, opts: { enabledOnly?: boolean } = {}): Promise<Report[]> {
  return sql<Report[]>`
    SELECT ${REPORT(sql)}
    FROM reports
    ${opts.enabledOnly ? sql`WHERE enabled` : sql``}
    ORDER BY created_at, id`;
}

/**
 * Replaces a report's fields; false when there is no such report.
 *
 * @example
 * await updateReport(sql, id, { ...report, enabled: false }, new Date());
 */
export async function updateReport(sql: Tx, id: string, f: ReportFields, at: Date): Promise<boolean> {
  if (!UUID.test(id)) return false;
  const rows = await sql`
    UPDATE reports
    SET name = ${f.name}, schedule = ${sql.json(f.schedule as never)}, queries = ${sql.json(f.queries as never)},
      destination = ${sql.json(f.destination as never)}, enabled = ${f.enabled}, updated_at = ${at}
    WHERE id = ${id}`;
  return rows.count > 0;
}

/**
 * Deletes a report and its runs; false when there was none.
 *
 * @example
 * await deleteReport(sql, id);
 */
export async function deleteReport(sql: Tx, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  return (await sql`DELETE FROM reports WHERE id = ${id}`).count > 0;
}

/**
 * Claims a report's period: inserts its run (status `sending`, leased until `leaseUntil`) unless the
 * period has one. True for the one caller that inserted it — whichever server, whenever — which then
 * sends; everyone else gets false and sends nothing.
 *
 * @example
 * if (await claimRun(sql, { reportId, periodStart, periodEnd, dueAt, now, leaseUntil })) await send();
 */
export async function claimRun(
  sql: Tx,
  r: { reportId: string; periodStart: Date; periodEnd: Date; dueAt: Date; now: Date; leaseUntil: Date },
): Promise<boolean> {
  const rows = await sql`
    INSERT INTO report_runs (report_id, period_start, period_end, due_at, lease_until, created_at)
    VALUES (${r.reportId}, ${r.periodStart}, ${r.periodEnd}, ${r.dueAt}, ${r.leaseUntil}, ${r.now})
    ON CONFLICT (report_id, period_start) DO NOTHING
    RETURNING 1`;
  return rows.length > 0;
}

/**
 * Takes over runs left `sending` whose lease is past (a server died mid-send, or a send failed and waits
 * for its retry): each is leased again to this caller, its attempts counted, and returned. Runs past
 * `maxAttempts` are marked failed instead.
 *
 * @example
 * for (const run of await takeOverRuns(sql, now, leaseUntil, 5)) await resend(run);
 */
export async function takeOverRuns(sql: Tx, now: Date, leaseUntil: Date, maxAttempts: number): Promise<ReportRun[]> {
  await sql`
    UPDATE report_runs SET status = 'failed'
    WHERE status = 'sending' AND lease_until <= ${now} AND attempts >= ${maxAttempts}`;
  // The lease moves in the same statement that reads it: two servers never take one run over together.
  return sql<ReportRun[]>`
    UPDATE report_runs
    SET lease_until = ${leaseUntil}, attempts = attempts + 1
    WHERE (report_id, period_start) IN (
      SELECT report_id, period_start
      FROM report_runs
      WHERE status = 'sending' AND lease_until <= ${now}
      ORDER BY lease_until
      LIMIT 20
      FOR UPDATE SKIP LOCKED
    )
    RETURNING ${RUN(sql)}`;
}

/**
 * Records how a run's send went: `sent` (with what was sent), or still `sending` with the error and a
 * lease until its retry.
 *
 * @example
 * await finishRun(sql, run, { sent: true, at, summary });
 */
export async function finishRun(
  sql: Tx,
  key: { reportId: string; periodStart: Date },
  outcome: { sent: true; at: Date; summary: unknown } | { sent: false; error: string; retryAt: Date },
): Promise<void> {
  if (outcome.sent)
    await sql`
      UPDATE report_runs
      SET status = 'sent', sent_at = ${outcome.at}, summary = ${sql.json(outcome.summary as never)}, last_error = NULL
      WHERE report_id = ${key.reportId} AND period_start = ${key.periodStart}`;
  else
    await sql`
      UPDATE report_runs
      SET last_error = ${outcome.error.slice(0, 1000)}, lease_until = ${outcome.retryAt}
      WHERE report_id = ${key.reportId} AND period_start = ${key.periodStart}`;
}

/**
 * A report's runs, newest period first.
 *
 * @example
 * const runs = await listRuns(sql, reportId, 20);
 */
export async function listRuns(sql: Sql | Tx, reportId: string, limit = 50): Promise<ReportRun[]> {
  if (!UUID.test(reportId)) return [];
  return sql<ReportRun[]>`
    SELECT ${RUN(sql)}
    FROM report_runs
    WHERE report_id = ${reportId}
    ORDER BY period_start DESC
    LIMIT ${limit}`;
}
