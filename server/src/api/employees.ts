import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Tx } from '../db/index.ts';
import {
  deleteEmployee,
  type EmployeeFields,
  type EmployeeRow,
  getEmployee,
  insertEmployee,
  listEmployees,
  reportsOf,
  supervisorChain,
  updateEmployee,
} from '../employees/queries.ts';
import { apiError } from '../http/errors.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// The longest supervisor chain walked when checking for a cycle: deeper than any real org chart.
const MAX_CHAIN = 1000;

const EmployeeId = z
  .string()
  .regex(/^[A-Za-z0-9_.:@-]{1,128}$/, 'letters, digits and _ . : @ -, at most 128')
  .openapi({ example: 'emp_ann', description: "The company's own id (HR, CRM): events name employees by it" });
const Fields = z.object({
  name: z.string().min(1).max(200).openapi({ example: 'Ann Example' }),
  email: z.string().email().max(320).nullable().default(null).openapi({ example: 'ann@corp.example' }),
  chatHandle: z.string().min(1).max(200).nullable().default(null).openapi({
    example: '@ann',
    description: 'Where chat notifications go: a Slack user (@ann) or channel (#sales)',
  }),
  supervisorId: EmployeeId.nullable().default(null).openapi({ description: 'The employee this one reports to' }),
  role: z.enum(['full', 'masked']).default('masked').openapi({
    description:
      "Which of a person's data notifications show this employee: full (clear) or masked (sensitive traits masked)",
  }),
  active: z.boolean().default(true).openapi({ description: 'Inactive employees are neither assigned nor notified' }),
});
const Create = Fields.extend({ id: EmployeeId });
const Patch = patchOf(Fields);
const EmployeeSchema = Create.extend({ createdAt: z.string(), updatedAt: z.string() }).openapi('Employee');
const Param = z.object({ id: z.string() });
const notFound = { description: 'No such employee', content: { 'application/json': { schema: ErrorSchema } } };

/**
 * An employee as the API shows it.
 *
 * @example
 * c.json(employeeView(row));
 */
export const employeeView = (e: EmployeeRow) => ({
  id: e.id,
  name: e.name,
  email: e.email,
  chatHandle: e.chatHandle,
  supervisorId: e.supervisorId,
  role: e.role,
  active: e.active,
  createdAt: new Date(e.createdAt).toISOString(),
  updatedAt: new Date(e.updatedAt).toISOString(),
});

// A supervisor must exist and must not be the employee or anyone below them: no cycle in the chain.
async function checkSupervisor(tx: Tx, id: string, supervisorId: string | null): Promise<void> {
  if (supervisorId === null) return;
  if (supervisorId === id)
    throw apiError(400, 'invalid_request', 'supervisorId: an employee cannot supervise themself');
  if (!(await getEmployee(tx, supervisorId)))
    throw apiError(400, 'invalid_request', `supervisorId: no employee ${supervisorId}`);
  const chain = [supervisorId, ...(await supervisorChain(tx, supervisorId, MAX_CHAIN))];
  const at = chain.indexOf(id);
  if (at >= 0)
    throw apiError(
      409,
      'conflict',
      `supervisorId: ${supervisorId} reports to ${id} (${[id, ...chain.slice(0, at + 1)].reverse().join(' → ')}): that would be a cycle`,
    );
}

/**
 * `/api/employees`: the employee directory flows assign people to and notify (`assign_owner`,
 * `notify_employees`). Supervisor chains never form a cycle; an employee someone reports to cannot be
 * deleted (deactivate them, or re-point their reports first).
 *
 * @example
 * api.route('/employees', employeesApi({ sql }));
 */
export function employeesApi(deps: { sql: Sql }) {
  const { sql } = deps;
  const read = requirePermission('employees:read');
  const write = requirePermission('employees:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (tx: Tx, id: string) => {
    const row = await getEmployee(tx, id);
    if (!row) throw apiError(404, 'not_found', `no employee ${id}`);
    return row;
  };
  // Directory writes one at a time: two concurrent supervisor changes could each pass the cycle check.
  const serial = <T>(fn: (tx: Tx) => Promise<T>) =>
    sql.begin(async (tx) => {
      await tx`LOCK TABLE employees IN SHARE ROW EXCLUSIVE MODE`;
      return fn(tx);
    }) as Promise<T>;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Employees'],
      summary: 'List employees',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(EmployeeSchema) }), 'Employees by id'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listEmployees(sql)).map(employeeView) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Employees'],
      summary: 'Create an employee',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Create } } } },
      responses: {
        201: json(EmployeeSchema, 'Created'),
        400: json(ErrorSchema, 'An unknown supervisor'),
        409: json(ErrorSchema, 'The id is taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id, ...fields } = c.req.valid('json');
      const row = await serial(async (tx) => {
        await checkSupervisor(tx, id, fields.supervisorId);
        if (!(await insertEmployee(tx, id, fields))) throw apiError(409, 'conflict', `employee ${id} exists`);
        return existing(tx, id);
      });
      return c.json(employeeView(row) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Employees'],
      summary: 'One employee, with their supervisor chain and direct reports',
      middleware: [read] as const,
      request: { params: Param },
      responses: {
        200: json(
          EmployeeSchema.extend({
            supervisors: z.array(z.string()).openapi({ description: 'The supervisor chain, nearest first' }),
            reports: z.array(z.string()).openapi({ description: 'Who reports to this employee directly' }),
          }),
          'The employee',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await existing(sql, id);
      const [supervisors, reports] = await Promise.all([supervisorChain(sql, id, MAX_CHAIN), reportsOf(sql, id)]);
      return c.json({ ...employeeView(row), supervisors, reports } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Employees'],
      summary: 'Change an employee (only the fields given)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: Patch } } } },
      responses: {
        200: json(EmployeeSchema, 'Changed'),
        400: json(ErrorSchema, 'An unknown supervisor'),
        404: notFound,
        409: json(ErrorSchema, 'The new supervisor reports to this employee (a cycle)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const patch = c.req.valid('json') as Partial<EmployeeFields>;
      const row = await serial(async (tx) => {
        const before = await existing(tx, id);
        const next = applyPatch<EmployeeFields>(before, patch);
        if (patch.supervisorId !== undefined) await checkSupervisor(tx, id, next.supervisorId);
        await updateEmployee(tx, id, next);
        return existing(tx, id);
      });
      return c.json(employeeView(row) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Employees'],
      summary: 'Delete an employee nobody reports to (their links to people go with them)',
      middleware: [write] as const,
      request: { params: Param },
      responses: {
        204: { description: 'Deleted' },
        404: notFound,
        409: json(ErrorSchema, 'Someone reports to this employee'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await serial(async (tx) => {
        await existing(tx, id);
        const reports = await reportsOf(tx, id);
        if (reports.length)
          throw apiError(409, 'conflict', `${reports.join(', ')} report to ${id}: give them another supervisor first`, {
            reports,
          });
        await deleteEmployee(tx, id);
      });
      return c.body(null, 204);
    },
  );

  return app;
}
