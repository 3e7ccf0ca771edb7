import type { Tx } from '../../db/index.ts';
import type { ImportMapping } from './import-rows.ts';

/** An import as the API shows it. */
export interface ImportView {
  id: string;
  format: 'csv' | 'ndjson';
  mapping: ImportMapping;
  dryRun: boolean;
  status: 'running' | 'interrupted' | 'done' | 'failed';
  lastLine: number;
  rowsDone: number;
  rowsBad: number;
  rowsUnchanged: number;
  profilesCreated: number;
  profilesUpdated: number;
  rowsExpected: number | null;
  rowsPerSecond: number;
  /** Seconds left at the current rate, when the client said how many rows the file has. */
  etaSeconds: number | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

interface ImportRow {
  id: string;
  format: 'csv' | 'ndjson';
  mapping: ImportMapping;
  dry_run: boolean;
  status: ImportView['status'];
  last_line: number;
  rows_done: number;
  rows_bad: number;
  rows_unchanged: number;
  profiles_created: number;
  profiles_updated: number;
  rows_expected: number | null;
  error: string | null;
  elapsed_ms: string;
  attempt_started_at: Date;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

function view(r: ImportRow): ImportView {
  const end = r.finished_at ?? r.updated_at;
  const seconds = (Number(r.elapsed_ms) + Math.max(0, end.getTime() - r.attempt_started_at.getTime())) / 1000;
  const rate = seconds > 0 ? r.rows_done / seconds : 0;
  const left = r.rows_expected === null ? null : Math.max(0, r.rows_expected - r.rows_done);
  return {
    id: String(r.id),
    format: r.format,
    mapping: r.mapping,
    dryRun: r.dry_run,
    status: r.status,
    lastLine: r.last_line,
    rowsDone: r.rows_done,
    rowsBad: r.rows_bad,
    rowsUnchanged: r.rows_unchanged,
    profilesCreated: r.profiles_created,
    profilesUpdated: r.profiles_updated,
    rowsExpected: r.rows_expected,
    rowsPerSecond: Math.round(rate),
    etaSeconds: r.status !== 'running' ? 0 : left === null || rate === 0 ? null : Math.ceil(left / rate),
    error: r.error,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    finishedAt: r.finished_at?.toISOString() ?? null,
  };
}

/**
 * Records a new import.
 *
 * @example
 * const imp = await insertImport(sql, { format: 'csv', mapping, dryRun: false, rowsExpected: 1000, actor: 'api:key:k1' });
 */
export async function insertImport(
  tx: Tx,
  i: { format: 'csv' | 'ndjson'; mapping: ImportMapping; dryRun: boolean; rowsExpected: number | null; actor: string },
): Promise<ImportView> {
  const [row] = await tx<ImportRow[]>`
    INSERT INTO imports (format, mapping, dry_run, rows_expected, actor)
    VALUES (${i.format}, ${JSON.stringify(i.mapping)}::text::jsonb, ${i.dryRun}, ${i.rowsExpected}, ${i.actor})
    RETURNING *`;
  return view(row!);
}

/**
 * One import, or undefined.
 *
 * @example
 * const imp = await getImport(sql, '7');
 */
export async function getImport(tx: Tx, id: string): Promise<ImportView | undefined> {
  if (!/^\d{1,18}$/.test(id)) return undefined;
  const [row] = await tx<ImportRow[]>`SELECT * FROM imports WHERE id = ${id}`;
  return row ? view(row) : undefined;
}

/**
 * Starts another attempt of an import (after a crash or a cut connection): its clock restarts, the
 * time spent so far is kept.
 *
 * @example
 * await restartImport(sql, '7');
 */
export async function restartImport(tx: Tx, id: string): Promise<void> {
  await tx`
    UPDATE imports
    SET status = 'running',
      error = NULL,
      elapsed_ms = elapsed_ms + greatest(0, (extract(epoch FROM updated_at - attempt_started_at) * 1000)::bigint),
      attempt_started_at = now(),
      updated_at = now()
    WHERE id = ${id}`;
}

/** Counters one committed chunk adds. */
export interface ChunkProgress {
  lastLine: number;
  rows: number;
  bad: number;
  unchanged: number;
  created: number;
  updated: number;
}

/**
 * Adds a committed chunk's counts and moves the committed line (in the chunk's transaction).
 *
 * @example
 * await recordProgress(tx, '7', { lastLine: 2001, rows: 2000, bad: 3, unchanged: 0, created: 1997, updated: 0 });
 */
export async function recordProgress(tx: Tx, id: string, p: ChunkProgress): Promise<void> {
  await tx`
    UPDATE imports
    SET last_line = greatest(last_line, ${p.lastLine}),
      rows_done = rows_done + ${p.rows},
      rows_bad = rows_bad + ${p.bad},
      rows_unchanged = rows_unchanged + ${p.unchanged},
      profiles_created = profiles_created + ${p.created},
      profiles_updated = profiles_updated + ${p.updated},
      updated_at = clock_timestamp()
    WHERE id = ${id}`;
}

/**
 * Records bad rows (a line is recorded once, also when a resumed import meets it again).
 *
 * @example
 * await insertImportErrors(tx, '7', [{ line: 12, reason: 'column email: not a valid email' }]);
 */
export async function insertImportErrors(
  tx: Tx,
  id: string,
  errors: readonly { line: number; reason: string }[],
): Promise<number> {
  if (!errors.length) return 0;
  const rows = await tx`
    INSERT INTO import_errors (import_id, line, reason)
    SELECT ${id}, l, r FROM json_to_recordset(${JSON.stringify(errors.map((e) => ({ l: e.line, r: e.reason })))}::text::json)
      AS x (l integer, r text)
    ON CONFLICT DO NOTHING
    RETURNING line`;
  return rows.length;
}

/**
 * Ends an import.
 *
 * @example
 * await finishImport(sql, '7', 'done', null);
 */
export async function finishImport(
  tx: Tx,
  id: string,
  status: 'done' | 'interrupted' | 'failed',
  error: string | null,
): Promise<void> {
  await tx`
    UPDATE imports
    SET status = ${status}, error = ${error}, updated_at = clock_timestamp(),
      finished_at = ${status === 'done' ? tx`clock_timestamp()` : tx`NULL`}
    WHERE id = ${id}`;
}

/**
 * A page of an import's bad rows by line.
 *
 * @example
 * const page = await importErrors(sql, '7', { after: 0, limit: 1000 });
 */
export async function importErrors(
  tx: Tx,
  id: string,
  page: { after: number; limit: number },
): Promise<{ line: number; reason: string }[]> {
  return tx<{ line: number; reason: string }[]>`
    SELECT line, reason FROM import_errors
    WHERE import_id = ${id} AND line > ${page.after}
    ORDER BY line
    LIMIT ${page.limit}`;
}

/**
 * Why a mapping's tags cannot be set by an import (unknown, or dynamic: a rule decides those), or null.
 *
 * @example
 * await checkImportTags(sql, mapping); // 'tag vip: no such static tag'
 */
export async function checkImportTags(tx: Tx, mapping: ImportMapping): Promise<string | null> {
  const wanted = Object.values(mapping).flatMap((t) => (t.kind === 'tag' ? [t.name] : []));
  if (!wanted.length) return null;
  const rows = await tx<{ key: string }[]>`SELECT key FROM tags WHERE key = ANY(${wanted}::text[]) AND rule IS NULL`;
  const found = new Set(rows.map((r) => r.key));
  const missing = wanted.find((t) => !found.has(t));
  return missing ? `tag ${missing}: no such static tag` : null;
}
