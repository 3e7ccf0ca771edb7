import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ReadableStream as WebStream } from 'node:stream/web';
import type { JsonObject } from '@cairn/core';
import { parse } from 'csv-parse';
import type { Sql, Transaction } from '../../db/index.ts';
import { retryTransaction } from '../../infra/transaction.ts';
import { type HandOff, handOffIds } from '../../jobs/handoff.ts';
import type { EventRow } from './enrich.ts';
import { endEventImport, markImported, recordEventChunk } from './import-events-queries.ts';
import {
  csvEvent,
  type EventMapping,
  headerMapping,
  IMPORT_SOURCE,
  type ImportedEventFacts,
  importedEventRow,
} from './import-events-rows.ts';
import { insertEvents } from './queries.ts';

// A historical events import: the file is read as it arrives (never whole), each row validated as the
// tracking API validates events (plus: the original timestamp is required), and every chunk stored in
// one transaction by stage 1's own insert (insertEvents) under the `import` source, marked with the
// import's id (events.import_id) and handed to stage 2 (`events.stored`) exactly as ingest hands
// events over: identities, traits by event time, computed traits and audiences follow. Stage 4 and
// fan-out skip marked events unless the import asked for them (trigger_flows, deliver).

/** Rows per transaction: a crash repeats at most this many. */
export const EVENT_IMPORT_CHUNK = 2000;

/** What {@link runEventImport} needs besides the data. */
export interface RunEventImportOptions {
  importId: string;
  format: 'csv' | 'ndjson';
  /** CSV only: column -> place in the event; null: the header names the places. */
  mapping: EventMapping | null;
  dryRun: boolean;
  /** Lines up to this one are committed already (a resumed import): read, not written again. */
  skipThrough: number;
  handOff: HandOff;
  facts: Omit<ImportedEventFacts, 'receivedAt' | 'sourceId'>;
  clock: () => Date;
  chunkSize?: number;
}

interface Record_ {
  line: number;
  event?: JsonObject;
  reason?: string;
}

// CSV through csv-parse's streaming parser, as the profile import reads it; a malformed record is
// reported by line and the rest of the file goes on.
async function* csvEvents(input: Readable, mapping: EventMapping | null): AsyncGenerator<Record_> {
  const skipped: Record_[] = [];
  let columns: EventMapping | string | null = mapping;
  const parser = input.pipe(
    parse({
      columns: (header: string[]) => {
        const missing = Object.keys(mapping ?? {}).find((c) => !header.includes(c));
        columns = missing ? `map: column ${missing} is not in the header` : (mapping ?? headerMapping(header));
        return header;
      },
      bom: true,
      trim: true,
      info: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
    }),
  );
  parser.on('skip', (err: Error & { lines?: number }) =>
    skipped.push({
      line: err.lines ?? 0,
      reason: `malformed CSV: ${err.message.replace(/^Invalid Record Length: /, '')}`,
    }),
  );
  input.on('error', (err) => parser.destroy(err));
  for await (const { record, info } of parser as AsyncIterable<{
    record: Record<string, unknown>;
    info: { lines: number };
  }>) {
    while (skipped.length) yield skipped.shift()!;
    // A header naming no place in an event: the import stops here (nothing of it was written).
    if (typeof columns === 'string') throw new ImportRefused(columns);
    const e = csvEvent(record, columns!);
    yield typeof e === 'string' ? { line: info.lines, reason: e } : { line: info.lines, event: e };
  }
  while (skipped.length) yield skipped.shift()!;
}

async function* ndjsonEvents(input: Readable): AsyncGenerator<Record_> {
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    line++;
    if (!text.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      yield { line, reason: 'not valid JSON' };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      yield { line, reason: 'not a JSON object' };
    else yield { line, event: value as JsonObject };
  }
}

/** The file cannot be imported at all (its CSV header names no place in an event). */
export class ImportRefused extends Error {}

class DryRun extends Error {
  constructor(readonly stored: number) {
    super('dry run: rolled back');
  }
}

/**
 * Imports historical events from a CSV or NDJSON stream in transactions of {@link EVENT_IMPORT_CHUNK}
 * rows; each commit records the last line it covered, so the same file sent again to the same import
 * skips what is done. A dry run stores each chunk and rolls it back: its counts are what the import
 * would store. Resolves when the file is done; the pipeline then works on the events as on any.
 *
 * @example
 * await runEventImport(sql, Readable.from(file), { importId, format: 'ndjson', mapping: null, dryRun: false, skipThrough: 0, handOff, facts, clock });
 */
export async function runEventImport(
  sql: Sql,
  input: Readable | ReadableStream<Uint8Array>,
  opts: RunEventImportOptions,
): Promise<void> {
  const stream = input instanceof Readable ? input : Readable.fromWeb(input as WebStream<Uint8Array>);
  const records = opts.format === 'csv' ? csvEvents(stream, opts.mapping) : ndjsonEvents(stream);
  const size = opts.chunkSize ?? EVENT_IMPORT_CHUNK;
  let rows: (EventRow & { line: number })[] = [];
  let errors: { line: number; reason: string }[] = [];
  let lastLine = opts.skipThrough;
  // One chunk is written while the next is read and validated; chunks still commit one after the
  // other, in file order (a resumed import relies on last_line only moving forward).
  let writing: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (!rows.length && !errors.length) return;
    const chunk = { rows, errors, lastLine };
    rows = [];
    errors = [];
    await writing;
    writing = writeChunk(sql, chunk, opts);
    // Awaited at the next flush or at the end; until then a failure must not count as unhandled.
    writing.catch(() => {});
  };
  try {
    for await (const r of records) {
      if (r.line > lastLine) lastLine = r.line;
      if (r.line <= opts.skipThrough) continue;
      if (!r.event) errors.push({ line: r.line, reason: r.reason ?? 'unreadable' });
      else {
        const facts = { ...opts.facts, sourceId: IMPORT_SOURCE, receivedAt: opts.clock().getTime() };
        const out = importedEventRow(r.event, facts);
        if (out.ok) rows.push({ ...out.row, line: r.line });
        else errors.push({ line: r.line, reason: out.reason });
      }
      if (rows.length + errors.length >= size) await flush();
    }
    await flush();
    await writing;
    await endEventImport(sql, opts.importId, 'done', null);
  } catch (err) {
    // A chunk in flight finishes (or fails) before the import is marked: its commit stays counted.
    await writing.catch(() => {});
    await endEventImport(sql, opts.importId, 'interrupted', err instanceof Error ? err.message : String(err));
    throw err;
  }
}

async function writeChunk(
  sql: Sql,
  chunk: { rows: readonly EventRow[]; errors: readonly { line: number; reason: string }[]; lastLine: number },
  opts: RunEventImportOptions,
): Promise<void> {
  const progress = (stored: number) => ({
    lastLine: chunk.lastLine,
    rows: chunk.rows.length + chunk.errors.length,
    stored,
    duplicates: chunk.rows.length - stored,
  });
  try {
    await retryTransaction(sql, async (tx: Transaction) => {
      // Stage 1's insert: (source, messageId) already stored -> skipped, so a second import stores nothing.
      const inserted = chunk.rows.length ? await insertEvents(tx, chunk.rows) : [];
      if (opts.dryRun) throw new DryRun(inserted.length);
      const ids = inserted.map((r) => r.id);
      await markImported(tx, opts.importId, ids);
      await handOffIds(opts.handOff, tx, 'events.stored', ids);
      await recordEventChunk(tx, opts.importId, chunk.errors, progress(ids.length));
    });
  } catch (err) {
    if (!(err instanceof DryRun)) throw err;
    // Rolled back; what would have been stored is reported.
    await sql.begin((tx) => recordEventChunk(tx, opts.importId, chunk.errors, progress(err.stored)));
  }
}
