import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { Sql } from '../../db/index.ts';
import { retryTransaction } from '../../infra/transaction.ts';
import { createTurn, inTurn, type Turn } from './import-order.ts';
import { finishImport, getImport, type ImportView, insertImportErrors, recordProgress } from './import-queries.ts';
import { type ImportedRow, type ImportMapping, rowToEvent } from './import-rows.ts';
import { type ChunkResult, type ImportContext, lockChunk, writeChunk, writeLocked } from './import-write.ts';

export type { ImportContext } from './import-write.ts';

/** Rows per transaction: a crash repeats at most this many; large enough for set-based writes to pay. */
export const IMPORT_CHUNK = 2000;
/**
 * Identities per transaction (each is an advisory lock held to the commit): Postgres's lock table is
 * shared by every session and sized ~64 per connection (max_locks_per_transaction), ~8,000 on a
 * default server; two chunks in flight hold at most twice this many, plus their existing profiles'.
 */
export const IMPORT_CHUNK_IDENTITIES = 2000;
/** Chunks in flight: one writing while the next one locks and writes, on a second connection. */
export const IMPORT_DEPTH = 2;

/** What {@link runImport} needs besides the data. */
export interface RunImportOptions {
  importId: string;
  format: 'csv' | 'ndjson';
  mapping: ImportMapping;
  dryRun: boolean;
  /** Lines up to this one are committed already (a resumed import): they are read, not written again. */
  skipThrough: number;
  ctx: ImportContext;
  clock: () => Date;
  chunkSize?: number;
}

interface Record_ {
  line: number;
  record?: Record<string, unknown>;
  reason?: string;
}

// CSV through csv-parse's streaming parser (quotes, escaped quotes, fields over several lines, BOM); a
// malformed record is skipped by the parser and reported here by line, the rest of the file goes on.
async function* csvRecords(input: Readable): AsyncGenerator<Record_> {
  const skipped: Record_[] = [];
  const parser = input.pipe(
    parse({ columns: true, bom: true, trim: true, info: true, skip_empty_lines: true, skip_records_with_error: true }),
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
    yield { line: info.lines, record };
  }
  while (skipped.length) yield skipped.shift()!;
}

async function* ndjsonRecords(input: Readable): AsyncGenerator<Record_> {
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
    else yield { line, record: value as Record<string, unknown> };
  }
}

class DryRun extends Error {
  constructor(readonly result: ChunkResult) {
    super('dry run: rolled back');
  }
}

/**
 * Imports profiles from a CSV or NDJSON stream, read incrementally (never the whole file in memory),
 * in transactions of {@link IMPORT_CHUNK} rows; each commit records the last line it covered, so a
 * resumed import (same id, same file) skips what is done. A dry run writes each chunk and rolls it
 * back: its counts are what the import would do. Returns the import as it ends.
 *
 * @example
 * await runImport(sql, Readable.from(file), { importId, format: 'csv', mapping, dryRun: false, skipThrough: 0, ctx, clock });
 */
export async function runImport(
  sql: Sql,
  input: Readable | ReadableStream<Uint8Array>,
  opts: RunImportOptions,
): Promise<ImportView> {
  const stream =
    input instanceof Readable ? input : Readable.fromWeb(input as import('node:stream/web').ReadableStream);
  const records = opts.format === 'csv' ? csvRecords(stream) : ndjsonRecords(stream);
  const size = opts.chunkSize ?? IMPORT_CHUNK;
  // The key identity of each row seen in this file -> its line: a later row with the same one is refused.
  const seen = new Map<string, number>();
  let rows: ImportedRow[] = [];
  let keys = 0;
  let errors: { line: number; reason: string }[] = [];
  let lastLine = opts.skipThrough;
  // Chunks written, oldest first; a dry run writes (and rolls back) one at a time.
  const inFlight: Promise<void>[] = [];
  const depth = opts.dryRun ? 1 : IMPORT_DEPTH;
  let prev: Turn | null = null;
  const flush = async () => {
    if (!rows.length && !errors.length) return;
    const chunk = rows;
    const bad = errors;
    const through = lastLine;
    rows = [];
    errors = [];
    keys = 0;
    const turn = createTurn();
    const written = writeCommitted(sql, chunk, bad, through, opts, opts.dryRun ? null : prev, turn);
    // Awaited in order below; a failure meanwhile must not go unhandled.
    written.catch(() => {});
    prev = turn;
    inFlight.push(written);
    while (inFlight.length >= depth) await inFlight.shift();
  };
  try {
    for await (const r of records) {
      if (r.line > lastLine) lastLine = r.line;
      const done = r.line <= opts.skipThrough;
      if (!r.record) {
        if (!done) errors.push({ line: r.line, reason: r.reason ?? 'unreadable' });
      } else {
        const out = rowToEvent(r.record, r.line, opts.mapping, opts.ctx.identity);
        if (out.ok) {
          const first = out.row.identities[0]!;
          const key = `${first.type}:${first.value}`;
          const earlier = seen.get(key);
          if (earlier !== undefined) {
            if (!done) errors.push({ line: r.line, reason: `duplicate ${first.type}: same as line ${earlier}` });
          } else {
            seen.set(key, r.line);
            if (!done) {
              rows.push(out.row);
              keys += out.row.identities.length;
            }
          }
        } else if (!done) errors.push({ line: r.line, reason: out.reason });
      }
      if (rows.length + errors.length >= size || keys >= IMPORT_CHUNK_IDENTITIES) await flush();
    }
    await flush();
    while (inFlight.length) await inFlight.shift();
    await finishImport(sql, opts.importId, 'done', null);
  } catch (err) {
    // The chunks still in flight end first (after a failed one, they roll back): the import's end is last.
    await Promise.allSettled(inFlight);
    await finishImport(sql, opts.importId, 'interrupted', err instanceof Error ? err.message : String(err));
    throw err;
  }
  return (await getImport(sql, opts.importId))!;
}

async function writeCommitted(
  sql: Sql,
  rows: readonly ImportedRow[],
  bad: readonly { line: number; reason: string }[],
  lastLine: number,
  opts: RunImportOptions,
  prev: Turn | null,
  turn: Turn,
): Promise<void> {
  const now = opts.clock();
  const progress = (r: ChunkResult, recorded: number) => ({
    lastLine,
    rows: rows.length + bad.length,
    bad: recorded,
    unchanged: r.unchanged,
    created: r.created,
    updated: r.updated,
  });
  try {
    await inTurn(sql, prev, turn, async (tx, hooks) => {
      const locked = await lockChunk(tx, rows, opts.ctx);
      hooks.locked();
      const r = await writeLocked(tx, locked, { importId: opts.importId, ctx: opts.ctx, now });
      if (opts.dryRun) throw new DryRun(r);
      // The committed line moves in file order (a resumed import skips up to it).
      await hooks.predecessorCommitted();
      const recorded = await insertImportErrors(tx, opts.importId, [...bad, ...r.refused]);
      await recordProgress(tx, opts.importId, progress(r, recorded));
    });
  } catch (err) {
    if (!(err instanceof DryRun)) throw err;
    // Rolled back; the report of what would happen is kept.
    await sql.begin(async (tx) => {
      const recorded = await insertImportErrors(tx, opts.importId, [...bad, ...err.result.refused]);
      await recordProgress(tx, opts.importId, progress(err.result, recorded));
    });
  }
}

/**
 * One person written the way an import row is (the CRM upsert API): in one transaction, with the row
 * hash making the same content a no-op. `profileId` is null when the identities belong to different
 * profiles (`reason` says so).
 *
 * @example
 * await upsertProfile(sql, { line: 0, payload, consent: {}, tags: [], identities }, ctx, new Date());
 */
export async function upsertProfile(
  sql: Sql,
  row: ImportedRow,
  ctx: ImportContext,
  now: Date,
): Promise<{ profileId: string | null; created: boolean; changed: boolean; reason?: string }> {
  return retryTransaction(sql, async (tx) => {
    const r = await writeChunk(tx, [row], { importId: '0', ctx, now });
    if (r.refused.length) return { profileId: null, created: false, changed: false, reason: r.refused[0]!.reason };
    const [found] = await tx<{ profile_id: string }[]>`
      SELECT profile_id FROM identities WHERE key = ${ctx.pii.identityKey(row.identities[0]!)}`;
    return { profileId: found?.profile_id ?? null, created: r.created > 0, changed: r.unchanged === 0 };
  });
}
