import {
  type ActiveQuery,
  type ActiveRunRow,
  activeSeries,
  activeSeriesSql,
  type EventFilter,
  type LifecycleRow,
  lifecycleSql,
  lifecycleTable,
  type TimeRange,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { activeReads, BEFORE_RETENTION, type HorizonGuard } from './horizon.ts';
import { CohortUnitSchema } from './retention.ts';

const ActiveBodySchema = z
  .strictObject({
    range: RangeSchema,
    // What counts as being active; absent: any event but identify.
    events: EventMatchSchema.optional(),
    interval: CohortUnitSchema.default('week'),
  })
  .openapi('ActiveQuery');

const count = z.number().int();
const ActiveAnswerSchema = z
  .object({
    series: z.array(
      z.object({
        day: z.string().openapi({ description: 'The local date (YYYY-MM-DD) in the range’s time zone' }),
        start: z.string().openapi({ description: 'The day’s start (ISO, UTC)' }),
        dau: count.openapi({ description: 'People active on the day' }),
        wau: count.openapi({ description: 'People active in the 7 days ending on the day' }),
        mau: count.openapi({ description: 'People active in the 30 days ending on the day' }),
        stickiness: z.number().nullable().openapi({ description: 'DAU / MAU (4 decimals)' }),
      }),
    ),
    stickiness: z.number().nullable().openapi({ description: 'DAU / MAU averaged over the days with an MAU' }),
    lifecycle: z.object({
      interval: CohortUnitSchema,
      buckets: z.array(
        z.object({
          start: z.string(),
          new: count.openapi({ description: 'First event ever in this bucket' }),
          returning: count.openapi({ description: 'Active in this bucket and the previous one' }),
          resurrecting: count.openapi({ description: 'Active in this bucket, not in the previous one, but before' }),
          dormant: count.openapi({ description: 'Active in the previous bucket, not in this one (negative)' }),
        }),
      ),
    }),
    meta: ReadMetaSchema.extend({ notes: z.array(z.string()) }),
  })
  .openapi('ActiveAnswer');

type Body = z.infer<typeof ActiveBodySchema>;

/**
 * `POST /api/analytics/active`: DAU, WAU and MAU for every day of the range (rolling calendar-day
 * windows in its time zone), stickiness (DAU/MAU), and the lifecycle per bucket (new, returning,
 * resurrecting, dormant).
 *
 * @example
 * analytics.route('/', activeApi(deps));
 */
export function activeApi(deps: { measure: MeasureStage; now: () => Date; horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/active',
      tags: ['Analytics'],
      summary: 'Active people: DAU/WAU/MAU per day, stickiness and lifecycle',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: ActiveBodySchema } }, required: true } },
      responses: {
        200: json(ActiveAnswerSchema, 'Every day of the range, and every lifecycle bucket'),
        400: json(ErrorSchema, 'Invalid query'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as Body;
      await deps.horizon.refuse(activeReads(body));
      const query: ActiveQuery = {
        range: body.range as TimeRange,
        interval: body.interval as ActiveQuery['interval'],
        ...(body.events ? { events: body.events as EventFilter } : {}),
      };
      const now = deps.now();
      const reader = deps.measure.reader.pin();
      const signal = c.req.raw.signal;
      const marks = await reader.rows<ActiveRunRow>(activeSeriesSql(query, { now }), signal);
      const cycle = await reader.rows<LifecycleRow>(lifecycleSql(query, { now }), signal);
      const { series, stickiness } = activeSeries(query.range, marks);
      const meta = await reader.meta();
      return c.json(
        {
          series,
          stickiness,
          lifecycle: { interval: query.interval, buckets: lifecycleTable(query, cycle) },
          meta: {
            ...meta,
            tookMs: Math.round(performance.now() - started),
            notes: [
              'people: distinct persons after identity merges (events not yet attached to a profile are left out)',
              `active: ${query.events ? 'doing one of the given events' : 'doing any event but identify'}`,
              'windows and buckets are whole calendar days, weeks (from Monday) and months in the range’s time zone: a range edge inside a day or bucket takes the whole of it',
              'stickiness: DAU / MAU of each day, and its average over the days with an MAU',
              'lifecycle: new = first event ever in the bucket; returning = active in the previous bucket too; resurrecting = not in the previous bucket but before; dormant = active in the previous bucket, not in this one (negative)',
            ],
          },
        },
        200,
      );
    },
  );
  return app;
}
