import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { limitParam } from '../infra/paging.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import { audiencesOfProfile } from '../pipeline/compute/index.ts';
import { liveProfileId, recentProfiles } from '../pipeline/identify/index.ts';
import { type MeasureStage, readHeaders } from '../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// What the console's people pages need besides GET /api/profiles…: the people seen most recently (the
// page before anyone searches), and the audiences a person is or was in. Mounted before profilesApi:
// its GET /profiles/{id} would take /profiles/recent for an id.

const PersonSchema = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    updatedAt: z.string().openapi({ description: 'When an event last changed it: when the person was last seen' }),
    identities: z.array(z.object({ type: z.string(), value: z.string() })).openapi({
      description: 'Sensitive ones (email, phone) masked without pii:read',
    }),
  })
  .openapi('ProfileSummary');

const PersonAudienceSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    member: z.boolean().openapi({ description: 'In it now' }),
    enteredAt: z.string().openapi({ description: 'The latest period: when it began' }),
    exitedAt: z.string().nullable(),
    enteredBy: z.string().openapi({ description: 'event, time, recompute, merge or definition' }),
    exitedBy: z.string().nullable(),
    periods: z.number().int().openapi({ description: 'How many times the person entered it' }),
  })
  .openapi('ProfileAudience');

const RECENT_CURSOR = /^(\d{1,19})_([0-9a-f-]{36})$/;

/**
 * `/api/profiles/recent` (the people seen most recently, paged) and `/api/profiles/:id/audiences`.
 *
 * @example
 * api.route('/profiles', profileListApi({ sql, pii }));
 */
export function profileListApi(deps: { sql: Sql; pii: Pii; measure: Pick<MeasureStage, 'reader'> }) {
  const { sql, pii } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const shown = (c: Context<{ Variables: AuthVariables }>) => piiView(pii, c.get('principal'));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/recent',
      tags: ['Profiles'],
      summary: 'The people seen most recently (live profiles by last change), newest first',
      description:
        'For browsing; to find one person use GET /api/profiles?email=… (any identity). Each page scans ' +
        'the profiles table (no index on the last change). Read on the analytics replica when one is configured ' +
        '(headers `Cairn-Read-Source`, `Cairn-Replica-Lag`, `Cairn-Data-As-Of`).',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        query: z.object({
          before: z
            .string()
            .regex(RECENT_CURSOR)
            .optional()
            .openapi({ description: 'The `next` of the previous page' }),
          limit: limitParam(100, 25),
        }),
      },
      responses: {
        200: json(z.object({ data: z.array(PersonSchema), next: z.string().nullable() }), 'A page'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const m = q.before ? RECENT_CURSOR.exec(q.before) : null;
      const before = m ? { us: m[1]!, id: m[2]! } : undefined;
      // Lag-tolerant: on the analytics replica when there is one (headers say where and how far behind).
      const { value: rows, meta } = await deps.measure.reader.read((s) =>
        recentProfiles(s, { before, limit: q.limit }),
      );
      for (const [k, v] of Object.entries(readHeaders(meta))) c.header(k, v);
      const view = shown(c);
      const last = rows.at(-1);
      return c.json(
        {
          data: rows.map((r) => ({
            id: r.id,
            createdAt: r.createdAt.toISOString(),
            updatedAt: r.updatedAt.toISOString(),
            identities: r.identities.map((i) => ({ type: i.type, value: view.identity(i.type, i.value) })),
          })),
          next: rows.length === q.limit && last ? `${last.updatedUs}_${last.id}` : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/audiences',
      tags: ['Profiles'],
      summary:
        'The audiences a person is or was in, with their latest period (why: GET /api/audiences/{key}/explain/{id})',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: z.object({ id: z.string().uuid() }) },
      responses: {
        200: json(z.object({ data: z.array(PersonAudienceSchema) }), 'Current ones first'),
        404: { description: 'No such profile', content: { 'application/json': { schema: ErrorSchema } } },
        410: { description: 'The profile was erased', content: { 'application/json': { schema: ErrorSchema } } },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const live = await liveProfileId(sql, c.req.valid('param').id);
      const rows = await audiencesOfProfile(sql, live);
      return c.json(
        {
          data: rows.map((r) => ({
            ...r,
            enteredAt: r.enteredAt.toISOString(),
            exitedAt: r.exitedAt?.toISOString() ?? null,
          })),
        },
        200,
      );
    },
  );
  return app;
}
