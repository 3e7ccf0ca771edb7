import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { listFailedEvents } from '../pipeline/ingest/queries.ts';
import { AUTH_ERRORS, json } from './schemas.ts';

const FailedEventSchema = z
  .object({
    id: z.string(),
    sourceId: z.string().nullable(),
    receivedAt: z.string(),
    status: z.number().int().openapi({ description: 'The HTTP status the sender got' }),
    code: z.string().openapi({ example: 'invalid_event' }),
    reason: z.string().openapi({ example: 'batch[3].timestamp: not an ISO-8601 date' }),
    event: z.unknown().nullable().openapi({ description: 'The refused event, when it could be stored as JSON' }),
    raw: z
      .object({
        text: z.string().openapi({ description: 'The raw body as UTF-8 (invalid bytes replaced)' }),
        base64: z.string(),
        bytes: z.number().int().openapi({ description: 'Size the sender sent; more than kept when cut off' }),
        truncated: z.boolean(),
      })
      .nullable(),
    request: z.unknown(),
  })
  .openapi('FailedEvent');

/**
 * `/api/failed-events`: every refused event or payload, newest first.
 *
 * @example
 * api.route('/failed-events', failedEventsApi(sql));
 */
export function failedEventsApi(sql: Sql) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Failed events'],
      summary: 'List refused events and payloads',
      middleware: [requirePermission('events:read')] as const,
      request: {
        query: z.object({
          sourceId: z.string().optional(),
          code: z.string().optional(),
          before: z.string().regex(/^\d+$/).optional().openapi({ description: 'Page: ids below this one' }),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
      responses: {
        200: json(z.object({ data: z.array(FailedEventSchema), next: z.string().nullable() }), 'A page of refusals'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const rows = await listFailedEvents(sql, q);
      const data = rows.map((r) => ({
        ...r,
        receivedAt: r.receivedAt.toISOString(),
        raw: r.raw && {
          text: r.raw.toString('utf8'),
          base64: r.raw.toString('base64'),
          bytes: r.rawBytes ?? r.raw.byteLength,
          truncated: (r.rawBytes ?? 0) > r.raw.byteLength,
        },
      }));
      return c.json({ data, next: rows.length === q.limit ? rows.at(-1)!.id : null }, 200);
    },
  );
  return app;
}
