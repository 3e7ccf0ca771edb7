import { randomUUID } from 'node:crypto';
import { latestDue, type ReportPeriod, reportPeriod } from '@cairn/core';
import type { DeliveryItem, ItemOutcome, MessageAttachment, PluginDefinition } from '@cairn/plugin-api';
import { sendBatch } from '@cairn/plugin-api';
import { DateTime } from 'luxon';
import { runTrends, type TrendsAnswer, type TrendsBody } from '../../api/analytics/trends.ts';
import type { Sql } from '../../db/index.ts';
import { type PeriodicTask, startPeriodic } from '../../infra/periodic.ts';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';
import type { Runtime } from '../../runtime.ts';
import { getDestination } from '../deliver/queries/destinations.ts';
import { pluginContext, type SenderDeps } from '../deliver/sender.ts';
import { senderDeps } from '../deliver/stage.ts';
import { renderLineChart } from './charts.ts';
import type { AnalyticsReader } from './reader.ts';
import { claimRun, finishRun, getReport, listReports, type Report, takeOverRuns } from './report-queries.ts';
import { type BuiltReport, type ReportLine, reportHtml, reportText } from './report-render.ts';

export type { BuiltReport, ReportLine } from './report-render.ts';

// Scheduled reports (issue 19 item 5). Every tick, for each enabled report, the latest send time at or
// before the runtime clock is found (core's latestDue); its period is claimed by inserting its
// report_runs row (the primary key (report, period) is the claim: one sender whatever the number of
// servers or restarts), and only then built and sent. A server that was down sends only the LATEST
// missed period when it comes back (the earlier ones are stale; the latest's "previous" column shows
// the one before). Sends go through the report's destination's plugin as a message that is no
// person's (profile null, the recipient in message.to, the employee-notice path), its idempotency key
// `report:<id>:<period start>` (per recipient for email): the email's Message-ID and the webhook's
// Idempotency-Key derive from it, so a retry after a crash mid-send is deduped by the receiver.

/** How long a claimed send may take before another tick takes it over; and the retry schedule. */
export const REPORT_DEFAULTS = { leaseMs: 5 * 60_000, retryMs: 60_000, maxAttempts: 5 } as const;

/** What building and sending reports needs. */
export interface ReportDeps {
  sql: Sql;
  measure: { reader: AnalyticsReader };
  pii: Pii;
  log: Logger;
  /** Stage 5's sender dependencies (plugins, secrets, fetch): reports use its plugin context. */
  sender: SenderDeps;
  clock: () => Date;
}

/**
 * Runs a report's queries for a period (the trends API's own execution, with `compare: previous`).
 *
 * @example
 * const built = await buildReport(deps, report, reportPeriod(report.schedule, due), signal);
 */
export async function buildReport(
  deps: Pick<ReportDeps, 'measure' | 'pii' | 'clock'>,
  report: Pick<Report, 'id' | 'name' | 'queries'>,
  period: ReportPeriod,
  signal: AbortSignal,
): Promise<BuiltReport> {
  const queries: BuiltReport['queries'] = [];
  for (const [i, q] of report.queries.entries()) {
    const { title, ...query } = q;
    const body = { ...query, range: period.range, compare: 'previous' } as TrendsBody;
    const answer = await runTrends({ measure: deps.measure, pii: deps.pii, now: deps.clock }, body, signal);
    queries.push({
      title: (title as string | undefined) || answer.series.map((s) => s.name).join(', ') || `Query ${i + 1}`,
      interval: answer.interval,
      buckets: answer.buckets,
      previousBuckets: answer.previous?.buckets ?? [],
      lines: linesOf(answer),
    });
  }
  return { report: { id: report.id, name: report.name }, period, queries };
}

function linesOf(answer: TrendsAnswer): ReportLine[] {
  const line = (name: string, measure: string, l: TrendsAnswer['series'][number], group?: string | null) => ({
    name,
    measure,
    ...(group !== undefined ? { group } : {}),
    value: l.total,
    previous: l.previous?.total ?? null,
    change: l.change ?? null,
    values: l.values,
    previousValues: l.previous?.values ?? [],
  });
  return answer.series.flatMap((s) =>
    s.groups ? s.groups.map((g) => line(s.name, s.measure, g as never, g.group)) : [line(s.name, s.measure, s)],
  );
}

/** The report as JSON (the webhook's event properties, and what a run keeps as its summary). */
export function reportJson(built: BuiltReport) {
  return {
    report: built.report,
    period: built.period.range,
    previous: built.period.previous,
    interval: built.period.interval,
    due: built.period.due,
    queries: built.queries,
  };
}

// Bucket labels in the report's zone: hours as 14:00, days as Mon 9 Nov, weeks by their Monday, months by name.
function labelsOf(buckets: string[], interval: string, zone: string): string[] {
  const fmt = { hour: 'HH:mm', day: 'ccc d LLL', week: "'w/c' d LLL", month: 'LLL yyyy' }[interval] ?? 'd LLL';
  return buckets.map((b) => DateTime.fromISO(b, { zone }).toFormat(fmt));
}

/**
 * The charts of a built report as PNG attachments (one per query: this period beside the previous, by
 * bucket position), named `chart-<n>` for the HTML's `cid:` links.
 *
 * @example
 * const attachments = await reportCharts(built);
 */
export async function reportCharts(built: BuiltReport): Promise<MessageAttachment[]> {
  const out: MessageAttachment[] = [];
  for (const [i, q] of built.queries.entries()) {
    const lines = q.lines.slice(0, 5).flatMap((l) => {
      const name = l.group !== undefined ? `${l.name}: ${l.group ?? 'none'}` : l.name;
      return [
        { name: `${name} (this ${built.period.interval})`, values: l.values },
        { name: `${name} (previous)`, values: l.previousValues, dashed: true },
      ];
    });
    const png = await renderLineChart({
      title: q.title,
      labels: labelsOf(q.buckets, q.interval, built.period.range.timezone),
      lines,
    });
    out.push({
      cid: `chart-${i + 1}@cairn`,
      filename: `chart-${i + 1}.png`,
      contentType: 'image/png',
      content: png.toString('base64'),
    });
  }
  return out;
}

/** Which plugin channel each report destination type needs. */
const CHANNEL: Record<Report['destination']['type'], string> = { email: 'email', chat: 'chat', webhook: 'webhook' };

/**
 * Why a destination cannot take a report of this type, or null when it can.
 *
 * @example
 * const why = destinationProblem(plugins.get(d.plugin), 'email');
 */
export function destinationProblem(
  plugin: Readonly<PluginDefinition> | undefined,
  type: Report['destination']['type'],
) {
  if (!plugin) return 'its plugin is not installed';
  if (plugin.channel !== CHANNEL[type]) return `its plugin (${plugin.name}) is not a ${type} plugin`;
  return null;
}

/**
 * Sends a built report through its destination; `key` is the idempotency key of the send (per
 * recipient for email). Answers one outcome per item.
 *
 * @example
 * const outcomes = await sendReport(deps, report, built, `report:${report.id}:${period}`, 1);
 */
export async function sendReport(
  deps: Pick<ReportDeps, 'sql' | 'sender' | 'clock'>,
  report: Pick<Report, 'id' | 'name' | 'destination'>,
  built: BuiltReport,
  key: string,
  attempt: number,
): Promise<ItemOutcome[]> {
  const d = report.destination;
  const destination = await getDestination(deps.sql, d.destinationId);
  const plugin = destination ? deps.sender.plugins.get(destination.plugin) : undefined;
  if (!destination) return [{ status: 'failed', error: `destination ${d.destinationId} is gone` }];
  const problem = destinationProblem(plugin, d.type);
  if (problem || !plugin) return [{ status: 'failed', error: `destination ${d.destinationId}: ${problem}` }];
  const json = reportJson(built);
  const event = {
    type: 'track',
    event: 'Report Sent',
    messageId: key,
    timestamp: deps.clock().toISOString(),
    properties: json,
  };
  const subject = `${built.report.name}: ${periodLabel(built.period)}`;
  const base = { id: `report:${report.id}`, name: report.name };
  const flow = { id: `report:${report.id}`, node: built.period.range.from };
  let items: DeliveryItem[];
  if (d.type === 'email') {
    const attachments = await reportCharts(built);
    const html = reportHtml(built, subject, attachments);
    const text = reportText(built, subject, 'plain');
    items = d.to.map((email) => ({
      idempotencyKey: `${key}:${email}`,
      event: { ...event, messageId: `${key}:${email}` },
      profile: null,
      attempt,
      message: { subject, body: text, html, flow, to: { ...base, email }, attachments },
    }));
  } else if (d.type === 'chat') {
    const text = reportText(built, subject, 'chat');
    items = [{ idempotencyKey: key, event, profile: null, attempt, message: { subject, body: text, flow, to: base } }];
  } else {
    // The webhook posts the event; its properties are the report as JSON, its Idempotency-Key `key`.
    items = [{ idempotencyKey: key, event, profile: null, attempt }];
  }
  const settings = plugin.settings.parse(destination.settings);
  return sendBatch(plugin, items, pluginContext(deps.sender, destination, settings));
}

/** The period as people read it: `9–15 Nov 2026 (Europe/Berlin)`. */
export function periodLabel(p: ReportPeriod): string {
  const zone = p.range.timezone;
  const from = DateTime.fromISO(p.range.from, { zone });
  const last = DateTime.fromISO(p.range.to, { zone }).minus({ days: 1 });
  const text =
    p.interval === 'day'
      ? from.toFormat('ccc d LLL yyyy')
      : p.interval === 'month'
        ? from.toFormat('LLLL yyyy')
        : `${from.toFormat('d LLL')} – ${last.toFormat('d LLL yyyy')}`;
  return `${text} (${zone})`;
}

const runKey = (reportId: string, periodStart: string) => `report:${reportId}:${periodStart}`;

/** What one tick did. */
export interface ReportTick {
  claimed: number;
  sent: number;
  failed: number;
}

/**
 * One due check at the runtime clock: claims and sends each enabled report's latest due period not yet
 * claimed (never one before the report existed), then retries sends whose lease is past.
 *
 * @example
 * await checkReports(deps, signal);
 */
export async function checkReports(deps: ReportDeps, signal: AbortSignal): Promise<ReportTick> {
  const tick: ReportTick = { claimed: 0, sent: 0, failed: 0 };
  const now = deps.clock();
  for (const report of await listReports(deps.sql, { enabledOnly: true })) {
    try {
      const due = latestDue(report.schedule, now);
      if (+due < +new Date(report.createdAt)) continue;
      const period = reportPeriod(report.schedule, due);
      const claimed = await claimRun(deps.sql, {
        reportId: report.id,
        periodStart: new Date(period.range.from),
        periodEnd: new Date(period.range.to),
        dueAt: due,
        now,
        leaseUntil: new Date(+now + REPORT_DEFAULTS.leaseMs),
      });
      if (!claimed) continue;
      tick.claimed++;
      if (await attempt(deps, report, period, 1, signal)) tick.sent++;
      else tick.failed++;
    } catch (err) {
      deps.log.error(`reports: report ${report.id} (${report.name}) not checked`, err);
    }
  }
  const leaseUntil = new Date(+now + REPORT_DEFAULTS.leaseMs);
  for (const run of await takeOverRuns(deps.sql, now, leaseUntil, REPORT_DEFAULTS.maxAttempts)) {
    const report = await getReport(deps.sql, run.reportId);
    if (!report) continue;
    const period = reportPeriod(report.schedule, new Date(run.dueAt));
    if (await attempt(deps, report, period, run.attempts, signal)) tick.sent++;
    else tick.failed++;
  }
  return tick;
}

// Builds and sends one claimed period; records the outcome on its run. True when every item went.
async function attempt(
  deps: ReportDeps,
  report: Report,
  period: ReportPeriod,
  n: number,
  signal: AbortSignal,
): Promise<boolean> {
  const key = { reportId: report.id, periodStart: new Date(period.range.from) };
  let error: string;
  try {
    const built = await buildReport(deps, report, period, signal);
    const outcomes = await sendReport(deps, report, built, runKey(report.id, period.range.from), n);
    const bad = outcomes.find((o) => o.status !== 'delivered');
    if (!bad) {
      await finishRun(deps.sql, key, { sent: true, at: deps.clock(), summary: summaryOf(built) });
      return true;
    }
    error = `${bad.status}: ${'error' in bad ? bad.error : ''}`;
  } catch (err) {
    error = (err as Error).message;
  }
  deps.log.error(
    `reports: report ${report.id} (${report.name}) for ${period.range.from} not sent (try ${n}): ${error}`,
  );
  await finishRun(deps.sql, key, {
    sent: false,
    error,
    retryAt: new Date(+deps.clock() + REPORT_DEFAULTS.retryMs * n),
  });
  return false;
}

// What a run keeps: the numbers sent, without the per-bucket values.
function summaryOf(built: BuiltReport) {
  return built.queries.map((q) => ({
    title: q.title,
    lines: q.lines.map(({ values: _v, previousValues: _p, ...l }) => l),
  }));
}

/**
 * A preview: builds the report for the latest complete period at the clock and sends it now, outside
 * the runs (its own idempotency key each time, so every preview arrives).
 *
 * @example
 * const { period, outcomes } = await sendReportNow(deps, report, crypto.randomUUID(), signal);
 */
export async function sendReportNow(deps: ReportDeps, report: Report, previewId: string, signal: AbortSignal) {
  const period = reportPeriod(report.schedule, latestDue(report.schedule, deps.clock()));
  const built = await buildReport(deps, report, period, signal);
  const outcomes = await sendReport(deps, report, built, `report:${report.id}:preview:${previewId}`, 1);
  return { period, outcomes, report: reportJson(built) };
}

/** Stage 6's scheduled reports: the due check (a worker) and the preview command. */
export interface Reports {
  /** Builds and sends a report now for its latest complete period (a preview: no run recorded). */
  sendNow(report: Report, signal: AbortSignal): ReturnType<typeof sendReportNow>;
  /** Runs the due check now (the worker runs it every CAIRN_REPORTS_TICK_MS). */
  check(): Promise<ReportTick>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Creates the reports part of stage 6. `start` begins the due check on the runtime clock, every
 * `CAIRN_REPORTS_TICK_MS` (one check at a time in this process; across servers the run rows decide
 * who sends, so no lease is needed and a second server is a hot standby).
 *
 * @example
 * const reports = createReports(rt, reader);
 * await reports.start();
 */
export function createReports(rt: Runtime, reader: AnalyticsReader): Reports {
  const deps: ReportDeps = {
    sql: rt.sql,
    measure: { reader },
    pii: rt.pii,
    log: rt.log,
    sender: senderDeps(rt),
    clock: rt.clock,
  };
  let task: PeriodicTask | undefined;
  return {
    sendNow: (report, signal) => sendReportNow(deps, report, randomUUID(), signal),
    check: () => checkReports(deps, rt.stopping),
    async start() {
      task = startPeriodic({
        name: 'measure.reports',
        everyMs: rt.config.analytics.reportsTickMs,
        log: rt.log,
        run: () => checkReports(deps, rt.stopping),
      });
      void task.runNow();
    },
    async stop() {
      await task?.stop();
    },
  };
}
