import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import {
  type CalendarRow,
  deleteCalendar,
  flowNamingCalendar,
  getCalendar,
  insertCalendar,
  listCalendars,
  replanCalendar,
  updateCalendar,
} from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// A real day: `2026-11-11`, or `11-11` every year (29 February: only in leap years).
const isDay = (s: string) => {
  const m = /^(?:(\d{4})-)?(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1] ?? 2024), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
};

const Day = z.object({
  date: z.string().refine(isDay, 'a date YYYY-MM-DD, or MM-DD for every year').openapi({ example: '11-11' }),
  name: z.string().max(200).optional().openapi({ example: 'Singles Day' }),
});
const Fields = z.object({
  name: z.string().min(1).max(200),
  description: z.string().max(2000).nullable().default(null),
  days: z.array(Day).max(1000).openapi({ description: 'The days: dates, or MM-DD for a day every year' }),
});
const Create = Fields.extend({
  key: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,63}$/, 'lowercase letters, digits and _, starting with a letter')
    .openapi({ example: 'shopping_festivals' }),
});
const CalendarSchema = Create.extend({ createdAt: z.string(), updatedAt: z.string() }).openapi('Calendar');
const Param = z.object({ key: z.string() });
const notFound = { description: 'No such calendar', content: { 'application/json': { schema: ErrorSchema } } };

const view = (c: CalendarRow) => ({
  key: c.key,
  name: c.name,
  description: c.description,
  days: c.days,
  createdAt: new Date(c.createdAt).toISOString(),
  updatedAt: new Date(c.updatedAt).toISOString(),
});

/**
 * `/api/calendars`: custom calendars calendar triggers name (`{ "calendar": { "custom": "<key>" } }`), a
 * named list of days such as a shopping festival's. Changing a calendar's days plans the next firing of
 * the live flows that use it again; one in use by a flow cannot be deleted.
 *
 * @example
 * api.route('/calendars', calendarsApi({ sql, now: () => new Date() }));
 */
export function calendarsApi(deps: { sql: Sql; now: () => Date }) {
  const { sql } = deps;
  const read = requirePermission('flows:read');
  const write = requirePermission('flows:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (key: string) => {
    const row = await getCalendar(sql, key);
    if (!row) throw apiError(404, 'not_found', `no calendar ${key}`);
    return row;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Flows'],
      summary: 'List custom calendars',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(CalendarSchema) }), 'Calendars by key'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listCalendars(sql)).map(view) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Flows'],
      summary: 'Create a custom calendar (days calendar triggers can fire on)',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Create } } } },
      responses: {
        201: json(CalendarSchema, 'Created'),
        409: json(ErrorSchema, 'The key is taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key, ...record } = c.req.valid('json');
      if (!(await insertCalendar(sql, key, record))) throw apiError(409, 'conflict', `calendar ${key} exists`);
      return c.json(view(await existing(key)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'One custom calendar',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(CalendarSchema, 'The calendar'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').key)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'Replace a calendar’s name, description and days (live flows using it are planned again)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: Fields } } } },
      responses: { 200: json(CalendarSchema, 'Replaced'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      await sql.begin(async (tx) => {
        await updateCalendar(tx, key, c.req.valid('json'));
        await replanCalendar(tx, key, deps.now().getTime());
      });
      return c.json(view(await existing(key)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'Delete a calendar no flow names',
      middleware: [write] as const,
      request: { params: Param },
      responses: {
        204: { description: 'Deleted' },
        404: notFound,
        409: json(ErrorSchema, 'A flow names it'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const user = await flowNamingCalendar(sql, key);
      if (user) throw apiError(409, 'conflict', `flow ${user} names calendar ${key}`);
      await deleteCalendar(sql, key);
      return c.body(null, 204);
    },
  );

  return app;
}
