import { latestDue, nextDue, reportPeriod, reportScheduleSchema } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { getDestination, type PluginRegistry } from '../pipeline/deliver/index.ts';
import {
  deleteReport,
  destinationProblem,
  getReport,
  insertReport,
  listReports,
  listRuns,
  type MeasureStage,
  type Report,
  type ReportFields,
  updateReport,
} from '../pipeline/measure/index.ts';
import { runTrends, type TrendsBody, TrendsBodySchema } from './analytics/trends.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const ScheduleSchema = z
  .object({
    every: z.enum(['day', 'week', 'month']),
    weekday: z.number().int().optional().openapi({ description: 'every: week — ISO weekday, 1 = Monday … 7 = Sunday' }),
    day: z
      .number()
      .int()
      .optional()
      .openapi({ description: 'every: month — day of the month; 29–31 fall on the last day of shorter months' }),
    at: z.string().openapi({ description: 'Local time HH:MM (24-hour) in `timezone`', example: '09:00' }),
    timezone: z.string().openapi({ description: 'IANA time zone', example: 'Europe/Berlin' }),
  })
  .superRefine((s, ctx) => {
    const parsed = reportScheduleSchema.safeParse(s);
    for (const issue of parsed.error?.issues ?? [])
      ctx.addIssue({ code: 'custom', path: issue.path as PropertyKey[], message: issue.message });
  })
  .openapi('ReportSchedule', {
    description:
      'Sent every day, week (on a weekday) or month (on a day) at a local time; it covers the last complete day, ISO week or month before the send, beside the one before',
    example: { every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' },
  });

const QuerySchema = TrendsBodySchema.omit({ range: true, compare: true })
  .extend({ title: z.string().min(1).max(200).optional() })
  .openapi('ReportQuery', {
    description:
      'A trends query (the body of POST /api/analytics/trends without range and compare: the report’s period is the range, compared with the period before)',
  });

const DestinationSchema = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('email'),
      destinationId: z.string().min(1),
      to: z
        .array(
          z.string().regex(/^[^\s@<>()[\]",;:\\]+@[^\s@<>()[\]",;:\\]+\.[^\s@<>()[\]",;:\\]+$/, 'an email address'),
        )
        .min(1)
        .max(20),
    }),
    z.strictObject({ type: z.literal('chat'), destinationId: z.string().min(1) }),
    z.strictObject({ type: z.literal('webhook'), destinationId: z.string().min(1) }),
  ])
  .openapi('ReportDestination', {
    description:
      'email: an email destination (its SMTP settings and sender), to these addresses, charts inline; chat: a chat destination (Slack), a text summary; webhook: a webhook destination, the report as JSON',
  });

const Fields = z.object({
  name: z.string().min(1).max(200),
  schedule: ScheduleSchema,
  queries: z.array(QuerySchema).min(1).max(10),
  destination: DestinationSchema,
  enabled: z.boolean().default(true),
});
const Patch = patchOf(Fields);
const Period = z.object({ from: z.string(), to: z.string(), timezone: z.string() });
const ReportSchema = Fields.extend({
  id: z.string(),
  nextDue: z.string().openapi({ description: 'The next send time (ISO, UTC)' }),
  createdAt: z.string(),
  updatedAt: z.string(),
}).openapi('Report');
const RunSchema = z
  .object({
    periodStart: z.string(),
    periodEnd: z.string(),
    dueAt: z.string(),
    status: z.enum(['sending', 'sent', 'failed']),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
    sentAt: z.string().nullable(),
    summary: z.unknown().openapi({ description: 'Per query and series: value, previous, change %' }),
  })
  .openapi('ReportRun');
const Param = z.object({ id: z.string() });
const notFound = json(ErrorSchema, 'No such report');

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
const view = (r: Report, now: Date) => ({
  id: r.id,
  name: r.name,
  schedule: r.schedule,
  queries: r.queries,
  destination: r.destination,
  enabled: r.enabled,
  nextDue: nextDue(r.schedule, now).toISOString(),
  createdAt: iso(r.createdAt)!,
  updatedAt: iso(r.updatedAt)!,
});

/** What the reports routes are built from. */
export interface ReportsDeps {
  sql: Sql;
  measure: MeasureStage;
  pii: Pii;
  plugins: PluginRegistry;
  now: () => Date;
}

/**
 * `/api/reports`: scheduled reports — trends queries sent every day, week or month for the last
 * complete period beside the one before, by email (charts inline), to a chat or to a webhook; exactly
 * once per period (see pipeline/measure/reports.ts). Reading needs `analytics:read`, writing
 * `reports:write`; writes are audited.
 *
 * @example
 * api.route('/reports', reportsApi({ sql, measure, pii, plugins, now }));
 */
export function reportsApi(deps: ReportsDeps) {
  const { sql } = deps;
  const read = requirePermission('analytics:read');
  const write = requirePermission('reports:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const row = await getReport(sql, id);
    if (!row) throw apiError(404, 'not_found', `no report ${id}`);
    return row;
  };
  // Refuses what could never be sent: a destination that is gone or of the wrong kind, a query the trends
  // API refuses (run once, for the latest period, with its own message).
  const check = async (f: ReportFields, signal: AbortSignal) => {
    const d = await getDestination(sql, f.destination.destinationId);
    if (!d)
      throw apiError(
        400,
        'invalid_request',
        `destination.destinationId: no destination ${f.destination.destinationId}`,
      );
    const problem = destinationProblem(deps.plugins.get(d.plugin), f.destination.type);
    if (problem) throw apiError(400, 'invalid_request', `destination.destinationId: ${problem}`);
    const period = reportPeriod(f.schedule, latestDue(f.schedule, deps.now()));
    for (const [i, q] of f.queries.entries()) {
      const { title: _t, ...query } = q;
      try {
        await runTrends(deps, { ...query, range: period.range, compare: 'previous' } as TrendsBody, signal);
      } catch (err) {
        if (err instanceof HTTPException && err.status === 400)
          throw apiError(400, 'invalid_request', `queries[${i}]: ${err.message}`);
        throw err;
      }
    }
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Analytics'],
      summary: 'List scheduled reports',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(ReportSchema) }), 'Reports, oldest first'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listReports(sql)).map((r) => view(r, deps.now())) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Analytics'],
      summary: 'Create a scheduled report',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Fields } }, required: true } },
      responses: {
        201: json(ReportSchema, 'Created'),
        400: json(ErrorSchema, 'Invalid report (schedule, query, or a destination that cannot take it)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const f = c.req.valid('json') as ReportFields;
      await check(f, c.req.raw.signal);
      const id = await insertReport(sql, f, deps.now());
      return c.json(view(await existing(id), deps.now()) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'One scheduled report',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(ReportSchema, 'The report'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').id), deps.now()) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Change a report (only the fields given)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: Patch } }, required: true } },
      responses: {
        200: json(ReportSchema, 'Changed'),
        400: json(ErrorSchema, 'Invalid change'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = await existing(id);
      const next = applyPatch<ReportFields>(before, c.req.valid('json') as Partial<ReportFields>);
      await check(next, c.req.raw.signal);
      await updateReport(sql, id, next, deps.now());
      return c.json(view(await existing(id), deps.now()) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Delete a report and its runs',
      middleware: [write] as const,
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await deleteReport(sql, id))) throw apiError(404, 'not_found', `no report ${id}`);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/runs',
      tags: ['Analytics'],
      summary: 'The periods a report was sent for (newest first)',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(z.object({ data: z.array(RunSchema) }), 'Runs'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await existing(id);
      const runs = await listRuns(sql, id);
      const data = runs.map((r) => ({
        periodStart: iso(r.periodStart),
        periodEnd: iso(r.periodEnd),
        dueAt: iso(r.dueAt),
        status: r.status,
        attempts: r.attempts,
        lastError: r.lastError,
        sentAt: iso(r.sentAt),
        summary: r.summary,
      }));
      return c.json({ data } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/send-now',
      tags: ['Analytics'],
      summary: 'Send a preview now: the latest complete period, outside the schedule (recorded in no run)',
      middleware: [write] as const,
      request: { params: Param },
      responses: {
        200: json(
          z.object({
            sent: z.boolean(),
            period: z.object({ due: z.string(), interval: z.string(), range: Period, previous: Period }),
            outcomes: z.array(z.object({ status: z.string(), error: z.string().optional() })),
            report: z.unknown().openapi({ description: 'The report as JSON (what a webhook receives)' }),
          }),
          'What the destination answered',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const report = await existing(c.req.valid('param').id);
      const { period, outcomes, report: body } = await deps.measure.reports.sendNow(report, c.req.raw.signal);
      const sent = outcomes.every((o) => o.status === 'delivered');
      return c.json({ sent, period, outcomes, report: body } as never, 200);
    },
  );
  return app;
}
