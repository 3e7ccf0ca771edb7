import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { listAudit } from '../audit/queries.ts';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { idCursor, limitParam, page, pageSchema } from '../infra/paging.ts';
import { AUTH_ERRORS, json } from './schemas.ts';

const AuditSchema = z
  .object({
    id: z.string(),
    at: z.string(),
    actor: z.object({
      kind: z.string().openapi({ description: 'bootstrap-key, admin-key, api-key or session' }),
      id: z.string().openapi({ description: 'The key id or the user id' }),
      role: z.string(),
      userId: z.string().nullable().openapi({ description: 'The person behind a session, or who created the key' }),
    }),
    action: z.string().openapi({ example: 'audience.update' }),
    resourceType: z.string(),
    resourceId: z.string().nullable(),
    method: z.string(),
    path: z.string(),
    status: z.number().int().openapi({ description: '2xx: done; 403: refused for lack of permission' }),
    before: z.unknown().openapi({ description: 'The resource before (secrets redacted; profiles: consent only)' }),
    after: z.unknown().openapi({ description: 'The resource after; null once deleted; counts for erasures' }),
    requestId: z.string().nullable(),
    ip: z.string().nullable(),
  })
  .openapi('AuditEntry');

/**
 * `/api/audit`: the audit log of admin writes, newest first, for admins.
 *
 * @example
 * api.route('/audit', auditApi(sql));
 */
export function auditApi(sql: Sql) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Audit'],
      summary: 'Who changed what and when: every admin write, newest first',
      description:
        'One entry per write through the admin API (and per write refused with 403), with the resource before and after. ' +
        'Secrets are redacted; profile entries hold consent or counts, never identities. Sign-ins are not recorded.',
      middleware: [requirePermission('audit:read')] as const,
      request: {
        query: z.object({
          actor: z.string().optional().openapi({ description: 'A key id or user id' }),
          resourceType: z.string().optional().openapi({ example: 'destination' }),
          resourceId: z.string().optional(),
          action: z.string().optional().openapi({ example: 'audience.update' }),
          before: idCursor('The `next` of the previous page'),
          limit: limitParam(500, 50),
        }),
      },
      responses: {
        200: json(pageSchema(AuditSchema), 'A page'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const rows = await listAudit(sql, q);
      const data = rows.map((r) => ({
        id: r.id,
        at: new Date(r.at).toISOString(),
        actor: { kind: r.actorKind, id: r.actorId, role: r.actorRole, userId: r.actorUserId },
        action: r.action,
        resourceType: r.resourceType,
        resourceId: r.resourceId,
        method: r.method,
        path: r.path,
        status: r.status,
        before: r.before,
        after: r.after,
        requestId: r.requestId,
        ip: r.ip,
      }));
      return c.json(page(data, rows, q.limit), 200);
    },
  );
  return app;
}
