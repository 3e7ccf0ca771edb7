import type { JsonObject } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { type PiiView, piiView } from '../pii/view.ts';
import { deliveriesOfEvent } from '../pipeline/deliver/index.ts';
import {
  getEvent,
  type LiveEvent,
  type LiveFilter,
  type LiveRefusal,
  liveEvents,
  liveHeads,
  liveRefusals,
} from '../pipeline/ingest/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

/** How often the stream looks for new rows, and how far back it looks again for late commits. */
const POLL_MS = 400;
const LATE_COMMIT_POLLS = 5;
const HEARTBEAT_MS = 15_000;
/** A stream ends after this long; EventSource reconnects by itself, resuming from Last-Event-ID. */
const STREAM_MAX_MS = 10 * 60_000;

const LiveEventSchema = z
  .object({
    id: z.string(),
    sourceId: z.string(),
    messageId: z.string(),
    type: z.string(),
    event: z.string().nullable().openapi({ description: 'The track event name' }),
    profileId: z.string().nullable().openapi({ description: 'The profile it was attached to, once processed' }),
    receivedAt: z.string(),
    processedAt: z.string().nullable(),
    payload: z.unknown().openapi({ description: 'The stored event; sensitive traits masked without pii:read' }),
  })
  .openapi('LiveEvent');

const DeliverySchema = z.object({
  id: z.string(),
  destinationId: z.string(),
  status: z.string(),
  reason: z.string().nullable(),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  lastAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
});

const EventDetailSchema = LiveEventSchema.extend({ deliveries: z.array(DeliverySchema) }).openapi('EventDetail');

const FilterQuery = z.object({
  sourceId: z.string().optional(),
  type: z.enum(['track', 'identify', 'page', 'screen', 'group', 'alias']).optional(),
  event: z.string().max(200).optional().openapi({ description: 'A track event name' }),
  profileId: z.uuid().optional().openapi({ description: 'Only events attached to this profile' }),
  refused: z
    .enum(['true', 'false'])
    .default('true')
    .openapi({ description: 'Also stream refused events and payloads (filtered by source only)' }),
  backlog: z.coerce
    .number()
    .int()
    .min(0)
    .max(200)
    .default(20)
    .openapi({ description: 'Recent rows sent first (ignored when resuming with Last-Event-ID)' }),
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

function view(e: LiveEvent, pii: PiiView) {
  return {
    ...e,
    receivedAt: e.receivedAt.toISOString(),
    processedAt: iso(e.processedAt),
    payload: pii.payload(e.payload as JsonObject),
  };
}

/**
 * `/api/events/stream` (Server-Sent Events of events as they are stored, and of refusals) and
 * `/api/events/{id}` (one event with its processing state and its deliveries): the console's live view.
 *
 * @example
 * api.route('/events', eventsLiveApi({ sql, pii, stopping }));
 */
export function eventsLiveApi(deps: { sql: Sql; pii: Pii; stopping: AbortSignal }) {
  const { sql, pii } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/stream',
      tags: ['Events'],
      summary: 'Stream events as they are stored (Server-Sent Events)',
      description:
        'Each stored event is sent as `event: event` with a LiveEvent as data, each refusal as `event: refused` (id, sourceId, receivedAt, status, code, reason). Event ids are `e<id>`/`r<id>` cursors: reconnecting with `Last-Event-ID` resumes where the stream stopped. A comment line every 15 s keeps proxies from closing it; the stream ends after 10 minutes and EventSource reconnects by itself.',
      middleware: [requirePermission('events:read')] as const,
      request: { query: FilterQuery },
      responses: {
        200: {
          description: 'An event stream',
          content: {
            'text/event-stream': { schema: z.string().openapi({ example: 'event: event\nid: e1041,r12\n' }) },
          },
        },
        ...AUTH_ERRORS,
      },
    }),
    (c) => {
      const q = c.req.valid('query');
      const filter: LiveFilter = { sourceId: q.sourceId, type: q.type, event: q.event, profileId: q.profileId };
      const withRefused = q.refused === 'true';
      const masked = piiView(pii, c.get('principal'));
      const resume = /^e(\d{1,18}),r(\d{1,18})$/.exec(c.req.header('last-event-id') ?? '');
      // Nginx and the like would hold the stream in their buffers.
      c.header('X-Accel-Buffering', 'no');
      c.header('Cache-Control', 'no-store');
      return streamSSE(c, async (stream) => {
        const until = Date.now() + STREAM_MAX_MS;
        const sentE = new Set<string>();
        const sentR = new Set<string>();
        let cursorE = '0';
        let cursorR = '0';
        const id = () => `e${cursorE},r${cursorR}`;
        const send = async (events: LiveEvent[], refusals: LiveRefusal[]) => {
          for (const e of events) {
            if (sentE.has(e.id)) continue;
            sentE.add(e.id);
            if (BigInt(e.id) > BigInt(cursorE)) cursorE = e.id;
            await stream.writeSSE({ event: 'event', id: id(), data: JSON.stringify(view(e, masked)) });
          }
          for (const r of refusals) {
            if (sentR.has(r.id)) continue;
            sentR.add(r.id);
            if (BigInt(r.id) > BigInt(cursorR)) cursorR = r.id;
            const data = JSON.stringify({ ...r, receivedAt: r.receivedAt.toISOString() });
            await stream.writeSSE({ event: 'refused', id: id(), data });
          }
        };
        if (resume) [cursorE, cursorR] = [resume[1]!, resume[2]!];
        else {
          ({ event: cursorE, refused: cursorR } = await liveHeads(sql));
          if (q.backlog > 0)
            await send(
              await liveEvents(sql, filter, null, q.backlog),
              withRefused ? await liveRefusals(sql, filter, null, q.backlog) : [],
            );
        }
        // Ids are taken before their transaction commits: a row with a lower id than one already sent
        // can still appear. Each poll reads again from where the stream stood a few polls ago and skips
        // what it sent.
        const floorsE: string[] = [];
        const floorsR: string[] = [];
        let lastBeat = Date.now();
        while (!stream.aborted && !deps.stopping.aborted && Date.now() < until) {
          floorsE.push(cursorE);
          floorsR.push(cursorR);
          if (floorsE.length > LATE_COMMIT_POLLS) floorsE.shift();
          if (floorsR.length > LATE_COMMIT_POLLS) floorsR.shift();
          prune(sentE, floorsE[0]!);
          prune(sentR, floorsR[0]!);
          await send(
            await liveEvents(sql, filter, floorsE[0]!, 500),
            withRefused ? await liveRefusals(sql, filter, floorsR[0]!, 200) : [],
          );
          if (Date.now() - lastBeat > HEARTBEAT_MS) {
            await stream.write(': keep-alive\n\n');
            lastBeat = Date.now();
          }
          await stream.sleep(POLL_MS);
        }
      }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Events'],
      summary: 'One stored event, its processing state and its deliveries',
      middleware: [requirePermission('events:read')] as const,
      request: { params: z.object({ id: z.string() }) },
      responses: {
        200: json(EventDetailSchema, 'The event'),
        404: { description: 'No such event', content: { 'application/json': { schema: ErrorSchema } } },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const e = await getEvent(sql, id);
      if (!e) throw apiError(404, 'not_found', `no event ${id}`);
      const deliveries = await deliveriesOfEvent(sql, e.id);
      return c.json(
        {
          ...view(e, piiView(pii, c.get('principal'))),
          deliveries: deliveries.map((d) => ({
            id: d.id,
            destinationId: d.destinationId,
            status: d.status,
            reason: d.reason,
            attempts: d.attempts,
            lastError: d.lastError,
            lastAttemptAt: iso(d.lastAttemptAt),
            deliveredAt: iso(d.deliveredAt),
          })),
        },
        200,
      );
    },
  );
  return app;
}

// Forgets sent ids at or below the floor: the next polls read only above it.
function prune(sent: Set<string>, floor: string) {
  const f = BigInt(floor);
  for (const id of sent) if (BigInt(id) <= f) sent.delete(id);
}
