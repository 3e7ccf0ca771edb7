import { KPI_PERIODS, type TrendSeries } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { IANAZone } from 'luxon';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import {
  deleteKpi,
  getKpi,
  insertKpi,
  type Kpi,
  type KpiFields,
  kpiStatus,
  listKpis,
  type MeasureStage,
  updateKpi,
} from '../pipeline/measure/index.ts';
import { SeriesSchema } from './analytics/trends.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

/** A period's zone: an IANA name. */
export const ZoneSchema = z
  .string()
  .max(64)
  .refine((tz) => IANAZone.isValidZone(tz), { message: 'not an IANA time zone (e.g. Europe/Berlin)' })
  .openapi({ description: 'The IANA time zone periods are cut in', example: 'Europe/Berlin' });

/** A KPI's or a metric's period: day, ISO week (from Monday) or calendar month. */
export const PeriodSchema = z.enum(KPI_PERIODS as ['day', 'week', 'month']).openapi({
  description: 'The period a target is set for and values are measured over, in the time zone',
});

const Fields = z.object({
  name: z.string().min(1).max(200),
  series: SeriesSchema.openapi({
    description: 'One series of POST /api/analytics/trends (events, measure, property) — what the KPI counts',
  }),
  period: PeriodSchema,
  timezone: ZoneSchema.default('UTC'),
  target: z.number().finite().min(0).openapi({ description: 'The value to reach in each period' }),
});
const KpiSchema = Fields.extend({ id: z.string(), createdAt: z.string(), updatedAt: z.string() }).openapi('Kpi');
const StatusSchema = z
  .object({
    kpi: KpiSchema,
    period: z.object({ from: z.string(), to: z.string(), timezone: z.string() }),
    at: z.string().openapi({ description: 'The instant the status is for (the server clock)' }),
    value: z.number().openapi({ description: 'The value from the period’s start to now' }),
    target: z.number(),
    achievementPct: z.number().nullable().openapi({ description: 'value / target, %' }),
    elapsed: z.number().openapi({ description: 'Share of the period gone, 0..1' }),
    expected: z.number().openapi({ description: 'target × elapsed: where a straight line to the target is now' }),
    pacePct: z.number().nullable().openapi({ description: 'value / expected, % (null at the period’s start)' }),
    projected: z.number().nullable().openapi({ description: 'value / elapsed: the end value at this pace' }),
  })
  .openapi('KpiStatus');
const IdParam = z.object({ id: z.string() });
const notFound = { description: 'No such KPI', content: { 'application/json': { schema: ErrorSchema } } };

const view = (k: Kpi) => ({
  id: k.id,
  name: k.name,
  series: k.series,
  period: k.period,
  timezone: k.timezone,
  target: k.target,
  createdAt: new Date(k.createdAt).toISOString(),
  updatedAt: new Date(k.updatedAt).toISOString(),
});

/**
 * Refuses a series summing or averaging a sensitive property (stored sealed, as the trends route does).
 *
 * @example
 * refuseSensitive(pii, body.series, 'series');
 */
export function refuseSensitive(pii: Pii, series: TrendSeries, where: string): void {
  if (series.property && pii.isSensitive(series.property.split('.')[0]!))
    throw apiError(400, 'invalid_request', `${where}.property: ${series.property} is sensitive (stored sealed)`);
}

/**
 * `/api/kpis`: KPIs — one trends series measured per day, week or month in a time zone against a
 * target per period — and `GET /api/kpis/:id/status`: the current period's value, achievement and
 * linear pacing (expected now, projected end value) at the server clock's instant.
 *
 * @example
 * api.route('/kpis', kpisApi({ sql, measure, pii, now: rt.clock }));
 */
export function kpisApi(deps: { sql: Sql; measure: MeasureStage; pii: Pii; now: () => Date }) {
  const { sql } = deps;
  const read = requirePermission('analytics:read');
  const write = requirePermission('kpis:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const k = await getKpi(sql, id);
    if (!k) throw apiError(404, 'not_found', `no KPI ${id}`);
    return k;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Analytics'],
      summary: 'List KPIs',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(KpiSchema) }), 'KPIs by name'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listKpis(sql)).map(view) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Analytics'],
      summary: 'Create a KPI',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Fields } }, required: true } },
      responses: { 201: json(KpiSchema, 'Created'), 400: json(ErrorSchema, 'Invalid KPI'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const body = c.req.valid('json') as KpiFields;
      refuseSensitive(deps.pii, body.series, 'series');
      const id = await insertKpi(sql, body);
      return c.json(view(await existing(id)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'One KPI',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: { 200: json(KpiSchema, 'The KPI'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').id)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Change a KPI (fields not given are kept)',
      middleware: [write] as const,
      request: { params: IdParam, body: { content: { 'application/json': { schema: patchOf(Fields) } } } },
      responses: { 200: json(KpiSchema, 'Changed'), 400: json(ErrorSchema, 'Invalid'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = view(await existing(id));
      const body = Fields.parse(applyPatch(before as z.input<typeof Fields>, c.req.valid('json'))) as KpiFields;
      refuseSensitive(deps.pii, body.series, 'series');
      await updateKpi(sql, id, body);
      return c.json(view(await existing(id)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Analytics'],
      summary: 'Delete a KPI and the alert rules on it',
      middleware: [write] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      if (!(await deleteKpi(sql, c.req.valid('param').id)))
        throw apiError(404, 'not_found', `no KPI ${c.req.valid('param').id}`);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/status',
      tags: ['Analytics'],
      summary: 'The current period: value so far, target, achievement and pacing',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: {
        200: json(StatusSchema, 'The status now'),
        404: notFound,
        422: json(ErrorSchema, 'The query ran past the analytics timeout'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const kpi = await existing(c.req.valid('param').id);
      const status = await kpiStatus(deps.measure.reader, kpi, deps.now(), c.req.raw.signal);
      return c.json({ kpi: view(kpi), ...status } as never, 200);
    },
  );
  return app;
}
