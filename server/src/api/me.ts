import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, type Permission, ROLE_PERMISSIONS, requirePermission } from '../auth/middleware.ts';
import { personRecord } from '../auth/queries.ts';
import type { Sql } from '../db/index.ts';
import { AUTH_ERRORS, json } from './schemas.ts';

const MeSchema = z
  .object({
    kind: z.enum(['bootstrap-key', 'admin-key', 'api-key', 'session']),
    role: z.enum(['admin', 'operator', 'analyst']),
    permissions: z.array(z.string()).openapi({ description: 'Every permission the caller holds' }),
    user: z.object({ id: z.string(), email: z.string(), name: z.string() }).nullable(),
  })
  .openapi('Me');

/**
 * `/api/me`: who the caller is, as which role, with which permissions (what a client such as the
 * console shows and hides).
 *
 * @example
 * api.route('/me', meApi({ sql }));
 */
export function meApi(deps: { sql: Sql }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Users'],
      summary: 'The caller: role, permissions and, for a session or a key made by a person, the person',
      middleware: [requirePermission('self:read')] as const,
      responses: { 200: json(MeSchema, 'The caller'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const p = c.get('principal');
      const user = p.userId
        ? ((await personRecord(deps.sql, p.userId)) as { id: string; email: string; name: string } | undefined)
        : undefined;
      const permissions: Permission[] = [...ROLE_PERMISSIONS[p.role]].sort();
      return c.json(
        {
          kind: p.kind,
          role: p.role,
          permissions,
          user: user ? { id: user.id, email: user.email, name: user.name } : null,
        },
        200,
      );
    },
  );
  return app;
}
