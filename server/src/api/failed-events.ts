import type { JsonObject } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { idCursor, limitParam, page, pageSchema } from '../infra/paging.ts';
import { isSealed, type Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import type { EventWriter } from '../pipeline/ingest/index.ts';
import { listFailedEvents, replayFailedEvent } from '../pipeline/ingest/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

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
    replayedAt: z.string().nullable(),
    replayedMessageId: z.string().nullable(),
  })
  .openapi('FailedEvent');

const ReplayResult = z
  .object({ status: z.enum(['stored', 'duplicate']), messageId: z.string() })
  .openapi('ReplayResult');

/**
 * `/api/failed-events`: every refused event or payload, newest first.
 *
 * @example
 * api.route('/failed-events', failedEventsApi(sql));
 */
export function failedEventsApi(sql: Sql, replay: ReplayDeps) {
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
          replayed: z
            .enum(['true', 'false'])
            .transform((v) => v === 'true')
            .optional(),
          before: idCursor('Page: ids below this one'),
          limit: limitParam(500, 50),
        }),
      },
      responses: {
        200: json(pageSchema(FailedEventSchema), 'A page of refusals'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const rows = await listFailedEvents(sql, q);
      const view = piiView(replay.pii, c.get('principal'));
      const data = rows.map((r) => {
        const raw = r.raw && openRaw(replay.pii, r.raw);
        const event = r.event && typeof r.event === 'object' && !Array.isArray(r.event);
        return {
          ...r,
          event: event ? view.payload(r.event as JsonObject) : r.event,
          receivedAt: r.receivedAt.toISOString(),
          replayedAt: r.replayedAt?.toISOString() ?? null,
          // Raw bodies are sealed whole (nobody can say where PII sits in unparsed bytes): only
          // callers with pii:read see them.
          raw: raw && {
            text: view.clear ? raw.toString('utf8') : HIDDEN,
            base64: view.clear ? raw.toString('base64') : '',
            bytes: r.rawBytes ?? raw.byteLength,
            truncated: (r.rawBytes ?? 0) > raw.byteLength,
          },
        };
      });
      return c.json(page(data, rows, q.limit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/replay',
      tags: ['Failed events'],
      summary: 'Send a refused event through ingestion again, as stored or corrected',
      description:
        'Validated and enriched as if received at its original time. An event without a messageId gets `failed-<id>`, so a replay is stored once however often it is repeated.',
      middleware: [requirePermission('events:replay')] as const,
      request: {
        params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }),
        body: {
          required: false,
          content: {
            'application/json': {
              schema: z.object({
                event: z.record(z.string(), z.unknown()).optional().openapi({ description: 'A corrected event' }),
                sourceId: z.string().optional().openapi({ description: 'Needed when the refusal had no source (401)' }),
              }),
            },
          },
        },
      },
      responses: {
        200: json(ReplayResult, 'Stored (or already stored)'),
        400: json(ErrorSchema, 'Still invalid, or nothing to replay'),
        404: json(ErrorSchema, 'No such failed event'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const outcome = await replayFailedEvent({ sql, ...replay }, id, c.req.valid('json') ?? {});
      switch (outcome.status) {
        case 'stored':
        case 'duplicate':
          return c.json(outcome, 200);
        case 'not_found':
          throw apiError(404, 'not_found', `no failed event ${id}`);
        case 'no_source':
          throw apiError(400, 'no_source', 'the refusal has no (existing) source: give sourceId');
        case 'no_event':
          throw apiError(400, 'no_event', 'the refusal kept no event (unreadable body): give a corrected event');
        case 'invalid':
          throw apiError(400, 'invalid_event', `${outcome.issue.path}: ${outcome.issue.message}`, outcome.issue);
      }
    },
  );
  return app;
}

const HIDDEN = '(hidden: the raw body may hold PII; needs pii:read)';

function openRaw(pii: Pii, raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  // Refusals stored before PII protection are clear bytes.
  return isSealed(text) ? pii.openBytes(text) : raw;
}

/** What a replay needs besides the database. */
export interface ReplayDeps {
  pii: Pii;
  writer: EventWriter;
  maxFutureSkewMs: number;
  sourceExists(id: string): Promise<boolean>;
}
