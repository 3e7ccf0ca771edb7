import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { limitParam } from '../infra/paging.ts';
import { type PersonRun, runsOfProfiles } from '../pipeline/automate/index.ts';
import { deliveriesOfEvents, messagesOfProfiles, type PersonDelivery } from '../pipeline/deliver/index.ts';
import {
  liveProfileId,
  profileChain,
  type TimelineBound,
  type TimelineEvent,
  timelineEvents,
} from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// One person's history in one list: their events (each with the deliveries it made), the messages
// flows sent them, and the flow runs they entered, newest first. Each kind is read through its own
// index (events by profile and time, messages and runs by profile) and the pages are merged here.

const DeliverySchema = z
  .object({
    id: z.string(),
    destinationId: z.string(),
    status: z.string(),
    reason: z.string().nullable().openapi({ description: 'Why skipped or waiting, or why it is dead' }),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
  })
  .openapi('TimelineDelivery');

const EventItem = z.object({
  kind: z.literal('event'),
  at: z.string().openapi({ description: 'The event time' }),
  id: z.string(),
  type: z.string(),
  name: z.string().nullable().openapi({ description: 'The track event, or the page/screen name' }),
  sourceId: z.string(),
  messageId: z.string(),
  deliveries: z.array(DeliverySchema),
});
const MessageItem = DeliverySchema.extend({
  kind: z.literal('delivery'),
  at: z.string().openapi({ description: 'When the flow queued the message' }),
  flowRunId: z.string().nullable().openapi({ description: 'The run that sent it (from its effect key)' }),
  node: z.string().nullable().openapi({ description: 'The flow step that sent it' }),
});
const RunItem = z.object({
  kind: z.literal('run'),
  at: z.string().openapi({ description: 'When the person entered the flow' }),
  id: z.string(),
  flowId: z.string(),
  flowName: z.string().nullable(),
  version: z.number().int(),
  status: z.string(),
  node: z.string().nullable().openapi({ description: 'Where the run waits, or where it ended' }),
  endedAt: z.string().nullable(),
  reason: z.string().nullable(),
});
const ItemSchema = z.discriminatedUnion('kind', [EventItem, MessageItem, RunItem]).openapi('TimelineItem');
type Item = z.infer<typeof ItemSchema>;

// Items sort by (instant, kind, id) descending; a cursor names the last item shown as
// `<microseconds since the epoch>_<kind rank>_<id>`.
const RANK = { event: 0, delivery: 1, run: 2 } as const;
const CURSOR = /^(\d{1,19})_([012])_([0-9a-f-]{1,36})$/;

/** Where each kind's next page starts after the cursor (see TimelineBound). */
function boundsOf(cursor: string | undefined): Record<keyof typeof RANK, TimelineBound | undefined> {
  const m = cursor ? CURSOR.exec(cursor) : null;
  if (!m) return { event: undefined, delivery: undefined, run: undefined };
  const [, us, rank, id] = m as unknown as [string, string, string, string];
  const of = (r: number): TimelineBound => (r === Number(rank) ? { us, id } : { us, inclusive: r < Number(rank) });
  return { event: of(RANK.event), delivery: of(RANK.delivery), run: of(RANK.run) };
}

const iso = (d: Date | null) => d?.toISOString() ?? null;
const deliveryOf = (d: PersonDelivery) => ({
  id: d.id,
  destinationId: d.destinationId,
  status: d.status,
  reason: d.reason,
  attempts: d.attempts,
  lastError: d.lastError,
  deliveredAt: iso(d.deliveredAt),
});

/** One timeline item with the instant and key it sorts by. */
type Sorted = { us: bigint; rank: number; id: string; item: Item };
// As the queries order: ids are bigints for events and deliveries, uuids (ordered as their hex) for runs.
const idOrder = (a: Sorted, b: Sorted) => {
  const [x, y] = a.rank === RANK.run ? [a.id, b.id] : [BigInt(a.id), BigInt(b.id)];
  return x === y ? 0 : x > y ? -1 : 1;
};
const compare = (a: Sorted, b: Sorted) =>
  a.us !== b.us ? (a.us > b.us ? -1 : 1) : a.rank !== b.rank ? b.rank - a.rank : idOrder(a, b);

/**
 * `/api/profiles/:id/timeline`: a person's events (with their deliveries), flow messages and flow runs
 * in one list, newest first, paged.
 *
 * @example
 * api.route('/profiles', profileTimelineApi(deps));
 */
export function profileTimelineApi(deps: { sql: Sql }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/timeline',
      tags: ['Profiles'],
      summary: "A person's timeline: events with their deliveries, flow messages and flow runs, newest first",
      description:
        'Events sort by their event time, flow messages by when they were queued, runs by when the person ' +
        'entered the flow. No PII: events show their type and name (the payload is at GET /api/events/{id}), ' +
        'messages their destination and outcome. A merged-away id answers for the profile it became.',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        params: z.object({ id: z.string().uuid() }),
        query: z.object({
          before: z.string().regex(CURSOR).optional().openapi({ description: 'The `next` of the previous page' }),
          limit: limitParam(200, 50),
        }),
      },
      responses: {
        200: json(z.object({ data: z.array(ItemSchema), next: z.string().nullable() }), 'A page, newest first'),
        404: { description: 'No such profile', content: { 'application/json': { schema: ErrorSchema } } },
        410: { description: 'The profile was erased', content: { 'application/json': { schema: ErrorSchema } } },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { before, limit } = c.req.valid('query');
      const live = await liveProfileId(sql, c.req.valid('param').id);
      const ids = await profileChain(sql, live);
      const bounds = boundsOf(before);
      const [events, messages, runs] = await Promise.all([
        timelineEvents(sql, live, bounds.event, limit),
        messagesOfProfiles(sql, ids, bounds.delivery, limit),
        runsOfProfiles(sql, ids, bounds.run, limit),
      ]);
      const sent = await deliveriesOfEvents(
        sql,
        events.map((e) => e.id),
      );
      const sorted = itemsOf(events, sent, messages, runs);
      const page = sorted.slice(0, limit);
      // More may follow when one kind filled its page, or the kinds together gave more than a page.
      const full = events.length === limit || messages.length === limit || runs.length === limit;
      const last = page.at(-1);
      const next = last && (full || sorted.length > limit) ? `${last.us}_${last.rank}_${last.id}` : null;
      return c.json({ data: page.map((s) => s.item), next }, 200);
    },
  );
  return app;
}

// Every item of the page's three reads, in timeline order.
function itemsOf(
  events: TimelineEvent[],
  sent: PersonDelivery[],
  messages: PersonDelivery[],
  runs: PersonRun[],
): Sorted[] {
  return [
    ...events.map((e) => ({
      us: BigInt(e.atUs),
      rank: RANK.event,
      id: e.id,
      item: {
        kind: 'event' as const,
        at: e.at.toISOString(),
        id: e.id,
        type: e.type,
        name: e.name,
        sourceId: e.sourceId,
        messageId: e.messageId,
        deliveries: sent.filter((d) => d.eventId === e.id).map(deliveryOf),
      },
    })),
    ...messages.map((d) => {
      const key = /^flow:([0-9a-f-]{36}):(.+):\d+$/.exec(d.idempotencyKey);
      return {
        us: BigInt(d.createdUs),
        rank: RANK.delivery,
        id: d.id,
        item: {
          kind: 'delivery' as const,
          at: d.createdAt.toISOString(),
          ...deliveryOf(d),
          flowRunId: key?.[1] ?? null,
          node: key?.[2] ?? null,
        },
      };
    }),
    ...runs.map((r) => ({
      us: BigInt(r.enteredUs),
      rank: RANK.run,
      id: r.id,
      item: {
        kind: 'run' as const,
        at: r.enteredAt.toISOString(),
        id: r.id,
        flowId: r.flowId,
        flowName: r.flowName,
        version: r.version,
        status: r.status,
        node: r.node,
        endedAt: iso(r.endedAt),
        reason: r.reason,
      },
    })),
  ].sort(compare);
}
