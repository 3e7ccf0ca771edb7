import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { SourceDirectory } from '../sources/directory.ts';
import { getSource, insertSource, listSources, rotateWriteKey, type Source, updateSource } from '../sources/queries.ts';
import { patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Origin = z
  .string()
  .regex(/^(\*|https?:\/\/(\*\.)?[^/\s*]+)$/, 'must be an origin like https://shop.example, https://*.example or *')
  .openapi({ example: 'https://shop.example' });

const ConsentPolicySchema = z
  .strictObject({
    default: z.enum(['allow', 'deny']),
    purposes: z.record(z.string().trim().toLowerCase().min(1).max(100), z.enum(['allow', 'deny'])).optional(),
  })
  .openapi('ConsentPolicy', {
    description:
      'What to assume for a consent purpose a profile never chose, for events of this source. Default: deny, except analytics, necessary and functional.',
    example: { default: 'deny', purposes: { analytics: 'allow' } },
  });

const SourceSchema = z
  .object({
    id: z.string().openapi({ example: 'src_3fJx9aQ2' }),
    name: z.string(),
    writeKey: z.string(),
    previousWriteKey: z.string().nullable(),
    previousKeyExpiresAt: z.string().nullable(),
    allowedOrigins: z.array(z.string()),
    enabled: z.boolean(),
    consentPolicy: ConsentPolicySchema,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Source');

const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });
const notFound = json(ErrorSchema, 'No such source');

function view(s: Source): z.infer<typeof SourceSchema> {
  return {
    ...s,
    previousWriteKey: s.previousKeyExpiresAt && s.previousKeyExpiresAt > new Date() ? s.previousWriteKey : null,
    previousKeyExpiresAt: s.previousKeyExpiresAt?.toISOString() ?? null,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

function found(s: Source | undefined, id: string): Source {
  if (!s) throw apiError(404, 'not_found', `no source ${id}`);
  return s;
}

const read = requirePermission('sources:read');
const write = requirePermission('sources:write');

// Cairn's own sources: `cairn` (unsubscribe events) and `import` (rows of bulk imports, migration 0029).
// Enabling one or rotating its key would let tracking calls in under its name.
const INTERNAL_SOURCES = new Set(['cairn', 'import']);

async function refuseInternal(c: { req: { param: (name: 'id') => string | undefined } }, next: () => Promise<void>) {
  const id = c.req.param('id');
  if (id && INTERNAL_SOURCES.has(id))
    throw apiError(409, 'internal_source', `the internal source ${id} cannot be changed`);
  await next();
}

/**
 * `/api/sources`: create, list, read, update, rotate the write key of, disable and enable sources.
 *
 * @example
 * api.route('/sources', sourcesApi(sql, directory));
 */
export function sourcesApi(sql: Sql, directory: SourceDirectory) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  // The internal sources never take tracking calls: their keys are never enabled.
  app.use('/:id/*', refuseInternal);
  app.patch('/:id', refuseInternal);
  const changed = async (s: Source | undefined, id: string) => {
    await directory.reload();
    return view(found(s, id));
  };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Sources'],
      summary: 'Create a source and its write key',
      middleware: [write] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({
                name: z.string().trim().min(1).max(200),
                allowedOrigins: z.array(Origin).max(100).default([]),
              }),
            },
          },
        },
      },
      responses: { 201: json(SourceSchema, 'The new source'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const source = await insertSource(sql, body);
      await directory.reload();
      return c.json(view(source), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Sources'],
      summary: 'List sources',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(SourceSchema) }), 'All sources'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listSources(sql)).map(view) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Sources'],
      summary: 'Read a source',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: { 200: json(SourceSchema, 'The source'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      return c.json(view(found(await getSource(sql, id), id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Sources'],
      summary: 'Rename a source, change its allowed origins or consent policy, or enable/disable it',
      middleware: [write] as const,
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: patchOf(
                z.object({
                  name: z.string().trim().min(1).max(200),
                  allowedOrigins: z.array(Origin).max(100),
                  enabled: z.boolean(),
                  consentPolicy: ConsentPolicySchema,
                }),
              ),
            },
          },
        },
      },
      responses: { 200: json(SourceSchema, 'The updated source'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      return c.json(await changed(await updateSource(sql, id, c.req.valid('json')), id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/rotate-key',
      tags: ['Sources'],
      summary: 'Issue a new write key',
      description:
        'The old key stops working at once, or after `graceSeconds` (at most 7 days) so deployed pages can be updated.',
      middleware: [write] as const,
      request: {
        params: IdParam,
        body: {
          required: false,
          content: {
            'application/json': {
              schema: z.object({ graceSeconds: z.number().int().min(0).max(604_800).default(0) }),
            },
          },
        },
      },
      responses: { 200: json(SourceSchema, 'The source with its new key'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { graceSeconds } = c.req.valid('json') ?? { graceSeconds: 0 };
      return c.json(await changed(await rotateWriteKey(sql, id, graceSeconds ?? 0), id), 200);
    },
  );

  for (const [action, enabled] of [
    ['disable', false],
    ['enable', true],
  ] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${action}`,
        tags: ['Sources'],
        summary: enabled ? 'Enable a source' : 'Disable a source: its events are refused with 403 and recorded',
        middleware: [write] as const,
        request: { params: IdParam },
        responses: { 200: json(SourceSchema, 'The source'), 404: notFound, ...AUTH_ERRORS },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        return c.json(await changed(await updateSource(sql, id, { enabled }), id), 200);
      },
    );
  }
  return app;
}
