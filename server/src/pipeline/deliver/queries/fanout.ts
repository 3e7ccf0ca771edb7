import type { PendingQuery } from 'postgres';
import type { Tx } from '../../../db/index.ts';

// Fan-out: the events it reads and the ledger rows it inserts.

/** An event as fan-out and delivery need it. */
export interface EventForDelivery {
  id: string;
  sourceId: string;
  messageId: string;
  type: string;
  profileId: string | null;
  timestamp: Date;
  payload: Record<string, unknown>;
}

/**
 * Processed events by id (events erased or suppressed meanwhile are simply absent, and so are imported
 * events whose import did not ask for delivery). Without `full`
 * the payload holds only what type and name filters read (type, event, name): the whole payload is
 * read only when a destination filters on its contents.
 */
export async function eventsForFanout(sql: Tx, ids: readonly string[], full = true): Promise<EventForDelivery[]> {
  return sql<EventForDelivery[]>`
    SELECT id, source_id AS "sourceId", message_id AS "messageId", type, profile_id AS "profileId", timestamp,
      ${
        full
          ? sql`payload`
          : sql`jsonb_build_object('type', type, 'event', payload->'event', 'name', payload->'name') AS payload`
      }
    FROM events
    WHERE id = ANY(${ids}::bigint[]) AND processed_at IS NOT NULL
      -- An imported event (migration 0033) is delivered only when its import asked for it.
      AND (import_id IS NULL OR EXISTS (SELECT 1 FROM imports i WHERE i.id = events.import_id AND i.deliver))
    ORDER BY timestamp, id`;
}

/** One new ledger row. */
export interface NewDelivery {
  destinationId: string;
  eventId: string;
  profileId: string | null;
  idempotencyKey: string;
  status: 'pending' | 'skipped';
  reason: string | null;
  /** The destination keeps each profile's events in order: the row waits behind unfinished ones. */
  ordered: boolean;
}

/** A ledger row fan-out inserted, to be delivered. */
export interface InsertedDelivery {
  id: string;
  destinationId: string;
  eventId: string;
  profileId: string | null;
  status: 'pending' | 'waiting';
}

/**
 * Inserts ledger rows once per (destination, event); returns those actually inserted that are to be
 * delivered. A pending row of an ordered destination whose profile already has unfinished rows there
 * is inserted `waiting` (the caller holds those profiles' line locks, see order.ts).
 */
export async function insertDeliveries(sql: Tx, rows: readonly NewDelivery[]): Promise<InsertedDelivery[]> {
  return rows.length ? insertedOf(await deliveriesInsert(sql, rows)) : [];
}

/** The rows insertDeliveries returns, from its statement's. */
export function insertedOf(rows: readonly (InsertedDelivery | { status: 'skipped' })[]): InsertedDelivery[] {
  return rows.filter((x): x is InsertedDelivery => x.status !== 'skipped');
}

/** The statement of insertDeliveries, not sent yet (for a caller that sends several at once). */
export function deliveriesInsert(
  sql: Tx,
  rows: readonly NewDelivery[],
): PendingQuery<(InsertedDelivery | { status: 'skipped' })[]> {
  const doc = JSON.stringify(
    rows.map((r) => ({
      d: r.destinationId,
      e: r.eventId,
      p: r.profileId,
      k: r.idempotencyKey,
      s: r.status,
      r: r.reason,
      o: r.ordered,
    })),
  );
  // EXISTS reads the ledger as it was before this statement: rows of one profile inserted together
  // are all pending (one job holds them, in order), or all waiting. OFFSET 0 keeps it one probe of
  // deliveries_unfinished_idx per row; without it a generic plan hashed every unfinished row of the
  // ledger on each insert.
  return sql<(InsertedDelivery | { status: 'skipped' })[]>`
    INSERT INTO deliveries (destination_id, event_id, profile_id, idempotency_key, status, reason)
    SELECT d, e, p, k,
      CASE WHEN s = 'pending' AND o AND EXISTS (
          SELECT 1 FROM deliveries b
          WHERE b.destination_id = x.d AND b.profile_id = x.p AND b.status IN ('pending', 'retrying', 'waiting')
          OFFSET 0)
        THEN 'waiting' ELSE s END,
      r
    FROM json_to_recordset(${doc}::text::json) AS x (d text, e bigint, p uuid, k text, s text, r text, o boolean)
    ON CONFLICT (event_id, destination_id) DO NOTHING
    RETURNING id::text, destination_id AS "destinationId", event_id::text AS "eventId", profile_id AS "profileId",
      status`;
}
