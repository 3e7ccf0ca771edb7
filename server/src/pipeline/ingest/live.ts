import type { Tx } from '../../db/index.ts';

/** A stored event as the live view shows it. */
export interface LiveEvent {
  id: string;
  sourceId: string;
  messageId: string;
  type: string;
  event: string | null;
  profileId: string | null;
  receivedAt: Date;
  processedAt: Date | null;
  payload: unknown;
}

/** What the live view filters on. */
export interface LiveFilter {
  sourceId?: string;
  type?: string;
  event?: string;
  profileId?: string;
}

/** A refused event or payload as the live view shows it (the body itself is read through /api/failed-events). */
export interface LiveRefusal {
  id: string;
  sourceId: string | null;
  receivedAt: Date;
  status: number;
  code: string;
  reason: string;
}

const LIVE_COLUMNS = (sql: Tx) => sql`
  id::text, source_id AS "sourceId", message_id AS "messageId", type, event, profile_id AS "profileId",
  received_at AS "receivedAt", processed_at AS "processedAt", payload`;

function where(sql: Tx, f: LiveFilter) {
  return sql`
    ${f.sourceId ? sql`AND source_id = ${f.sourceId}` : sql``}
    ${f.type ? sql`AND type = ${f.type}` : sql``}
    ${f.event ? sql`AND event = ${f.event}` : sql``}
    ${f.profileId ? sql`AND profile_id = ${f.profileId}` : sql``}`;
}

/**
 * Events stored after `afterId` (ascending, through the primary key), or the newest `limit` when no
 * cursor is given (returned oldest first).
 *
 * @example
 * const rows = await liveEvents(sql, { type: 'track' }, '1041', 200);
 */
export async function liveEvents(sql: Tx, f: LiveFilter, afterId: string | null, limit: number): Promise<LiveEvent[]> {
  if (afterId === null) {
    const rows = await sql<LiveEvent[]>`
      SELECT ${LIVE_COLUMNS(sql)} FROM events WHERE true ${where(sql, f)} ORDER BY id DESC LIMIT ${limit}`;
    return rows.reverse();
  }
  return sql<LiveEvent[]>`
    SELECT ${LIVE_COLUMNS(sql)} FROM events WHERE id > ${afterId} ${where(sql, f)} ORDER BY id LIMIT ${limit}`;
}

/**
 * The highest event and refusal ids now stored: where a live view with no backlog starts.
 *
 * @example
 * const { event, refused } = await liveHeads(sql);
 */
export async function liveHeads(sql: Tx): Promise<{ event: string; refused: string }> {
  const [row] = await sql<{ event: string; refused: string }[]>`
    SELECT coalesce((SELECT max(id) FROM events), 0)::text AS event,
      coalesce((SELECT max(id) FROM failed_events), 0)::text AS refused`;
  return row!;
}

/**
 * Refusals recorded after `afterId` (ascending), or the newest `limit` (oldest first).
 *
 * @example
 * const rows = await liveRefusals(sql, { sourceId: 'src_1' }, '12', 100);
 */
export async function liveRefusals(
  sql: Tx,
  f: Pick<LiveFilter, 'sourceId'>,
  afterId: string | null,
  limit: number,
): Promise<LiveRefusal[]> {
  const source = f.sourceId ? sql`AND source_id = ${f.sourceId}` : sql``;
  const cols = sql`id::text, source_id AS "sourceId", received_at AS "receivedAt", status, code, reason`;
  if (afterId === null) {
    const rows = await sql<LiveRefusal[]>`
      SELECT ${cols} FROM failed_events WHERE true ${source} ORDER BY id DESC LIMIT ${limit}`;
    return rows.reverse();
  }
  return sql<LiveRefusal[]>`
    SELECT ${cols} FROM failed_events WHERE id > ${afterId} ${source} ORDER BY id LIMIT ${limit}`;
}

/**
 * One stored event by id.
 *
 * @example
 * const e = await getEvent(sql, '1041');
 */
export async function getEvent(sql: Tx, id: string): Promise<LiveEvent | undefined> {
  if (!/^\d{1,18}$/.test(id)) return undefined;
  const [row] = await sql<LiveEvent[]>`SELECT ${LIVE_COLUMNS(sql)} FROM events WHERE id = ${id}`;
  return row;
}
