import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { Sql } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';
import type { Pii } from '../../pii/index.ts';
import {
  dropRolledProperty,
  rolledProperties,
  rolledPropertyRows,
  rollUpProperty,
} from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { dotPath } from './trends.ts';

// Properties of named events rolled up per hour (migration 0037, analytics_rollup_properties): a trend's
// sum, mean or breakdown by such a property reads analytics_hourly_values instead of scanning events.
// Each one adds a read of the payloads to every recount of its event's hours, so registering is an admin
// write (`analytics:write`) and the number per event is bounded.
//
// The fill runs inside the request, in rollUpProperty's one transaction: the property and all its rows
// commit together, so no tile ever reads a half-filled rollup (a job filling in steps would need a
// "filled" state the 0037 table does not have, and tiles would have to skip the property meanwhile).
// Measured on bench:analytics (10M events): 13 s for Order Completed.total, one scan of that event's
// rows by events_event_time_idx; the table lock it holds delays the measure queue's recounts of rolled
// events for as long (they wait, nothing is lost).

/** How many properties one event can have rolled up: each is recounted on every attached event of it. */
export const ROLLUP_PROPERTY_LIMITS = { perEvent: 20, event: 200 } as const;

const TAG = 'Analytics';

const RolledPropertySchema = z
  .object({
    event: z.string(),
    property: z.string(),
    byValue: z.boolean(),
    createdAt: z.string().openapi({
      description:
        'When its rows were last counted from the events (a PUT counts them again). Trends read its rows before the ' +
        'retention horizon only from this instant on: earlier hours were counted from the events kept then',
    }),
    rows: z.number().int().openapi({ description: 'Its rows in analytics_hourly_values (per hour, type and value)' }),
    filled: z.boolean().openapi({
      description: 'Whether its rows are counted: always true, the fill commits with the registration',
    }),
  })
  .openapi('RolledProperty');

const PutBody = z
  .strictObject({
    event: z
      .string()
      .max(ROLLUP_PROPERTY_LIMITS.event)
      .regex(/\S/, 'an event name, not empty or blank')
      .openapi({ description: 'The event’s name (track events; a page’s name for page events)' }),
    property: dotPath.openapi({ description: 'A dot path under the event’s properties (e.g. total or order.total)' }),
    byValue: z
      .boolean()
      .default(false)
      .openapi({ description: 'Also count events per value, so that a breakdown by the property reads the rollup' }),
  })
  .openapi('RollUpProperty');

const DeleteQuery = z.object({
  event: z.string().min(1).max(ROLLUP_PROPERTY_LIMITS.event),
  property: dotPath,
});

type View = z.infer<typeof RolledPropertySchema>;

/**
 * `/api/analytics/rollups/properties`: list (GET), roll up and fill from the stored events (PUT), stop
 * rolling up and remove the rows (DELETE).
 *
 * @example
 * analytics.route('/', rollupPropertiesApi({ sql, pii }));
 */
export function rollupPropertiesApi(deps: { sql: Sql; pii: Pii }) {
  const { sql } = deps;
  const read = requirePermission('analytics:read');
  const write = requirePermission('analytics:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const list = async (): Promise<View[]> => {
    const counts = await rolledPropertyRows(sql);
    return (await rolledProperties(sql)).map((p) => ({
      event: p.event,
      property: p.property,
      byValue: p.byValue,
      createdAt: p.createdAt.toISOString(),
      rows: counts.get(`${p.event}\0${p.property}`) ?? 0,
      filled: true,
    }));
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/rollups/properties',
      tags: [TAG],
      summary: 'Properties rolled up per hour for trend tiles',
      middleware: [read] as const,
      responses: {
        200: json(z.object({ data: z.array(RolledPropertySchema) }), 'By event and property'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json({ data: await list() } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/rollups/properties',
      tags: [TAG],
      summary: 'Roll a property of an event up per hour, counted from the stored events now',
      description:
        'Registers the property and counts its rows from every attached event of the event, in one transaction ' +
        '(seconds per million events of that name; the answer comes when it is done). Again on a rolled-up ' +
        'property: counts it again (e.g. to change byValue). From then on the pipeline keeps it as events arrive, ' +
        'and trends of its sum, mean or (byValue) breakdown read it (`meta.sources`: values).',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: PutBody } }, required: true } },
      responses: {
        200: json(RolledPropertySchema, 'Rolled up and counted'),
        400: json(ErrorSchema, 'Invalid body (an empty event, a path that is not a dot path, a sensitive property)'),
        422: json(ErrorSchema, `too_many_properties: the event has ${ROLLUP_PROPERTY_LIMITS.perEvent} rolled up`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const top = body.property.split('.')[0]!;
      if (deps.pii.isSensitive(top))
        throw apiError(400, 'invalid_request', `property: ${top} is sensitive (stored sealed): it cannot be summed`);
      const same = (await rolledProperties(sql)).filter((p) => p.event === body.event);
      if (same.length >= ROLLUP_PROPERTY_LIMITS.perEvent && !same.some((p) => p.property === body.property))
        throw apiError(
          422,
          'too_many_properties',
          `event: "${body.event}" has ${same.length} properties rolled up, the most one event can have ` +
            `(each is recounted on every event of it); remove one first`,
        );
      await rollUpProperty(sql, { event: body.event, property: body.property, byValue: body.byValue });
      const view = (await list()).find((p) => p.event === body.event && p.property === body.property)!;
      return c.json(view as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/rollups/properties',
      tags: [TAG],
      summary: 'Stop rolling a property up: its rows are removed and its tiles scan events again',
      middleware: [write] as const,
      request: { query: DeleteQuery },
      responses: {
        204: { description: 'Removed' },
        400: json(ErrorSchema, 'Invalid query'),
        404: json(ErrorSchema, 'The property is not rolled up'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (!(await rolledProperties(sql)).some((p) => p.event === q.event && p.property === q.property))
        throw apiError(404, 'not_found', `${q.event}: ${q.property} is not rolled up`);
      await dropRolledProperty(sql, q);
      return c.body(null, 204);
    },
  );
  return app;
}
