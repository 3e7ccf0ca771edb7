import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { Sql } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';
import {
  dropPeriodPeople,
  keepPeriodPeople,
  type PeriodPeopleEntry,
  periodPeopleRegistry,
} from '../../pipeline/measure/rollup-period-people.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { filledFields, filledOf, RollupZoneSchema as zone } from './rollups-common.ts';

const event = z.string().min(1).max(255).openapi({ description: 'An event name (a page’s name for page events)' });

const EntrySchema = z
  .union([z.strictObject({ zone }), z.strictObject({ event })])
  .openapi('PeriodPeopleEntry', { description: 'A zone, or a named event, to keep people per day for' });
const RegistrySchema = z
  .object({
    zones: z.array(z.string()).openapi({ description: 'Zones kept (UTC by default)' }),
    events: z.array(z.string()).openapi({ description: 'Named events kept in every zone (any event always is)' }),
  })
  .openapi('PeriodPeopleRegistry');
const Added = RegistrySchema.extend(filledFields('Presence rows filled from the attached events')).openapi(
  'PeriodPeopleAdded',
);
const EntryQuery = z.object({
  zone: zone.optional().openapi({ param: { name: 'zone', in: 'query' } }),
  event: event.optional().openapi({ param: { name: 'event', in: 'query' } }),
});

/**
 * `/api/analytics/rollups/people`: which zones and named events keep exact distinct people per day
 * (migration 0042; trends of people by day, week or month read them). Adding an entry fills it from the
 * attached events in one transaction (the pipeline's writers of these rows wait meanwhile); removing it
 * drops its rows, and those tiles scan again. Reading the list needs `analytics:read`, changing it `analytics:write`.
 *
 * @example
 * analytics.route('/', rollupPeopleApi({ sql }));
 */
export function rollupPeopleApi(deps: { sql: Sql }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const path = '/rollups/people';
  app.openapi(
    createRoute({
      method: 'get',
      path,
      tags: ['Analytics'],
      summary: 'Zones and events kept with exact people per day',
      middleware: [requirePermission('analytics:read')] as const,
      responses: { 200: json(RegistrySchema, 'The registry'), ...AUTH_ERRORS },
    }),
    async (c) => c.json(await periodPeopleRegistry(deps.sql), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path,
      tags: ['Analytics'],
      summary: 'Keep people per day for a zone or a named event (filled from the events now)',
      middleware: [requirePermission('analytics:write')] as const,
      request: { body: { content: { 'application/json': { schema: EntrySchema } }, required: true } },
      responses: {
        200: json(Added, 'Kept and filled (or kept already)'),
        400: json(ErrorSchema, 'Not a zone or an event name'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const entry = c.req.valid('json') as PeriodPeopleEntry;
      const r = await keepPeriodPeople(deps.sql, entry);
      return c.json({ ...(await periodPeopleRegistry(deps.sql)), ...filledOf(r) }, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path,
      tags: ['Analytics'],
      summary: 'Stop keeping people per day for a zone or a named event',
      middleware: [requirePermission('analytics:write')] as const,
      request: { query: EntryQuery },
      responses: {
        200: json(RegistrySchema, 'Removed; the registry now'),
        400: json(ErrorSchema, 'Neither or both of zone and event'),
        404: json(ErrorSchema, 'Not kept'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (!q.zone === !q.event) throw apiError(400, 'invalid_request', 'query: give exactly one of zone and event');
      const entry: PeriodPeopleEntry = q.zone ? { zone: q.zone } : { event: q.event! };
      if (!(await dropPeriodPeople(deps.sql, entry)))
        throw apiError(404, 'not_found', q.zone ? `zone ${q.zone} is not kept` : `event ${q.event} is not kept`);
      return c.json(await periodPeopleRegistry(deps.sql), 200);
    },
  );
  return app;
}
