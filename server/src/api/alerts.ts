import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { getDestination } from '../pipeline/deliver/index.ts';
import {
  ALERT_DEFAULTS,
  type AlertRule,
  type AlertRuleFields,
  deleteAlertRule,
  getAlertRule,
  getKpi,
  insertAlertRule,
  listAlertEvents,
  listAlertRules,
  type MeasureStage,
  updateAlertRule,
} from '../pipeline/measure/index.ts';
import { SeriesSchema } from './analytics/trends.ts';
import { PeriodSchema, refuseSensitive, ZoneSchema } from './kpis.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const d = ALERT_DEFAULTS;
// Each kind's settings, strict: a setting of another kind is a mistake worth a 400.
const PARAMS = {
  pacing: z.strictObject({
    belowPct: z.number().gt(0).max(100).default(d.pacing.belowPct),
    minElapsedPct: z.number().min(0).max(100).default(d.pacing.minElapsedPct),
  }),
  change: z.strictObject({
    changePct: z
      .number()
      .min(-100)
      .max(10_000)
      .refine((v) => v !== 0, 'a drop (< 0) or a rise (> 0)')
      .default(d.change.changePct),
  }),
  anomaly: z.strictObject({
    weeks: z.number().int().min(2).max(12).default(d.anomaly.weeks),
    k: z.number().min(0.5).max(10).default(d.anomaly.k),
    direction: z.enum(['below', 'above', 'both']).default(d.anomaly.direction),
  }),
  flow_health: z.strictObject({
    failures: z.number().int().min(1).max(1_000_000).default(d.flowHealth.failures),
    windowMinutes: z.number().int().min(1).max(1440).default(d.flowHealth.windowMinutes),
    destinationId: z.string().min(1).optional(),
    flowId: z.string().min(1).optional(),
  }),
} as const;

const Fields = z
  .object({
    name: z.string().min(1).max(200),
    kind: z.enum(['pacing', 'change', 'anomaly', 'flow_health']).openapi({
      description:
        'pacing: the KPI’s value below belowPct % of where linear pacing expects it; change: the period so far against ' +
        'as much of the previous period, by changePct % (−50: halved); anomaly: today so far outside median ± k·1.4826·MAD ' +
        'of the same weekday and span over the trailing `weeks`; flow_health: ≥ `failures` failed sends in `windowMinutes`',
    }),
    kpiId: z.string().nullable().default(null).openapi({ description: 'The KPI watched (pacing needs one)' }),
    metric: z
      .object({ series: SeriesSchema, period: PeriodSchema, timezone: ZoneSchema.default('UTC') })
      .nullable()
      .default(null)
      .openapi({ description: 'Or a metric of the rule’s own: one trends series, its period and zone' }),
    params: z.record(z.string(), z.unknown()).default({}).openapi({ description: 'The kind’s settings' }),
    destinationId: z.string().nullable().default(null).openapi({ description: 'Where firings and resolves are sent' }),
    recipient: z
      .string()
      .max(320)
      .nullable()
      .default(null)
      .openapi({ description: 'For an email or SMS destination: the address' }),
    enabled: z.boolean().default(true),
  })
  .superRefine((r, ctx) => {
    const params = PARAMS[r.kind].safeParse(r.params);
    if (!params.success)
      for (const issue of params.error.issues)
        ctx.addIssue({ code: 'custom', path: ['params', ...issue.path.map(String)], message: issue.message });
    if (r.kind === 'flow_health' && (r.kpiId || r.metric))
      ctx.addIssue({
        code: 'custom',
        path: ['kind'],
        message: 'flow_health watches the delivery ledger, not a metric',
      });
    if (r.kind === 'pacing' && !r.kpiId)
      ctx.addIssue({ code: 'custom', path: ['kpiId'], message: 'required for pacing (the target comes from the KPI)' });
    if ((r.kind === 'change' || r.kind === 'anomaly') && !r.kpiId === !r.metric)
      ctx.addIssue({ code: 'custom', path: ['metric'], message: `${r.kind} watches a KPI or a metric: give one` });
  });
const RuleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.string(),
    kpiId: z.string().nullable(),
    metric: z.unknown().nullable(),
    params: z.record(z.string(), z.unknown()),
    destinationId: z.string().nullable(),
    recipient: z.string().nullable(),
    enabled: z.boolean(),
    firing: z.boolean().openapi({ description: 'Whether an incident is open' }),
    incident: z.number().int().openapi({ description: 'How many incidents there have been' }),
    lastValue: z.number().nullable(),
    checkedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('AlertRule');
const EventSchema = z
  .object({
    id: z.string(),
    incident: z.number().int(),
    status: z.enum(['fired', 'resolved']),
    value: z.number().nullable(),
    threshold: z.number().nullable(),
    detail: z.record(z.string(), z.unknown()),
    at: z.string(),
    deliveredAt: z.string().nullable(),
    deliveryAttempts: z.number().int(),
    deliveryError: z.string().nullable(),
  })
  .openapi('AlertEvent');
const IdParam = z.object({ id: z.string() });
const notFound = { description: 'No such alert rule', content: { 'application/json': { schema: ErrorSchema } } };
const iso = (t: Date | null) => (t ? new Date(t).toISOString() : null);

const view = (r: AlertRule) => ({
  ...r,
  checkedAt: iso(r.checkedAt),
  createdAt: iso(r.createdAt)!,
  updatedAt: iso(r.updatedAt)!,
});
// What a rule watches and how: a change of these starts the rule afresh.
const judgedBy = (r: AlertRuleFields) => JSON.stringify([r.kind, r.kpiId, r.metric, r.params]);

/**
 * `/api/alerts`: alert rules on a KPI or a trends metric (below a share of the target by pacing,
 * change against the previous period, anomaly against the same weekday of the trailing weeks) or on
 * the delivery ledger (failed sends in an hour); `GET /api/alerts/:id/events`: each firing and
 * resolve; `POST /api/alerts/check`: check every rule now (the measure stage does it every minute).
 *
 * @example
 * api.route('/alerts', alertsApi({ sql, measure, pii }));
 */
export function alertsApi(deps: { sql: Sql; measure: MeasureStage; pii: Pii }) {
  const { sql } = deps;
  const read = requirePermission('analytics:read');
  const write = requirePermission('kpis:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const r = await getAlertRule(sql, id);
    if (!r) throw apiError(404, 'not_found', `no alert rule ${id}`);
    return r;
  };
  // Cross-table checks and the kind's defaults filled in.
  const accept = async (body: AlertRuleFields): Promise<AlertRuleFields> => {
    if (body.kpiId && !(await getKpi(sql, body.kpiId)))
      throw apiError(400, 'invalid_request', `kpiId: no KPI ${body.kpiId}`);
    if (body.destinationId && !(await getDestination(sql, body.destinationId)))
      throw apiError(400, 'invalid_request', `destinationId: no destination ${body.destinationId}`);
    if (body.metric) refuseSensitive(deps.pii, body.metric.series, 'metric.series');
    return { ...body, params: PARAMS[body.kind].parse(body.params) };
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Analytics'],
      summary: 'List alert rules',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(RuleSchema) }), 'Rules by name'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listAlertRules(sql)).map(view) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Analytics'],
      summary: 'Create an alert rule',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Fields } }, required: true } },
      responses: { 201: json(RuleSchema, 'Created'), 400: json(ErrorSchema, 'Invalid rule'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const id = await insertAlertRule(sql, await accept(c.req.valid('json') as AlertRuleFields));
      return c.json(view(await existing(id)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/check',
      tags: ['Analytics'],
      summary: 'Check every enabled rule now (at the server clock), and send what fired or resolved',
      middleware: [write] as const,
      responses: {
        200: json(
          z.object({
            checked: z.number(),
            fired: z.number(),
            resolved: z.number(),
            delivered: z.number(),
            failed: z.number(),
          }),
          'What the check did',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json(await deps.measure.checkAlerts(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'One alert rule, with its incident state',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: { 200: json(RuleSchema, 'The rule'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').id)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Change a rule (fields not given are kept; a new condition closes an open incident)',
      middleware: [write] as const,
      request: { params: IdParam, body: { content: { 'application/json': { schema: patchOf(Fields) } } } },
      responses: { 200: json(RuleSchema, 'Changed'), 400: json(ErrorSchema, 'Invalid'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = await existing(id);
      const merged = Fields.safeParse(applyPatch(before as z.input<typeof Fields>, c.req.valid('json')));
      if (!merged.success) {
        const first = merged.error.issues[0]!;
        throw apiError(400, 'invalid_request', `${first.path.join('.') || 'body'}: ${first.message}`);
      }
      const next = await accept(merged.data as AlertRuleFields);
      await updateAlertRule(sql, id, next, judgedBy(next) !== judgedBy(before));
      return c.json(view(await existing(id)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Delete a rule and its events',
      middleware: [write] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await deleteAlertRule(sql, id))) throw apiError(404, 'not_found', `no alert rule ${id}`);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/events',
      tags: ['Analytics'],
      summary: 'A rule’s firings and resolves, newest first',
      middleware: [read] as const,
      request: {
        params: IdParam,
        query: z.object({
          before: z.string().regex(/^\d+$/, 'an event id').optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
      },
      responses: { 200: json(z.object({ data: z.array(EventSchema) }), 'Events'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await existing(id);
      const events = await listAlertEvents(sql, id, c.req.valid('query'));
      return c.json(
        {
          data: events.map(({ ruleId: _r, ...e }) => ({ ...e, at: iso(e.at)!, deliveredAt: iso(e.deliveredAt) })),
        } as never,
        200,
      );
    },
  );
  return app;
}
