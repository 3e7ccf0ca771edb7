import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { IANAZone } from 'luxon';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import {
  addCost,
  type CampaignProblem,
  type CampaignRecord,
  campaignProblem,
  deleteCampaign,
  deleteCost,
  getCampaign,
  insertCampaign,
  listCampaigns,
  listCosts,
  updateCampaign,
} from '../pipeline/measure/index.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const day = z
  .string()
  .regex(DAY, 'a date YYYY-MM-DD')
  .refine(
    (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
    {
      message: 'not a calendar date',
    },
  );
const MAX_MEMBERS = 200;

const Fields = z.object({
  name: z.string().trim().min(1).max(200).openapi({ example: 'Spring sale' }),
  budget: z
    .number()
    .min(0, 'the budget cannot be negative')
    .max(1e12)
    .nullable()
    .default(null)
    .openapi({ description: 'The budget in `currency`; null: none' }),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as EUR')
    .default('EUR')
    .openapi({ description: 'Currency of the budget and the cost entries (ISO 4217)' }),
  startDate: day.openapi({ description: 'First day of the campaign, in `timezone`', example: '2026-12-01' }),
  endDate: day
    .nullable()
    .default(null)
    .openapi({ description: 'Last day (inclusive); null: open-ended', example: '2026-12-31' }),
  timezone: z
    .string()
    .max(64)
    .default('UTC')
    .refine((tz) => IANAZone.isValidZone(tz), 'not an IANA time zone (e.g. Europe/Berlin)'),
  flows: z
    .array(z.string().min(1).max(100))
    .max(MAX_MEMBERS)
    .default([])
    .openapi({ description: 'Flows whose messages belong to the campaign (a flow belongs to one campaign)' }),
  utm: z
    .array(z.string().trim().min(1).max(200))
    .max(MAX_MEMBERS)
    .default([])
    .openapi({
      description: 'UTM campaign values (`utm_campaign`, `context.campaign.name`) that belong to it',
      example: ['spring-sale'],
    }),
});
type FieldsIn = z.infer<typeof Fields>;

const CampaignSchema = Fields.extend({
  id: z.string(),
  cost: z.number().openapi({ description: 'Sum of the cost entries' }),
  createdAt: z.string(),
  updatedAt: z.string(),
  createdBy: z.string().nullable(),
}).openapi('Campaign');
const CostSchema = z
  .object({
    id: z.string(),
    amount: z.number(),
    at: z.string(),
    note: z.string().nullable(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
  })
  .openapi('CampaignCost');
const CostBody = z.strictObject({
  amount: z
    .number()
    .positive('a cost is more than 0')
    .max(1e12)
    .openapi({ description: 'In the campaign’s currency', example: 250 }),
  at: z.iso.datetime({ offset: true }).optional().openapi({ description: 'When the cost was incurred (default now)' }),
  note: z.string().max(500).nullable().optional(),
});
const Param = z.object({ id: z.string() });
const CostParam = z.object({ id: z.string(), costId: z.string() });
const notFound = { description: 'No such campaign', content: { 'application/json': { schema: ErrorSchema } } };

/** The record of valid fields, or a 400 naming the field (dates, duplicates). */
function recordOf(b: FieldsIn): CampaignRecord {
  if (b.endDate !== null && b.endDate < b.startDate)
    throw apiError(400, 'invalid_request', `endDate: ${b.endDate} is before startDate ${b.startDate}`);
  for (const key of ['flows', 'utm'] as const) {
    const seen = new Set<string>();
    for (const [i, v] of b[key].entries()) {
      if (seen.has(v)) throw apiError(400, 'invalid_request', `${key}[${i}]: ${v} is listed twice`);
      seen.add(v);
    }
  }
  return { ...b };
}

function refuse(p: CampaignProblem): never {
  if (p.kind === 'unknown_flow') throw apiError(400, 'invalid_request', `flows[${p.index}]: no flow ${p.flowId}`);
  if (p.kind === 'flow_taken')
    throw apiError(409, 'conflict', `flows[${p.index}]: flow ${p.flowId} belongs to campaign ${p.campaignId}`);
  throw apiError(409, 'conflict', `utm[${p.index}]: ${p.value} belongs to campaign ${p.campaignId}`);
}

/**
 * `/api/campaigns`: campaigns (name, budget and currency, dates, flows, UTM values) and their cost
 * entries. Reading needs `analytics:read`, writing `campaigns:write`. A flow's messages carry the
 * campaign the flow belongs to when they are sent; results are `POST /api/analytics/campaigns/{id}/results`.
 *
 * @example
 * api.route('/campaigns', campaignsApi({ sql, now: () => new Date() }));
 */
export function campaignsApi(deps: { sql: Sql; now: () => Date }) {
  const { sql } = deps;
  const read = requirePermission('analytics:read');
  const write = requirePermission('campaigns:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const row = await getCampaign(sql, id);
    if (!row) throw apiError(404, 'not_found', `no campaign ${id}`);
    return row;
  };
  const store = (id: string | null, record: CampaignRecord, by: string) =>
    sql.begin(async (tx) => {
      // One writer of memberships at a time: two campaigns claiming one flow never both pass the check (the
      // one-argument lock form: a key space apart from the stages' two-argument classes).
      await tx`SELECT pg_advisory_xact_lock(hashtext('cairn.campaigns')::bigint)`;
      const problem = await campaignProblem(tx, id, record);
      if (problem) refuse(problem);
      if (id === null) return insertCampaign(tx, record, by);
      if (!(await updateCampaign(tx, id, record))) throw apiError(404, 'not_found', `no campaign ${id}`);
      return id;
    });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Campaigns'],
      summary: 'List campaigns',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(CampaignSchema) }), 'Oldest first'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: await listCampaigns(sql) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Campaigns'],
      summary: 'Create a campaign',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Fields } }, required: true } },
      responses: {
        201: json(CampaignSchema, 'Created'),
        400: json(ErrorSchema, 'Invalid (end before start, an unknown flow, ...)'),
        409: json(ErrorSchema, 'A flow or UTM value belongs to another campaign'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const record = recordOf(c.req.valid('json'));
      const id = await store(null, record, actorOf(c.get('principal')));
      return c.json((await existing(id)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Campaigns'],
      summary: 'One campaign',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(CampaignSchema, 'The campaign'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json((await existing(c.req.valid('param').id)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Campaigns'],
      summary: 'Change a campaign (the fields given; `flows` and `utm` are replaced whole)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: patchOf(Fields) } } } },
      responses: {
        200: json(CampaignSchema, 'Changed'),
        400: json(ErrorSchema, 'Invalid'),
        404: notFound,
        409: json(ErrorSchema, 'A flow or UTM value belongs to another campaign'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { id: _id, cost: _cost, createdAt: _c, updatedAt: _u, createdBy: _b, ...before } = await existing(id);
      const record = recordOf(applyPatch(before as FieldsIn, c.req.valid('json') as Partial<FieldsIn>));
      await store(id, record, actorOf(c.get('principal')));
      return c.json((await existing(id)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Campaigns'],
      summary: 'Delete a campaign and its cost entries (its flows stay)',
      middleware: [write] as const,
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await deleteCampaign(sql, id))) throw apiError(404, 'not_found', `no campaign ${id}`);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/costs',
      tags: ['Campaigns'],
      summary: 'A campaign’s cost entries',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(z.object({ data: z.array(CostSchema) }), 'By date'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await existing(id);
      return c.json({ data: await listCosts(sql, id) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/costs',
      tags: ['Campaigns'],
      summary: 'Add a cost entry',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: CostBody } }, required: true } },
      responses: {
        201: json(CostSchema, 'Added'),
        400: json(ErrorSchema, 'Invalid (a cost of 0 or less, a bad date)'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      await existing(id);
      const entry = await addCost(
        sql,
        id,
        { amount: body.amount, at: body.at ? new Date(body.at) : deps.now(), note: body.note ?? null },
        actorOf(c.get('principal')),
      );
      return c.json(entry as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}/costs/{costId}',
      tags: ['Campaigns'],
      summary: 'Delete a cost entry',
      middleware: [write] as const,
      request: { params: CostParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id, costId } = c.req.valid('param');
      if (!(await deleteCost(sql, id, costId))) throw apiError(404, 'not_found', `no cost ${costId} in campaign ${id}`);
      return c.body(null, 204);
    },
  );

  return app;
}
