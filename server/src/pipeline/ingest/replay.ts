import { type Issue, type JsonObject, validateEvent } from '@cairn/core';
import type { Sql } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { enrichEvent } from './enrich.ts';
import { getFailedEvent, markReplayed } from './queries.ts';
import type { EventWriter } from './writer.ts';

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a replay did. */
export type ReplayOutcome =
  | { status: 'stored' | 'duplicate'; messageId: string }
  | { status: 'invalid'; issue: Issue }
  | { status: 'not_found' | 'no_event' | 'no_source' };

/**
 * Sends a refused event through ingestion again: the stored event, or a corrected one the operator
 * supplies. It is validated and enriched as if received at its original time, and written by the
 * normal group commit. Without a messageId of its own it gets `failed-<id>`, so replaying twice
 * stores it once.
 *
 * @example
 * const outcome = await replayFailedEvent({ sql, writer, maxFutureSkewMs }, '42', { event: fixed });
 */
export async function replayFailedEvent(
  deps: {
    sql: Sql;
    writer: EventWriter;
    maxFutureSkewMs: number;
    pii: Pii;
    sourceExists(id: string): Promise<boolean>;
  },
  id: string,
  override: { event?: Record<string, unknown>; sourceId?: string },
): Promise<ReplayOutcome> {
  const row = await getFailedEvent(deps.sql, id);
  if (!row) return { status: 'not_found' };
  const sourceId = override.sourceId ?? row.sourceId;
  if (!sourceId || !(await deps.sourceExists(sourceId))) return { status: 'no_source' };
  // The stored event's sensitive fields are sealed (ingest seals them again on the way in).
  const stored = isObject(row.event) ? deps.pii.openPayload(row.event) : row.event;
  const original = override.event ?? stored;
  if (!original || typeof original !== 'object' || Array.isArray(original)) return { status: 'no_event' };
  const candidate = { messageId: `failed-${row.id}`, ...(original as Record<string, unknown>) };
  const v = validateEvent(candidate, '');
  if (!v.ok) return { status: 'invalid', issue: v.issue };
  const facts = {
    sourceId,
    receivedAt: row.receivedAt.getTime(),
    ip: undefined,
    batchSentAt: undefined,
    maxFutureSkewMs: deps.maxFutureSkewMs,
    pii: deps.pii,
  };
  const e = enrichEvent(v.event, facts, '');
  if (!e.ok) return { status: 'invalid', issue: e.issue };
  const written = await deps.writer.write([e.row]);
  await markReplayed(deps.sql, row.id, e.row.messageId);
  return { status: written.inserted ? 'stored' : 'duplicate', messageId: e.row.messageId };
}
