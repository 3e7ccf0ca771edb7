import {
  ATTRIBUTION_LIMITS,
  ATTRIBUTION_MODELS,
  type AttributionModel,
  type AttributionQuery,
  type AttributionRow,
  attributionFold,
  attributionSql,
  CHANNEL_GROUPINGS,
  type ChannelGrouping,
  type EventFilter,
  type TimeRange,
  TOUCH_KINDS,
  type TouchKind,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import { apiError } from '../../http/errors.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { attributionReads, BEFORE_RETENTION, type HorizonGuard } from './horizon.ts';

const L = ATTRIBUTION_LIMITS;

const AttributionBodySchema = z
  .strictObject({
    range: RangeSchema.openapi({ description: 'Conversions in this range are attributed' }),
    conversion: EventMatchSchema,
    revenueProperty: z.string().min(1).max(200).optional().openapi({
      description: 'The property revenue is read from (JSON numbers only); absent: `revenue`, else `total`',
    }),
    lookback: z
      .strictObject({
        value: z.number().int().min(1).max(L.maxLookbackDays),
        unit: z.literal('days'),
      })
      .default({ value: L.defaultLookbackDays, unit: 'days' })
      .openapi({
        description: `How far before a conversion touches count (days of 24 h, at most ${L.maxLookbackDays})`,
      }),
    touchpoints: z
      .array(z.enum(TOUCH_KINDS))
      .min(1)
      .optional()
      .openapi({ description: 'The kinds of touch counted: utm, click, direct (default: all)' }),
    channelOf: z
      .enum(CHANNEL_GROUPINGS)
      .default('campaign')
      .openapi({ description: 'Channels: UTM campaign name, UTM source / medium, or Cairn flow (clicks)' }),
    models: z
      .array(z.enum(ATTRIBUTION_MODELS))
      .min(1)
      .refine((m) => new Set(m).size === m.length, 'a model is named twice')
      .default([...ATTRIBUTION_MODELS])
      .openapi({ description: 'The models answered side by side (default: all six)' }),
    halfLifeDays: z
      .number()
      .positive()
      .max(L.maxHalfLifeDays)
      .default(L.defaultHalfLifeDays)
      .openapi({ description: 'Half-life of the time-decay model, in days' }),
  })
  .openapi('AttributionQuery');

const Credit = z.object({ conversions: z.number(), revenue: z.number() });
const AttributionAnswerSchema = z
  .object({
    models: z.array(z.enum(ATTRIBUTION_MODELS)),
    channels: z.array(
      z.object({
        channel: z.string(),
        models: z
          .record(z.string(), Credit)
          .openapi({ description: 'Per model: attributed conversions (fractional) and revenue' }),
      }),
    ),
    totals: z.object({
      conversions: z.number().int(),
      revenue: z.number(),
      attributed: Credit.openapi({
        description: 'Conversions with a touch in the lookback (each model shares them out)',
      }),
      unattributed: Credit.openapi({ description: 'Conversions with no touch in the lookback' }),
    }),
    meta: ReadMetaSchema.extend({ notes: z.array(z.string()) }),
  })
  .openapi('AttributionAnswer');

type Body = z.infer<typeof AttributionBodySchema>;

/**
 * `POST /api/analytics/attribution`: conversions in the range credited to the touches (UTM campaigns on
 * events, clicks on Cairn's messages, direct session starts) of the same person — across devices and
 * merged identities — in the lookback before each, under every requested model side by side.
 *
 * @example
 * analytics.route('/', attributionApi(deps));
 */
export function attributionApi(deps: { measure: MeasureStage; now: () => Date; horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/attribution',
      tags: ['Analytics'],
      summary: 'Attribution of conversions to channels: six models side by side',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: AttributionBodySchema } }, required: true } },
      responses: {
        200: json(AttributionAnswerSchema, 'Credit per channel and model, and the totals'),
        400: json(ErrorSchema, 'Invalid query'),
        422: json(ErrorSchema, `The query ran past the analytics timeout or read too many rows; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as Body;
      await deps.horizon.refuse(attributionReads(body.range.from, body.lookback.value));
      const query: AttributionQuery = {
        range: body.range as TimeRange,
        conversion: body.conversion as EventFilter,
        ...(body.revenueProperty ? { revenueProperty: body.revenueProperty } : {}),
        lookbackDays: body.lookback.value,
        channelOf: body.channelOf as ChannelGrouping,
        models: body.models as AttributionModel[],
        halfLifeDays: body.halfLifeDays,
        ...(body.touchpoints ? { touchpoints: body.touchpoints as TouchKind[] } : {}),
      };
      const reader = deps.measure.reader.pin();
      const fold = attributionFold(query);
      let read = 0;
      for await (const batch of reader.stream<AttributionRow>(
        attributionSql(query, { now: deps.now() }),
        c.req.raw.signal,
      )) {
        read += batch.length;
        if (read > L.maxRows)
          throw apiError(
            422,
            'query_too_broad',
            `the query reads more than ${L.maxRows} touches and conversions: narrow the range, the conversion event or the lookback`,
          );
        fold.add(batch);
      }
      const table = fold.result();
      const meta = await reader.meta();
      const revenue = query.revenueProperty
        ? `properties.${query.revenueProperty}`
        : 'properties.revenue, else properties.total';
      return c.json(
        {
          models: [...query.models],
          ...table,
          meta: {
            ...meta,
            tookMs: Math.round(performance.now() - started),
            notes: [
              'people: persons after identity merges — touches on one device count for conversions on another once the identities merged',
              `a conversion is credited to its person's touches strictly before it (by timestamp, then event id) and at most ${query.lookbackDays} × 24 h older; touches are reused by the person's later conversions (as GA4 does)`,
              'touches: utm = an event whose context.campaign has a name, source or medium (repeats of the same campaign within a session are one touch); click = a Link Clicked event with a flowId (Cairn’s tracked links; machine clicks left out); direct = a visit (page, screen or track event) with no campaign that starts a session (no visit in the 30 minutes before)',
              'last_non_direct falls back to the last direct touch when all touches are direct; position_based: 40/20/40 (one touch 100%, two 50/50); time_decay: weight 2^(−age / half-life)',
              `revenue: ${revenue} (JSON numbers only; otherwise 0)`,
              'unattributed: conversions with no touch in the lookback',
            ],
          },
        },
        200,
      );
    },
  );
  return app;
}
