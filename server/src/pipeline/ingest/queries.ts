import type { Tx } from '../../db/index.ts';
import type { ReadSql } from '../../db/replica.ts';
import { handOffInStatement } from '../../jobs/handoff.ts';
import type { EventRow } from './enrich.ts';

/** A stored event's key and id, as the insert returns it. */
export interface InsertedEvent {
  id: string;
  sourceId: string;
  messageId: string;
}

// The group travels as one JSON document: postgres.js escapes every element of a text[] parameter with a
// regex (about 9% of server time in bench:ingest), while payloads are already JSON text and are spliced
// into the document as they are.
function eventsDocument(rows: readonly EventRow[]): string {
  const q = JSON.stringify;
  let doc = '[';
  for (const [i, r] of rows.entries()) {
    doc += `${i ? ',' : ''}{"s":${q(r.sourceId)},"m":${q(r.messageId)},"t":${q(r.type)},"e":${q(r.event)},"u":${q(r.userId)},"a":${q(r.anonymousId)},"ts":${q(r.timestamp)},"r":${q(r.receivedAt)},"p":${r.payload}}`;
  }
  return `${doc}]`;
}

// The INSERT both writers share. ::text first: a parameter typed json would be JSON-encoded again by the driver.
function insertStatement(sql: Tx, rows: readonly EventRow[]) {
  return sql<InsertedEvent[]>`
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload)
    SELECT s, m, t, e, u, a, ts, r, p
    FROM json_to_recordset(${eventsDocument(rows)}::text::json)
      AS x (s text, m text, t text, e text, u text, a text, ts timestamptz, r timestamptz, p jsonb)
    -- A (source_id, message_id) already stored is refused by the events_dedup trigger (migration 0034).
    RETURNING id, source_id AS "sourceId", message_id AS "messageId"`;
}

/**
 * Inserts a group of events in one statement, skipping (source, messageId) pairs already stored, and
 * returns the rows actually inserted.
 *
 * @example
 * const inserted = await insertEvents(tx, rows);
 */
export async function insertEvents(sql: Tx, rows: readonly EventRow[]): Promise<InsertedEvent[]> {
  return insertStatement(sql, rows);
}

/**
 * Inserts a group of events and hands the inserted ones over as `events.stored`, in ONE statement (atomic
 * without BEGIN and COMMIT, so a group commit is one round trip instead of four); returns the rows
 * actually inserted. Nothing inserted (all duplicates), no job.
 *
 * @example
 * const inserted = await insertEventsHandingOff(sql, rows);
 */
export async function insertEventsHandingOff(sql: Tx, rows: readonly EventRow[]): Promise<InsertedEvent[]> {
  const handOff = handOffInStatement(sql, 'events.stored', 'stored');
  return sql<InsertedEvent[]>`
    WITH stored AS (${insertStatement(sql, rows)}),
    ${handOff.ctes}
    SELECT id, "sourceId", "messageId"
    FROM stored
    WHERE ${handOff.settled}`;
}

/** One refused event or payload, as recorded in failed_events. */
export interface FailedEventRow {
  sourceId: string | null;
  status: number;
  code: string;
  reason: string;
  /** The refused event as JSON text, when it can be stored as jsonb. */
  event: string | null;
  raw: Uint8Array | null;
  rawBytes: number | null;
  request: string;
}

/**
 * Records refusals, many in one statement.
 *
 * @example
 * await insertFailedEvents(sql, [{ sourceId: null, status: 401, code: 'unknown_write_key', ... }]);
 */
export async function insertFailedEvents(sql: Tx, rows: readonly FailedEventRow[]): Promise<void> {
  const col = <K extends keyof FailedEventRow>(k: K) => rows.map((r) => r[k]);
  // Raw bodies travel as base64 text: postgres.js cannot send a bytea[] parameter.
  await sql`
    INSERT INTO failed_events (source_id, status, code, reason, event, raw, raw_bytes, request)
    SELECT source_id, status, code, reason, event::jsonb, decode(raw, 'base64'), raw_bytes, request::jsonb
    FROM unnest(
      ${col('sourceId')}::text[],
      ${col('status')}::int[],
      ${col('code')}::text[],
      ${col('reason')}::text[],
      ${col('event')}::text[],
      ${rows.map((r) => (r.raw ? Buffer.from(r.raw).toString('base64') : null))}::text[],
      ${col('rawBytes')}::int[],
      ${col('request')}::text[]
    ) AS f (source_id, status, code, reason, event, raw, raw_bytes, request)`;
}

/** A failed_events row as the admin API lists it. */
export interface FailedEventView {
  id: string;
  sourceId: string | null;
  receivedAt: Date;
  status: number;
  code: string;
  reason: string;
  event: unknown;
  raw: Buffer | null;
  rawBytes: number | null;
  request: unknown;
  replayedAt: Date | null;
  replayedMessageId: string | null;
}

/**
 * Lists refusals newest first, keyset-paged by id.
 *
 * @example
 * const page = await listFailedEvents(sql, { limit: 50 });
 */
export async function listFailedEvents(
  sql: Tx,
  filter: { sourceId?: string; code?: string; replayed?: boolean; before?: string; limit: number },
): Promise<FailedEventView[]> {
  return sql<FailedEventView[]>`
    SELECT
      id,
      source_id AS "sourceId",
      received_at AS "receivedAt",
      status,
      code,
      reason,
      event,
      raw,
      raw_bytes AS "rawBytes",
      request,
      replayed_at AS "replayedAt",
      replayed_message_id AS "replayedMessageId"
    FROM failed_events
    WHERE true
      ${filter.sourceId ? sql`AND source_id = ${filter.sourceId}` : sql``}
      ${filter.replayed === undefined ? sql`` : filter.replayed ? sql`AND replayed_at IS NOT NULL` : sql`AND replayed_at IS NULL`}
      ${filter.code ? sql`AND code = ${filter.code}` : sql``}
      ${filter.before ? sql`AND id < ${filter.before}` : sql``}
    ORDER BY id DESC
    LIMIT ${filter.limit}`;
}

/** A stored event as the admin API lists it. */
export interface StoredEventView {
  id: string;
  sourceId: string;
  messageId: string;
  type: string;
  receivedAt: Date;
  processedAt: Date | null;
  payload: unknown;
}

/**
 * Lists stored events newest first (the live event view), keyset-paged by id.
 *
 * @example
 * const page = await listEvents(sql, { sourceId: 'src_demo', limit: 50 });
 */
export async function listEvents(
  sql: ReadSql,
  filter: { sourceId?: string; type?: string; messageId?: string; before?: string; limit: number },
): Promise<StoredEventView[]> {
  return sql<StoredEventView[]>`
    SELECT
      id,
      source_id AS "sourceId",
      message_id AS "messageId",
      type,
      received_at AS "receivedAt",
      processed_at AS "processedAt",
      payload
    FROM events
    WHERE true
      ${filter.sourceId ? sql`AND source_id = ${filter.sourceId}` : sql``}
      ${filter.type ? sql`AND type = ${filter.type}` : sql``}
      ${filter.messageId ? sql`AND message_id = ${filter.messageId}` : sql``}
      ${filter.before ? sql`AND id < ${filter.before}` : sql``}
    ORDER BY id DESC
    LIMIT ${filter.limit}`;
}

/**
 * One refused event, for replay.
 *
 * @example
 * const row = await getFailedEvent(sql, '42');
 */
export async function getFailedEvent(
  sql: Tx,
  id: string,
): Promise<{ id: string; sourceId: string | null; receivedAt: Date; event: unknown } | undefined> {
  if (!/^\d{1,18}$/.test(id)) return undefined;
  const [row] = await sql<{ id: string; sourceId: string | null; receivedAt: Date; event: unknown }[]>`
    SELECT id, source_id AS "sourceId", received_at AS "receivedAt", event
    FROM failed_events
    WHERE id = ${id}`;
  return row;
}

/**
 * Records that a refused event was replayed, and under which messageId.
 *
 * @example
 * await markReplayed(sql, '42', 'failed-42');
 */
export async function markReplayed(sql: Tx, id: string, messageId: string): Promise<void> {
  await sql`
    UPDATE failed_events
    SET replayed_at = now(), replayed_message_id = ${messageId}
    WHERE id = ${id}`;
}
