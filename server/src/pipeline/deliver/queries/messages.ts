import type { PendingQuery } from 'postgres';
import type { Tx } from '../../../db/index.ts';
import type { LedgerMessage } from './sending.ts';

// Flows' messages in the ledger: rows without an event, once per (destination, idempotency key).

/** One flow message's new ledger row. */
export interface NewMessageRow {
  destinationId: string;
  profileId: string;
  idempotencyKey: string;
  status: 'pending' | 'skipped';
  reason: string | null;
  /** The destination keeps each profile's items in order: the row waits behind unfinished ones. */
  ordered: boolean;
  message: LedgerMessage;
}

/** A flow message's row as inserted (`skipped` ones are not delivered). */
export interface InsertedMessage {
  id: string;
  destinationId: string;
  profileId: string;
  status: 'pending' | 'waiting' | 'skipped';
}

/**
 * Inserts flow messages' ledger rows once per (destination, idempotency key) — the key of the flow's
 * effect, the same when a step or this hand-off is replayed — and returns those inserted now that are
 * to be delivered. As for events (deliveriesInsert), a pending row of an ordered destination whose
 * profile has unfinished rows there is inserted `waiting`; the caller holds those lines' locks.
 */
export function messagesInsert(sql: Tx, rows: readonly NewMessageRow[]): PendingQuery<InsertedMessage[]> {
  const doc = JSON.stringify(
    rows.map((r) => ({
      d: r.destinationId,
      p: r.profileId,
      k: r.idempotencyKey,
      s: r.status,
      r: r.reason,
      o: r.ordered,
      m: r.message,
    })),
  );
  return sql<InsertedMessage[]>`
    INSERT INTO deliveries (destination_id, event_id, profile_id, idempotency_key, status, reason, message)
    SELECT d, NULL, p, k,
      CASE WHEN s = 'pending' AND o AND EXISTS (
          SELECT 1 FROM deliveries b
          WHERE b.destination_id = x.d AND b.profile_id = x.p AND b.status IN ('pending', 'retrying', 'waiting')
          OFFSET 0)
        THEN 'waiting' ELSE s END,
      r, m
    FROM json_to_recordset(${doc}::text::json) AS x (d text, p uuid, k text, s text, r text, o boolean, m jsonb)
    ON CONFLICT (destination_id, idempotency_key) WHERE event_id IS NULL DO NOTHING
    RETURNING id::text, destination_id AS "destinationId", profile_id AS "profileId", status`;
}
