import type { DeliveredEvent, DeliveryItem, DeliveryMessage, DeliveryProfile } from '@cairn/plugin-api';
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { Pii } from '../../pii/index.ts';
import type { Inbox, RequestedMessage } from '../topics.ts';
import type { DestinationDirectory } from './directory.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { inOrder, isOrdered, lockQuery, MAX_ORDER_LOCKS, promoteIfReady } from './order.ts';
import { type InsertedMessage, messagesInsert, type NewMessageRow } from './queries/messages.ts';
import type { DeliveryRow } from './queries/sending.ts';
import { trackMessage } from './tracking.ts';

// Messages flows send (stage 4 hands them over as `messages.requested`): they enter the delivery ledger
// as rows without an event, and from there go exactly as events do — consent and unsubscribes checked at
// send time, retries, dead letters, replay, per-profile order.

/** The event name a flow's message carries for plugins that only read events. */
export const FLOW_MESSAGE_EVENT = 'Flow Message';

/**
 * Stage 5's consumer of the `messages` queue.
 *
 * @example
 * await startMessagesWorker(boss, sql, destinations);
 */
export async function startMessagesWorker(boss: PgBoss, sql: Sql, destinations: DestinationDirectory): Promise<void> {
  await boss.work<Inbox<'messages'>>(
    QUEUES.messages.name,
    {
      batchSize: 20,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 2,
      burstWhenBatchFull: true,
      localConcurrency: 2,
    },
    async function ledgerMessages(jobs) {
      await enqueueMessages(
        boss,
        sql,
        destinations,
        jobs.flatMap((j) => j.data.messages),
      );
    },
  );
}

/**
 * Writes flows' messages into the ledger with their jobs, in one transaction per chunk: once per
 * (destination, idempotency key), so a hand-off delivered twice, or a step replayed, sends nothing
 * twice. A message for a destination that is disabled or gone is kept as `skipped`, with the reason.
 * Returns how many rows will be delivered.
 *
 * @example
 * await enqueueMessages(boss, sql, destinations, messages);
 */
export async function enqueueMessages(
  boss: PgBoss,
  sql: Sql,
  destinations: DestinationDirectory,
  messages: readonly RequestedMessage[],
): Promise<number> {
  if (!messages.length) return 0;
  // A destination created on another server a moment ago may not be in this one's list yet.
  if (messages.some((m) => !destinations.get(m.destinationId))) await destinations.refresh();
  const rows: NewMessageRow[] = messages.map((m) => {
    const a = destinations.get(m.destinationId);
    return {
      destinationId: m.destinationId,
      profileId: m.profileId,
      idempotencyKey: m.key,
      status: a ? 'pending' : 'skipped',
      reason: a ? null : `destination ${m.destinationId} is disabled or deleted`,
      ordered: a ? isOrdered(a) : false,
      message: { sealed: m.sealed, flow: m.flow, source: m.sourceId, ...(m.employee ? { employee: m.employee } : {}) },
    };
  });
  let delivered = 0;
  for (let i = 0; i < rows.length; i += MAX_ORDER_LOCKS) {
    const chunk = rows.slice(i, i + MAX_ORDER_LOCKS);
    const inserted = (await sql.begin(async (tx) => {
      const [, result] = await inOrder(
        lockQuery(
          tx,
          chunk.filter((r) => r.ordered && r.status === 'pending'),
        ),
        messagesInsert(tx, chunk),
      );
      const ids = new Set(result.map((r) => r.destinationId));
      const active = destinations.active().filter((a) => ids.has(a.destination.id));
      await enqueueDeliveries(
        boss,
        tx,
        active,
        result.filter((r) => r.status === 'pending'),
      );
      return result;
    })) as InsertedMessage[];
    // A sender may have finished the rows these wait behind while the transaction ran (order.ts).
    for (const a of destinations.active()) {
      const waiting = inserted.filter((r) => r.status === 'waiting' && r.destinationId === a.destination.id);
      if (waiting.length)
        await promoteIfReady(
          boss,
          sql,
          a,
          waiting.map((r) => r.profileId),
        );
    }
    delivered += inserted.filter((r) => r.status !== 'skipped').length;
  }
  return delivered;
}

/**
 * What a plugin gets for a ledger row: its event, or for a flow's message the message (opened) and, for
 * plugins that only read events, a `Flow Message` track event carrying it. With `tracking` (email
 * destinations), a message to the person (not an employee's notice, not `track: false`) gets its links
 * rewritten to tracked redirects and an HTML form with the open pixel (tracking.ts).
 *
 * @example
 * const item = deliveryItem(row, pii, profile, 1, { publicUrl, secret });
 */
export function deliveryItem(
  row: DeliveryRow,
  pii: Pick<Pii, 'openPayload' | 'openBytes'>,
  profile: DeliveryProfile | null,
  attempt: number,
  tracking?: { publicUrl: string; secret: string },
): DeliveryItem {
  // An employee's notice shows the person only as its message does (masked per the employee's role).
  const base = { idempotencyKey: row.idempotencyKey, profile: row.message?.employee ? null : profile, attempt };
  // Plugins get clear values: an email plugin needs the address.
  if (!row.message) return { ...base, event: pii.openPayload(row.payload ?? {}) as DeliveredEvent };
  const text = JSON.parse(pii.openBytes(row.message.sealed).toString('utf8')) as {
    subject?: string;
    body: string;
    to?: DeliveryMessage['to'];
    track?: boolean;
  };
  const { flow } = row.message;
  const tracked =
    tracking && !text.to && text.track !== false ? trackMessage(text.body, { ...tracking, deliveryId: row.id }) : null;
  const message: DeliveryMessage = {
    ...(text.subject === undefined ? {} : { subject: text.subject }),
    body: tracked ? tracked.text : text.body,
    ...(tracked ? { html: tracked.html } : {}),
    flow: { id: flow.id, node: flow.node },
    ...(text.to ? { to: text.to } : {}),
  };
  const event: DeliveredEvent = {
    type: 'track',
    event: FLOW_MESSAGE_EVENT,
    messageId: row.idempotencyKey,
    timestamp: new Date(row.timestamp).toISOString(),
    ...(profile?.userId && !text.to ? { userId: profile.userId } : {}),
    properties: { flow, ...(text.subject === undefined ? {} : { subject: text.subject }), body: text.body },
  };
  return { ...base, event, message };
}
