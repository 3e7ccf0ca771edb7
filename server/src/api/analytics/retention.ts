import {
  bucketStarts,
  COHORT_UNITS,
  type EventFilter,
  RETENTION_LIMITS,
  type RetentionQuery,
  retentionTable,
  type TimeRange,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import { apiError } from '../../http/errors.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { BEFORE_RETENTION, type HorizonGuard } from './horizon.ts';
import { readRetention, retentionCohortSource } from './retention-read.ts';

/** The cohort units, as OpenAPI shows them. */
export const CohortUnitSchema = z
  .enum(COHORT_UNITS as [string, ...string[]])
  .openapi('AnalyticsCohortUnit', { description: 'Day, week (ISO, from Monday) or month, in the range’s time zone' });

const RetentionBodySchema = z
  .strictObject({
    // The cohort entry range: people enter with a start event in [from, to).
    range: RangeSchema,
    cohort: CohortUnitSchema,
    // The event that puts a person in a cohort, and the one that counts as coming back.
    start: EventMatchSchema,
    return: EventMatchSchema,
    mode: z.enum(['first_time', 'recurring']).default('first_time').openapi({
      description:
        'first_time: the cohort of the person’s first start event ever (all history), only if it falls in the range; recurring: every bucket of the range in which they did the start event',
    }),
    periods: z
      .number()
      .int()
      .min(1)
      .max(RETENTION_LIMITS.maxPeriods)
      .openapi({ description: 'Periods followed after the cohort bucket (the table has periods 0..periods)' }),
    bounded: z.boolean().default(true).openapi({
      description: 'true: came back in exactly period k; false: in period k or any later period up to `periods`',
    }),
  })
  .openapi('RetentionQuery');

const RetentionAnswerSchema = z
  .object({
    cohort: CohortUnitSchema,
    cohorts: z.array(
      z.object({
        cohort: z.string().openapi({ description: 'The cohort bucket’s start (ISO, UTC)' }),
        size: z.number().int(),
        periods: z.array(
          z.object({
            period: z.number().int().openapi({ description: '0: the cohort bucket itself' }),
            start: z.string(),
            people: z.number().int(),
            percent: z.number().nullable().openapi({ description: 'people / size × 100, 2 decimals' }),
            complete: z.boolean().openapi({ description: 'false while the period ends after now' }),
          }),
        ),
      }),
    ),
    meta: ReadMetaSchema.extend({
      sources: z.array(z.string()).openapi({
        description:
          'Where [the cohorts, the returns] were read: first_times (each person’s first time per event, kept by the pipeline) or events (a scan)',
      }),
      notes: z.array(z.string()),
    }),
  })
  .openapi('RetentionAnswer');

type Body = z.infer<typeof RetentionBodySchema>;

/**
 * `POST /api/analytics/retention`: cohorts of people by when they did a start event (first time, or
 * every bucket they did it in), and per period after, how many came back with a return event
 * (exactly in that period, or in it or later).
 *
 * @example
 * analytics.route('/', retentionApi(deps));
 */
export function retentionApi(deps: { measure: MeasureStage; now: () => Date; horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/retention',
      tags: ['Analytics'],
      summary: 'Retention: cohorts by start event, and how many came back in each period after',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: RetentionBodySchema } }, required: true } },
      responses: {
        200: json(RetentionAnswerSchema, 'One row per cohort bucket of the range: its size and periods 0..periods'),
        400: json(ErrorSchema, 'Invalid query (too many cohorts, a bad event match, ...)'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as Body;
      // Cohorts enter in the range and return after it. (first_time's "no start event before" reads all
      // history: analytics_first_times keeps first times of dropped events, a scan of events only sees
      // since the horizon; docs/retention.md.)
      await deps.horizon.refuse({ at: body.range.from, what: 'range.from' });
      const query: RetentionQuery = {
        range: body.range as TimeRange,
        cohort: body.cohort as RetentionQuery['cohort'],
        start: body.start as EventFilter,
        return: body.return as EventFilter,
        mode: body.mode,
        periods: body.periods,
        bounded: body.bounded,
      };
      const cohorts = bucketStarts(query.range, query.cohort).length;
      if (cohorts > RETENTION_LIMITS.maxCohorts)
        throw apiError(
          400,
          'invalid_request',
          `cohort: the range has ${cohorts} ${query.cohort} cohorts, at most ${RETENTION_LIMITS.maxCohorts}: choose a longer cohort unit or a shorter range`,
        );
      const now = deps.now();
      const reader = deps.measure.reader.pin();
      const rows = await readRetention(reader, query, now, c.req.raw.signal);
      const meta = await reader.meta();
      return c.json(
        {
          cohort: query.cohort,
          cohorts: retentionTable(query, rows, now),
          meta: {
            ...meta,
            tookMs: Math.round(performance.now() - started),
            sources: [retentionCohortSource(query), 'events'],
            notes: [
              'people: distinct persons after identity merges (events not yet attached to a profile are left out)',
              query.mode === 'first_time'
                ? 'first_time: a person is in the cohort of their first start event ever, and only when it falls in the range'
                : 'recurring: a person is in every cohort bucket in which they did the start event',
              'period 0 is the cohort bucket itself: a return event counts there only after the entering start event (by timestamp, then id), so the entering event never counts as its own return',
              query.bounded
                ? 'bounded: a person counts in period k when they came back in that period'
                : `unbounded: a person counts in period k when they came back in period k or any later one up to ${query.periods}`,
            ],
          },
        },
        200,
      );
    },
  );
  return app;
}
