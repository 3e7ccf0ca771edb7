import type { Tx } from '../../db/index.ts';
import type { EventMapping } from './import-events-rows.ts';

// The imports table as an events import uses it (migrations 0029 and 0033): the row, its progress, its
// bad rows. The API's view of an import (either kind) is stage 2's getImport plus importKindOf.

/** What an events import adds to the view of an import. */
export interface ImportKind {
  kind: 'profiles' | 'events';
  triggerFlows: boolean;
  deliver: boolean;
  eventsStored: number;
}

/**
 * Records a new events import; returns its id.
 *
 * @example
 * const id = await insertEventImport(sql, { format: 'ndjson', mapping: null, dryRun: false, rowsExpected: null, actor, triggerFlows: false, deliver: false });
 */
export async function insertEventImport(
  tx: Tx,
  i: {
    format: 'csv' | 'ndjson';
    mapping: EventMapping | null;
    dryRun: boolean;
    rowsExpected: number | null;
    actor: string;
    triggerFlows: boolean;
    deliver: boolean;
  },
): Promise<string> {
  const [row] = await tx<{ id: string }[]>`
    INSERT INTO imports (kind, format, mapping, dry_run, rows_expected, actor, trigger_flows, deliver)
    VALUES ('events', ${i.format}, ${JSON.stringify(i.mapping ?? {})}::text::jsonb, ${i.dryRun}, ${i.rowsExpected},
      ${i.actor}, ${i.triggerFlows}, ${i.deliver})
    RETURNING id::text`;
  return row!.id;
}

/**
 * The kind of an import and its events options, or undefined.
 *
 * @example
 * const k = await importKindOf(sql, '7'); // { kind: 'events', triggerFlows: false, deliver: false, eventsStored: 9900 }
 */
export async function importKindOf(tx: Tx, id: string): Promise<ImportKind | undefined> {
  if (!/^\d{1,18}$/.test(id)) return undefined;
  const [row] = await tx<ImportKind[]>`
    SELECT kind, trigger_flows AS "triggerFlows", deliver, events_stored AS "eventsStored"
    FROM imports
    WHERE id = ${id}`;
  return row;
}

/** Counters one committed chunk of events adds. */
export interface EventChunkProgress {
  lastLine: number;
  rows: number;
  bad: number;
  stored: number;
  duplicates: number;
}

/**
 * Records a chunk's bad rows (a line once, also when a resumed import meets it again), adds its counts
 * and moves the committed line, in the chunk's transaction.
 *
 * @example
 * await recordEventChunk(tx, '7', [{ line: 12, reason: 'timestamp: not an ISO-8601 date' }], { lastLine: 2001, rows: 2000, bad: 1, stored: 1999, duplicates: 0 });
 */
export async function recordEventChunk(
  tx: Tx,
  id: string,
  errors: readonly { line: number; reason: string }[],
  p: Omit<EventChunkProgress, 'bad'>,
): Promise<void> {
  const doc = JSON.stringify(errors.map((e) => ({ l: e.line, r: e.reason })));
  // The bad rows first: only those newly recorded are counted (a resumed chunk may repeat some).
  await tx`
    WITH bad AS (
      INSERT INTO import_errors (import_id, line, reason)
      SELECT ${id}, l, r FROM json_to_recordset(${doc}::text::json) AS x (l integer, r text)
      ON CONFLICT DO NOTHING
      RETURNING line
    )
    UPDATE imports
    SET last_line = greatest(last_line, ${p.lastLine}),
      rows_done = rows_done + ${p.rows},
      rows_bad = rows_bad + (SELECT count(*) FROM bad),
      rows_unchanged = rows_unchanged + ${p.duplicates},
      events_stored = events_stored + ${p.stored},
      updated_at = clock_timestamp()
    WHERE id = ${id}`;
}

/**
 * Marks events as brought by an import (stage 4 and fan-out read the mark, see migration 0033).
 *
 * @example
 * await markImported(tx, '7', ['101', '102']);
 */
export async function markImported(tx: Tx, id: string, eventIds: readonly string[]): Promise<void> {
  if (!eventIds.length) return;
  await tx`UPDATE events SET import_id = ${id} WHERE id = ANY(${eventIds as string[]}::bigint[])`;
}

/**
 * Ends an events import.
 *
 * @example
 * await endEventImport(sql, '7', 'done', null);
 */
export async function endEventImport(
  tx: Tx,
  id: string,
  status: 'done' | 'interrupted',
  error: string | null,
): Promise<void> {
  await tx`
    UPDATE imports
    SET status = ${status}, error = ${error}, updated_at = clock_timestamp(),
      finished_at = ${status === 'done' ? tx`clock_timestamp()` : tx`NULL`}
    WHERE id = ${id}`;
}
