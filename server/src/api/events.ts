import type { JsonObject } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import { idCursor, limitParam, page, pageSchema } from '../infra/paging.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import { listEvents } from '../pipeline/ingest/index.ts';
import { type AnalyticsReader, readHeaders } from '../pipeline/measure/index.ts';
import { AUTH_ERRORS, json } from './schemas.ts';

const StoredEventSchema = z
  .object({
    id: z.string(),
    sourceId: z.string(),
    messageId: z.string(),
    type: z.string(),
    receivedAt: z.string(),
    processedAt: z.string().nullable().openapi({ description: 'When the pipeline took the event over' }),
    payload: z.unknown().openapi({
      description:
        'The event as stored: Segment fields, corrected timestamp, enriched context; sensitive traits masked without pii:read',
    }),
  })
  .openapi('StoredEvent');

/**
 * `/api/events`: the most recent stored events (a live event view for debugging sources). Lag-tolerant: read
 * on the analytics replica when there is one (`Cairn-Read-Source`, `Cairn-Replica-Lag` headers).
 *
 * @example
 * api.route('/events', eventsApi(measure.reader, pii));
 */
export function eventsApi(reads: Pick<AnalyticsReader, 'read'>, pii: Pii) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Events'],
      summary: 'List recent events, newest first',
      description:
        'Read on the analytics replica when one is configured and not too far behind: a just-sent event may show a ' +
        'moment later. Headers `Cairn-Read-Source` (primary|replica), `Cairn-Replica-Lag` (seconds), `Cairn-Data-As-Of`.',
      middleware: [requirePermission('events:read')] as const,
      request: {
        query: z.object({
          sourceId: z.string().optional(),
          type: z.enum(['track', 'identify', 'page', 'screen', 'group', 'alias']).optional(),
          messageId: z.string().optional(),
          before: idCursor('Page: ids below this one'),
          limit: limitParam(500, 50),
        }),
      },
      responses: {
        200: json(pageSchema(StoredEventSchema), 'A page of events'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const { value: rows, meta } = await reads.read((s) => listEvents(s, q));
      for (const [k, v] of Object.entries(readHeaders(meta))) c.header(k, v);
      const view = piiView(pii, c.get('principal'));
      const data = rows.map((r) => ({
        ...r,
        payload: view.payload(r.payload as JsonObject),
        receivedAt: r.receivedAt.toISOString(),
        processedAt: r.processedAt?.toISOString() ?? null,
      }));
      return c.json(page(data, rows, q.limit), 200);
    },
  );
  return app;
}
