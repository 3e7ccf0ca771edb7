import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { APIError } from 'better-auth/api';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import { invite, type PeopleAuth, type Person, toPerson } from '../auth/people.ts';
import { listPeople, removePerson, setRole } from '../auth/queries.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const RoleSchema = z.enum(['admin', 'operator', 'analyst']).openapi('Role');

const UserSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string(),
    role: RoleSchema,
    createdAt: z.string(),
  })
  .openapi('User');

const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });
const notFound = json(ErrorSchema, 'No such user');

const view = (p: Person) => ({ ...p, createdAt: p.createdAt.toISOString() });

/**
 * `/api/users`: list people, invite one with a role (the answer carries an initial password, shown
 * once), change a role, remove a person (their sessions and API keys go with them).
 *
 * @example
 * api.route('/users', usersApi(sql, auth, () => verifier.clear()));
 */
export function usersApi(sql: Sql, auth: PeopleAuth, onKeysRevoked: () => void) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Users'],
      summary: 'List people',
      middleware: [requirePermission('users:read')] as const,
      responses: { 200: json(z.object({ data: z.array(UserSchema) }), 'Everyone who can sign in'), ...AUTH_ERRORS },
    }),
    async (c) => {
      return c.json({ data: (await listPeople(sql)).map((r) => view(toPerson(r))) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Users'],
      summary: 'Invite a person with a role',
      description:
        'Creates the person with a random initial password, returned once in `initialPassword`. They sign in at `POST /api/auth/sign-in/email` and change it at `POST /api/auth/change-password`.',
      middleware: [requirePermission('users:write')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({
                email: z.string().email(),
                name: z.string().trim().min(1).max(200).optional(),
                role: RoleSchema,
              }),
            },
          },
        },
      },
      responses: {
        201: json(UserSchema.extend({ initialPassword: z.string() }), 'The person, with a password shown once'),
        409: json(ErrorSchema, 'The email is taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      try {
        const { person, initialPassword } = await invite(auth, c.req.valid('json'));
        return c.json({ ...view(person), initialPassword }, 201);
      } catch (err) {
        if (err instanceof APIError && err.status === 'CONFLICT') throw apiError(409, 'conflict', err.message);
        throw err;
      }
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Users'],
      summary: "Change a person's role",
      middleware: [requirePermission('users:write')] as const,
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: patchOf(z.object({ role: RoleSchema })) } }, required: true },
      },
      responses: { 200: json(UserSchema, 'The person'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await setRole(sql, id, c.req.valid('json').role ?? null);
      if (!row) throw apiError(404, 'not_found', `no user ${id}`);
      return c.json(view(toPerson(row)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Users'],
      summary: 'Remove a person, their sessions and their API keys',
      middleware: [requirePermission('users:write')] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Removed' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (c.get('principal').userId === id) throw apiError(409, 'conflict', 'you cannot remove yourself');
      if (!(await removePerson(sql, id))) throw apiError(404, 'not_found', `no user ${id}`);
      onKeysRevoked();
      return c.body(null, 204);
    },
  );
  return app;
}
