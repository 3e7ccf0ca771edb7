import { campaignMoney, type EventFilter, WINDOW_UNITS } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { DateTime } from 'luxon';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { Sql } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';
import { BUILTIN_REGISTRY } from '../../pipeline/deliver/index.ts';
import {
  type CampaignQuery,
  type ConversionRow,
  campaignCost,
  conversionsSql,
  type DeliveryMetricsRow,
  deliveryMetricsSql,
  getCampaign,
  type MeasureStage,
  type SkipRow,
  skipsSql,
  type TouchedRow,
  touchedSql,
  UNSUBSCRIBE_WINDOW_DAYS,
} from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { foldResults, keyOf } from './campaign-fold.ts';
import { EventMatchSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { BEFORE_RETENTION, type HorizonGuard } from './horizon.ts';

const MAX_WINDOW_DAYS = 90;
const BodySchema = z
  .strictObject({
    range: RangeSchema.optional().openapi({
      description: 'Messages requested and UTM events in this range; default: the campaign’s dates (to now)',
    }),
    goal: z
      .strictObject({
        events: EventMatchSchema,
        window: z
          .object({
            value: z.number().int().positive('the conversion window must be longer than 0'),
            unit: z.enum(Object.keys(WINDOW_UNITS) as [keyof typeof WINDOW_UNITS]),
          })
          .refine((w) => w.value * WINDOW_UNITS[w.unit] <= MAX_WINDOW_DAYS * 86_400_000, {
            path: ['value'],
            message: `the conversion window is at most ${MAX_WINDOW_DAYS} days`,
          })
          .default({ value: 7, unit: 'days' })
          .openapi({ description: 'After each touch (a delivered message, a UTM event); both ends inclusive' }),
        revenueProperty: z
          .string()
          .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+){0,4}$/, 'a property name or dot path')
          .optional()
          .openapi({ description: 'A numeric property of the goal event; default `revenue`, else `total`' }),
      })
      .optional()
      .openapi({ description: 'What a conversion is; without it, no conversions, revenue, ROI or CPA' }),
    includeMachine: z
      .boolean()
      .default(false)
      .openapi({ description: 'Count machine opens and clicks (privacy proxies, scanners) too' }),
  })
  .openapi('CampaignResultsQuery');
type Body = z.infer<typeof BodySchema>;

const n = z.number().int();
const Metrics = z.object({
  sent: n.openapi({ description: 'Messages handed to the destination (not skipped)' }),
  delivered: n,
  failed: n.openapi({ description: 'Dead: retries exhausted or refused' }),
  pending: n.openapi({ description: 'Still being sent (pending, retrying, waiting)' }),
  skipped: z.object({
    count: n,
    reasons: z.array(z.object({ reason: z.string(), count: n })).openapi({
      description: 'Consent, unsubscribed, a destination gone (ledger); `capped` (a frequency cap, journal)',
    }),
  }),
  reached: n.openapi({ description: 'People delivered a message' }),
  opened: z.object({ people: n, messages: n, rate: z.number().nullable() }),
  clicked: z.object({
    people: n,
    clicks: n.openapi({ description: 'Distinct (message, link) pairs clicked' }),
    rate: z.number().nullable().openapi({ description: 'people clicked / people reached' }),
  }),
  unsubscribed: n.openapi({ description: 'People whose unsubscribe is credited to one of these messages' }),
  converted: n.nullable().openapi({ description: 'People with a goal event in the window after a touch' }),
  conversions: n.nullable().openapi({ description: 'Goal events counted (each once)' }),
  revenue: z.number().nullable(),
});
const AnswerSchema = z
  .object({
    campaign: z.object({ id: z.string(), name: z.string(), currency: z.string(), budget: z.number().nullable() }),
    range: z.object({ from: z.string(), to: z.string(), timezone: z.string() }),
    totals: Metrics.extend({
      touched: n.openapi({ description: 'People delivered a message or with an event carrying a UTM value' }),
      cost: z.number(),
      costEntries: n,
      roi: z.number().nullable().openapi({ description: '(revenue − cost) / cost' }),
      costPerAcquisition: z.number().nullable(),
      revenuePerConversion: z.number().nullable(),
      budget: z
        .object({ amount: z.number(), spent: z.number(), remaining: z.number(), used: z.number().nullable() })
        .nullable(),
    }),
    flows: z.array(
      Metrics.extend({
        flowId: z.string(),
        name: z.string().nullable(),
        steps: z.array(
          Metrics.extend({
            node: z.string(),
            messages: z.array(Metrics.extend({ version: n.openapi({ description: 'The flow version sent' }) })),
          }),
        ),
      }),
    ),
    utm: z.array(
      z.object({
        value: z.string(),
        people: n,
        converted: n.nullable(),
        conversions: n.nullable(),
        revenue: z.number().nullable(),
      }),
    ),
    meta: ReadMetaSchema.extend({ notes: z.array(z.string()) }),
  })
  .openapi('CampaignResults');

// The campaign's dates as instants: its first day's start to the day after its last (or now).
function defaultRange(c: { startDate: string; endDate: string | null; timezone: string }, now: Date) {
  const from = DateTime.fromISO(c.startDate, { zone: c.timezone }).startOf('day');
  const end = c.endDate ? DateTime.fromISO(c.endDate, { zone: c.timezone }).plus({ days: 1 }).startOf('day') : null;
  const to = end ?? DateTime.fromJSDate(now).plus({ milliseconds: 1 });
  return { from: from.toUTC().toISO()!, to: to.toUTC().toISO()!, timezone: c.timezone };
}

async function channelsOf(sql: Sql) {
  const rows = await sql<{ id: string; plugin: string; channel: string | null }[]>`
    SELECT id, plugin, channel FROM destinations`;
  return rows.map((d) => ({ id: d.id, channel: d.channel ?? BUILTIN_REGISTRY.get(d.plugin)?.channel ?? null }));
}

/**
 * `POST /api/analytics/campaigns/{id}/results`: a campaign's results per flow, step (send node) and
 * message (the step in one flow version), and in total: sent, delivered, failed, skipped with reasons,
 * opened, clicked, unsubscribed, converted and revenue (a goal within a window after a touch), cost,
 * ROI and cost per acquisition; per UTM value the people touched and their conversions. Counted per
 * person after identity merges.
 *
 * @example
 * analytics.route('/', campaignResultsApi(deps));
 */
export function campaignResultsApi(deps: { sql: Sql; measure: MeasureStage; now: () => Date; horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/campaigns/{id}/results',
      tags: ['Analytics'],
      summary: 'A campaign’s results per flow, step and message, with ROI',
      middleware: [requirePermission('analytics:read')] as const,
      request: {
        params: z.object({ id: z.string() }),
        body: { content: { 'application/json': { schema: BodySchema } }, required: true },
      },
      responses: {
        200: json(AnswerSchema, 'The results'),
        400: json(ErrorSchema, 'Invalid query'),
        404: json(ErrorSchema, 'No such campaign'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const { id } = c.req.valid('param');
      const body = c.req.valid('json') as Body;
      const campaign = await getCampaign(deps.sql, id);
      if (!campaign) throw apiError(404, 'not_found', `no campaign ${id}`);
      const now = deps.now();
      const range = body.range ?? defaultRange(campaign, now);
      // Opens, clicks, UTM touches and goals are events (from the range on); the ledger is not.
      await deps.horizon.refuse({
        at: range.from,
        what: body.range ? 'range.from' : `the campaign's start (${range.from})`,
      });
      const goal = body.goal
        ? {
            events: body.goal.events as EventFilter,
            windowMs: body.goal.window.value * WINDOW_UNITS[body.goal.window.unit],
            revenuePath: body.goal.revenueProperty ? body.goal.revenueProperty.split('.') : null,
          }
        : null;
      const q: CampaignQuery = {
        flows: campaign.flows,
        utm: campaign.utm,
        from: range.from,
        to: range.to,
        includeMachine: body.includeMachine,
        channels: await channelsOf(deps.sql),
        goal,
        now,
      };
      const reader = deps.measure.reader.pin();
      const signal = c.req.raw.signal;
      const metrics = await reader.rows<DeliveryMetricsRow>(deliveryMetricsSql(q), signal);
      const skips = await reader.rows<SkipRow>(skipsSql(q), signal);
      const touched = await reader.rows<TouchedRow>(touchedSql(q), signal);
      const conversions = goal ? await reader.rows<ConversionRow>(conversionsSql(q), signal) : [];
      const names = await deps.sql<{ id: string; name: string }[]>`
        SELECT id, name FROM flows WHERE id = ANY(${campaign.flows}::text[])`;
      // Costs: the entries dated in the range when one was given, else every entry of the campaign.
      const cost = await campaignCost(
        deps.sql,
        id,
        body.range ? { from: new Date(range.from), to: new Date(range.to) } : undefined,
      );

      const { at, flows, utmConv } = foldResults({
        metrics,
        skips,
        conversions,
        goal: !!goal,
        names,
        flowIds: campaign.flows,
      });
      const totals = at(keyOf(null));
      const money = campaignMoney({
        revenue: totals.revenue ?? 0,
        cost: cost.total,
        converted: totals.converted ?? 0,
        budget: campaign.budget,
      });
      const meta = await reader.meta();
      return c.json(
        {
          campaign: { id, name: campaign.name, currency: campaign.currency, budget: campaign.budget },
          range,
          totals: {
            ...totals,
            ...(goal ? { revenue: money.revenue } : {}),
            touched: touched.find((t) => t.campaign)?.people ?? 0,
            cost: money.cost,
            costEntries: cost.entries,
            roi: goal ? money.roi : null,
            costPerAcquisition: goal ? money.costPerAcquisition : null,
            revenuePerConversion: goal ? money.revenuePerConversion : null,
            budget: money.budget,
          },
          flows,
          utm: campaign.utm.map((value) => {
            const conv = utmConv.get(value);
            return {
              value,
              people: touched.find((t) => !t.campaign && t.utm === value)?.people ?? 0,
              converted: goal ? (conv?.converted ?? 0) : null,
              conversions: goal ? (conv?.conversions ?? 0) : null,
              revenue: goal ? Number(conv?.revenue ?? 0) : null,
            };
          }),
          meta: {
            ...meta,
            tookMs: Math.round(performance.now() - started),
            notes: [
              'people: persons after identity merges (a message’s profile, or the one it merged into)',
              'messages: those of the campaign’s flows requested in the range; a message is a send step in one flow version',
              `opens and clicks: ${body.includeMachine ? 'human and machine' : 'human only (privacy proxies, scanners, fetches at the send left out)'}; clicks are distinct (message, link) pairs`,
              `unsubscribed: an unsubscribe is credited to the person’s last message delivered on its channel before it, within ${UNSUBSCRIBE_WINDOW_DAYS} days`,
              'converted: people with a goal event within the window after a touch (a delivered message, a UTM event in the range); each goal event counts once per level; revenue sums the goal events counted',
              'levels are distinct counts of people: steps and messages need not add up to their flow',
              `cost: ${body.range ? 'entries dated in the range' : 'every entry of the campaign'}; ROI = (revenue − cost) / cost; cost per acquisition = cost / converted; revenue is taken to be in the campaign’s currency`,
            ],
          },
        } as never,
        200,
      );
    },
  );
  return app;
}
