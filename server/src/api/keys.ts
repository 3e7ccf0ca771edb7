import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { roleOf } from '../auth/api-keys.ts';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { PeopleAuth } from '../auth/people.ts';
import { type ApiKeyRow, getApiKey, listApiKeys, revokeApiKey } from '../auth/queries.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// Keys made by a bootstrap or generated admin key belong to no person; better-auth needs an owner id.
const SYSTEM_OWNER = 'system';

const KeySchema = z
  .object({
    id: z.string(),
    name: z.string().nullable(),
    start: z.string().nullable().openapi({ description: 'The first characters, to recognise a key' }),
    role: z.enum(['admin', 'operator', 'analyst']),
    ownerId: z.string(),
    enabled: z.boolean(),
    expiresAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('ApiKey');

const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);

function view(k: ApiKeyRow): z.infer<typeof KeySchema> {
  return {
    id: k.id,
    name: k.name,
    start: k.start,
    role: roleOf(k.metadata) ?? 'analyst',
    ownerId: k.referenceId,
    enabled: k.enabled !== false,
    expiresAt: iso(k.expiresAt),
    createdAt: iso(k.createdAt)!,
  };
}

/**
 * `/api/keys`: API keys for machines, each bound to a role, hashed at rest (better-auth's api-key
 * plugin), shown once, revocable, optionally expiring. A revoked key stops working within
 * `CAIRN_API_KEY_CACHE_MS` (default 5 s) on every server.
 *
 * @example
 * api.route('/keys', keysApi(sql, auth, () => verifier.clear()));
 */
export function keysApi(sql: Sql, auth: PeopleAuth, onRevoke: () => void) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['API keys'],
      summary: 'List API keys (never the keys themselves)',
      middleware: [requirePermission('keys:read')] as const,
      responses: { 200: json(z.object({ data: z.array(KeySchema) }), 'All API keys'), ...AUTH_ERRORS },
    }),
    async (c) => {
      return c.json({ data: (await listApiKeys(sql)).map(view) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['API keys'],
      summary: 'Create an API key bound to a role (the key is shown once)',
      middleware: [requirePermission('keys:write')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({
                name: z.string().trim().min(1).max(32),
                role: z.enum(['admin', 'operator', 'analyst']),
                expiresInSeconds: z
                  .number()
                  .int()
                  .min(1)
                  .max(10 * 365 * 86_400)
                  .optional()
                  .openapi({ description: 'Omit for a key that never expires' }),
              }),
            },
          },
        },
      },
      responses: { 201: json(KeySchema.extend({ key: z.string() }), 'The key, shown once'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const created = await auth.api.createApiKey({
        body: {
          name: body.name,
          userId: c.get('principal').userId ?? SYSTEM_OWNER,
          expiresIn: body.expiresInSeconds,
          metadata: { role: body.role },
        },
      });
      const row = await getApiKey(sql, created.id);
      return c.json({ ...view(row!), key: created.key }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['API keys'],
      summary: 'Revoke an API key',
      middleware: [requirePermission('keys:write')] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Revoked' }, 404: json(ErrorSchema, 'No such key'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await revokeApiKey(sql, id))) throw apiError(404, 'not_found', `no API key ${id}`);
      onRevoke();
      return c.body(null, 204);
    },
  );
  return app;
}
