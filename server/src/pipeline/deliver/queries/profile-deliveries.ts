import type { Tx } from '../../../db/index.ts';
import { type DeliveryStatus, WAITING_REASON } from '../ledger.ts';

// A person's deliveries as the console's timeline shows them: those of their events (found by event,
// through the ledger's unique (event_id, destination_id) key) and the messages flows sent them (rows
// without an event, through deliveries_message_profile_idx).

/** A ledger row as a timeline shows it. */
export interface PersonDelivery {
  id: string;
  destinationId: string;
  eventId: string | null;
  status: DeliveryStatus;
  reason: string | null;
  attempts: number;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
  /** `createdAt` in microseconds since the epoch (a cursor's instant). */
  createdUs: string;
  /** A flow message's effect key (`flow:<run>:<node>:<iteration>`); for an event, its idempotency key. */
  idempotencyKey: string;
}

const COLUMNS = (sql: Tx) => sql`
  d.id::text, d.destination_id AS "destinationId", d.event_id::text AS "eventId", d.status,
  CASE WHEN d.status = 'waiting' THEN ${WAITING_REASON} ELSE d.reason END AS reason,
  d.attempts, d.last_error AS "lastError", d.delivered_at AS "deliveredAt", d.created_at AS "createdAt",
  (extract(epoch FROM d.created_at) * 1000000)::bigint::text AS "createdUs", d.idempotency_key AS "idempotencyKey"`;

/**
 * Every delivery of these events, to any destination, by event then destination.
 *
 * @example
 * const rows = await deliveriesOfEvents(sql, ['1041', '1042']);
 */
export function deliveriesOfEvents(sql: Tx, eventIds: readonly string[]): Promise<PersonDelivery[]> {
  if (!eventIds.length) return Promise.resolve([]);
  return sql<PersonDelivery[]>`
    SELECT ${COLUMNS(sql)}
    FROM deliveries d
    WHERE d.event_id = ANY(${eventIds as string[]}::bigint[])
    ORDER BY d.event_id, d.destination_id`;
}

/**
 * The newest messages flows sent these profiles (ledger rows without an event) created before
 * `before` (`us`: microseconds since the epoch; `id` given: at that instant with a lower id too;
 * `inclusive`: at that instant too),
 * newest first, at most `limit`.
 *
 * @example
 * const messages = await messagesOfProfiles(sql, [profileId], undefined, 50);
 */
export function messagesOfProfiles(
  sql: Tx,
  profileIds: readonly string[],
  before: { us: string; id?: string; inclusive?: boolean } | undefined,
  limit: number,
): Promise<PersonDelivery[]> {
  const t = before && sql`(timestamptz 'epoch' + ${before.us}::bigint * interval '1 microsecond')`;
  const bound = !before
    ? sql``
    : before.id !== undefined
      ? sql`AND (d.created_at, d.id) < (${t!}, ${before.id}::bigint)`
      : before.inclusive
        ? sql`AND d.created_at <= ${t!}`
        : sql`AND d.created_at < ${t!}`;
  return sql<PersonDelivery[]>`
    SELECT ${COLUMNS(sql)}
    FROM deliveries d
    WHERE d.event_id IS NULL
      AND d.profile_id = ANY(${profileIds as string[]}::uuid[])
      ${bound}
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT ${limit}`;
}
