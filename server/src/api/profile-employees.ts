import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Tx } from '../db/index.ts';
import {
  employeesByIds,
  getEmployee,
  linkEmployee,
  linksOf,
  reorderLinks,
  unlinkEmployee,
} from '../employees/queries.ts';
import { apiError } from '../http/errors.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { employeeView } from './employees.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Link = z
  .object({
    employeeId: z.string(),
    position: z.number().int().openapi({ description: '0 for the lead owner, then 1, 2, …' }),
    lead: z.boolean().openapi({ description: 'The first linked employee: the lead owner' }),
    linkedAt: z.string(),
    employee: z.object({}).passthrough().openapi({ description: 'The employee (see Employee)' }),
  })
  .openapi('EmployeeLink');
const Links = z.object({ profileId: z.string(), data: z.array(Link) });
const Param = z.object({
  id: z.string().uuid().openapi({ description: 'A profile id (merged ones lead to the survivor)' }),
});
const LinkParam = Param.extend({ employeeId: z.string() });
const notFound = {
  description: 'No such profile, employee or link',
  content: { 'application/json': { schema: ErrorSchema } },
};

async function linksView(tx: Tx, profileId: string) {
  const links = (await linksOf(tx, [profileId])).get(profileId) ?? [];
  const employees = await employeesByIds(
    tx,
    links.map((l) => l.employeeId),
  );
  return {
    profileId,
    data: links.map((l, i) => ({
      employeeId: l.employeeId,
      position: i,
      lead: i === 0,
      linkedAt: new Date(l.linkedAt).toISOString(),
      employee: employeeView(employees.get(l.employeeId)!),
    })),
  };
}

/**
 * `/api/profiles/:id/employees`: the employees linked to a person, in order — the first is the lead
 * owner (`assign_owner` in a flow links one as the lead; `notify_employees` reaches `linked` or
 * `lead_owner`). A merged-away profile's id answers for its survivor, where its links went.
 *
 * @example
 * api.route('/profiles', profileEmployeesApi({ sql }));
 */
export function profileEmployeesApi(deps: { sql: Sql }) {
  const { sql } = deps;
  const read = requirePermission('employees:read');
  const write = requirePermission('employees:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  // The person's links change one request at a time (the merge that moves them locks the same rows).
  const person = (fn: (tx: Tx, profileId: string) => Promise<unknown>, id: string) =>
    sql.begin(async (tx) => {
      const profileId = await liveProfileId(tx, id);
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`employees:${profileId}`}, 0))`;
      await fn(tx, profileId);
      return linksView(tx, profileId);
    });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/employees',
      tags: ['Employees'],
      summary: "A person's linked employees, lead owner first",
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(Links, 'The links, in order'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const profileId = await liveProfileId(sql, c.req.valid('param').id);
      return c.json((await linksView(sql, profileId)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/employees',
      tags: ['Employees'],
      summary: 'Link an employee to a person (last, or as the lead owner)',
      middleware: [write] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z.object({
                employeeId: z.string().min(1),
                lead: z.boolean().default(false).openapi({
                  description: 'Make them the lead owner (first); an existing link then moves to the front',
                }),
              }),
            },
          },
        },
      },
      responses: { 200: json(Links, 'The links, in order'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { employeeId, lead } = c.req.valid('json');
      const view = await person(async (tx, profileId) => {
        if (!(await getEmployee(tx, employeeId))) throw apiError(404, 'not_found', `no employee ${employeeId}`);
        await linkEmployee(tx, profileId, employeeId, { first: lead });
      }, c.req.valid('param').id);
      return c.json(view as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}/employees/order',
      tags: ['Employees'],
      summary: "Reorder a person's linked employees (the first becomes the lead owner)",
      middleware: [write] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z.object({
                employeeIds: z
                  .array(z.string())
                  .min(1)
                  .max(1000)
                  .openapi({ description: 'Every linked employee, once' }),
              }),
            },
          },
        },
      },
      responses: {
        200: json(Links, 'The links, in order'),
        400: json(ErrorSchema, 'Not every linked employee, or one twice'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { employeeIds } = c.req.valid('json');
      const view = await person(async (tx, profileId) => {
        const linked = ((await linksOf(tx, [profileId])).get(profileId) ?? []).map((l) => l.employeeId);
        const same =
          new Set(employeeIds).size === employeeIds.length &&
          employeeIds.length === linked.length &&
          linked.every((e) => employeeIds.includes(e));
        if (!same)
          throw apiError(
            400,
            'invalid_request',
            `employeeIds: name every linked employee once (${linked.join(', ') || 'none linked'})`,
          );
        await reorderLinks(tx, profileId, employeeIds);
      }, c.req.valid('param').id);
      return c.json(view as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}/employees/{employeeId}',
      tags: ['Employees'],
      summary: 'Unlink an employee from a person',
      middleware: [write] as const,
      request: { params: LinkParam },
      responses: { 200: json(Links, 'The links left, in order'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id, employeeId } = c.req.valid('param');
      const view = await person(async (tx, profileId) => {
        if (!(await unlinkEmployee(tx, profileId, employeeId)))
          throw apiError(404, 'not_found', `${employeeId} is not linked to profile ${profileId}`);
      }, id);
      return c.json(view as never, 200);
    },
  );

  return app;
}
