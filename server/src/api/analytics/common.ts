import { type EventFilter, eventFilterSchema, INTERVALS, RANGE_LIMITS, timeRangeSchema } from '@cairn/core';
import { z } from '@hono/zod-openapi';
import type { ReadMeta } from '../../pipeline/measure/reader.ts';

// Copies made here, after @hono/zod-openapi has extended zod: a schema zod made before that (core's, when
// @cairn/core is loaded first, as when the server starts under tsx) has no .openapi and the import throws.
const timeRangeCopied = timeRangeSchema.clone();
const eventFilterCopy = eventFilterSchema.clone();

/**
 * A query's time range in OpenAPI form (the core schema validates it): `[from, to)` and a time zone.
 *
 * @example
 * const body = z.object({ range: RangeSchema, series: z.array(SeriesSchema) });
 */
export const RangeSchema = (
  timeRangeCopied as unknown as z.ZodType<{ from: string; to: string; timezone: string }>
).openapi('AnalyticsRange', {
  type: 'object',
  required: ['from', 'to'],
  properties: {
    from: { type: 'string', format: 'date-time', description: 'Start, inclusive (ISO-8601 with an offset)' },
    to: { type: 'string', format: 'date-time', description: 'End, exclusive (ISO-8601 with an offset)' },
    timezone: {
      type: 'string',
      default: 'UTC',
      description: 'The IANA time zone days, weeks and months are cut in (DST days are 23 or 25 hours long)',
    },
  },
  description: `A time range of at most ${RANGE_LIMITS.maxDays} days`,
  example: { from: '2026-11-01T00:00:00+01:00', to: '2026-12-01T00:00:00+01:00', timezone: 'Europe/Berlin' },
});

/** How a series is cut in time: hour, day, week (ISO, from Monday) or month, in the range's time zone. */
export const IntervalSchema = z.enum(INTERVALS as [string, ...string[]]).openapi('AnalyticsInterval');

/**
 * Which events a series, a step or a goal counts: names, types and property conditions — the event
 * filter of destinations and flow triggers (packages/core/src/rules/README.md).
 */
export const EventMatchSchema = (eventFilterCopy as unknown as z.ZodType<EventFilter>).openapi('AnalyticsEvents', {
  type: 'object',
  description:
    'Events by name (`event`, one or several), type, and conditions on properties (`where: [{ property, cmp, value }]`); {} is every event',
  example: { event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 100 }] },
});

/** Where an answer was read and how stale it may be (the replica's lag); every analytics answer carries it. */
export const ReadMetaSchema = z
  .object({
    source: z.enum(['primary', 'replica']),
    lagSeconds: z.number().nullable().openapi({
      description: 'Seconds the replica was behind the primary when read (0 on the primary; null: unknown)',
    }),
    dataAsOf: z
      .string()
      .datetime({ offset: true })
      .openapi({
        description:
          'The data read is complete up to this instant: now on the primary, the last replayed commit on a lagging replica. ' +
          'A write acknowledged before it is in the answer; one after it may not be yet (docs/deploy.md, read replicas)',
      }),
    fallback: z.enum(['replica_down', 'replica_lagging']).nullable().openapi({
      description:
        'Why a configured replica was not read: it is down, or further behind than CAIRN_ANALYTICS_MAX_LAG_S (the primary answered)',
    }),
    tookMs: z.number().int().openapi({ description: 'Time the query took on the server' }),
  })
  .openapi('AnalyticsMeta');

/** What {@link ReadMetaSchema} describes. */
export type AnswerMeta = ReadMeta & { tookMs: number };
