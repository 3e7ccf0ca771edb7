import type { Tx } from '../../db/index.ts';

// The ledger as the admin API reads and replays it (GET /api/destinations/:id/deliveries, the counts
// per status, POST /api/destinations/:id/replay).

/** Every status a ledger row can have. */
export const DELIVERY_STATUSES = ['pending', 'waiting', 'retrying', 'delivered', 'dead', 'skipped'] as const;

/** A ledger row's status. */
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** What the ledger says about a `waiting` row. */
export const WAITING_REASON = 'behind an earlier event of this profile';

/** A ledger row as the API lists it. */
export interface LedgerEntry {
  id: string;
  /** Null for a flow's message. */
  eventId: string | null;
  messageId: string | null;
  profileId: string | null;
  idempotencyKey: string;
  status: DeliveryStatus;
  reason: string | null;
  attempts: number;
  /** The receiver's status code on the last failed attempt (HTTP status, SMTP reply code). */
  lastStatus: number | null;
  /** The last failed attempt's message with an excerpt of the receiver's answer (at most 1 KB). */
  lastError: string | null;
  firstAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

/** A page of the ledger, newest first. */
export async function listDeliveries(
  sql: Tx,
  destination: string,
  q: { status?: string; before?: string; limit: number },
): Promise<LedgerEntry[]> {
  return sql<LedgerEntry[]>`
    SELECT d.id::text, d.event_id::text AS "eventId", e.message_id AS "messageId", d.profile_id AS "profileId",
      d.idempotency_key AS "idempotencyKey", d.status,
      CASE WHEN d.status = 'waiting' THEN ${WAITING_REASON} ELSE d.reason END AS reason,
      d.attempts, d.last_status AS "lastStatus", d.last_error AS "lastError",
      d.first_attempt_at AS "firstAttemptAt", d.last_attempt_at AS "lastAttemptAt", d.delivered_at AS "deliveredAt",
      d.created_at AS "createdAt"
    FROM deliveries d LEFT JOIN events e ON e.id = d.event_id
    WHERE d.destination_id = ${destination}
      ${q.status ? sql`AND d.status = ${q.status}` : sql``}
      ${q.before ? sql`AND d.id < ${q.before}` : sql``}
    ORDER BY d.id DESC
    LIMIT ${q.limit}`;
}

/** Counts per status (every status, zeros included), for the destination's overview. */
export async function deliveryCounts(sql: Tx, destination: string): Promise<Record<DeliveryStatus, number>> {
  const rows = await sql<{ status: DeliveryStatus; n: number }[]>`
    SELECT status, count(*)::int AS n FROM deliveries WHERE destination_id = ${destination} GROUP BY status`;
  const counts = Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, 0])) as Record<DeliveryStatus, number>;
  for (const r of rows) counts[r.status] = r.n;
  return counts;
}

/**
 * Puts dead letters (or every finished delivery of events in a time range) back to be sent, with a
 * fresh retry window: `waiting` for an ordered destination (the caller then promotes each profile's
 * rows in ledger order, see order.ts), `pending` otherwise. Returns the rows.
 */
export async function resetForReplay(
  sql: Tx,
  destination: string,
  q: { status: 'dead' } | { from: Date; to: Date },
  ordered: boolean,
): Promise<{ id: string; profileId: string | null; status: 'pending' | 'waiting' }[]> {
  const status = sql`CASE WHEN ${ordered}::boolean AND d.profile_id IS NOT NULL THEN 'waiting' ELSE 'pending' END`;
  // Dead letters need no event: flows' messages (rows without one) are replayed with them.
  if ('status' in q)
    return sql`
      UPDATE deliveries d SET status = ${status}, reason = 'replayed', first_attempt_at = NULL, updated_at = now()
      WHERE d.destination_id = ${destination} AND d.status = 'dead'
      RETURNING d.id::text, d.profile_id AS "profileId", d.status`;
  return sql`
    UPDATE deliveries d SET status = ${status}, reason = 'replayed', first_attempt_at = NULL, updated_at = now()
    FROM events e
    WHERE d.destination_id = ${destination} AND e.id = d.event_id
      AND e.timestamp >= ${q.from} AND e.timestamp < ${q.to} AND d.status IN ('delivered', 'dead', 'skipped')
    RETURNING d.id::text, d.profile_id AS "profileId", d.status`;
}

/**
 * Every delivery of one event, to any destination (the live view's "where did it go").
 *
 * @example
 * const rows = await deliveriesOfEvent(sql, '1041');
 */
export async function deliveriesOfEvent(
  sql: Tx,
  eventId: string,
): Promise<(LedgerEntry & { destinationId: string })[]> {
  return sql<(LedgerEntry & { destinationId: string })[]>`
    SELECT d.id::text, d.destination_id AS "destinationId", d.event_id::text AS "eventId", NULL AS "messageId",
      d.profile_id AS "profileId", d.idempotency_key AS "idempotencyKey", d.status,
      CASE WHEN d.status = 'waiting' THEN ${WAITING_REASON} ELSE d.reason END AS reason,
      d.attempts, d.last_status AS "lastStatus", d.last_error AS "lastError",
      d.first_attempt_at AS "firstAttemptAt", d.last_attempt_at AS "lastAttemptAt", d.delivered_at AS "deliveredAt",
      d.created_at AS "createdAt"
    FROM deliveries d
    WHERE d.event_id = ${eventId}
    ORDER BY d.id`;
}
