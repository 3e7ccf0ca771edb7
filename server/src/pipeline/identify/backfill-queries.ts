import type { TraitQualityRule } from '@cairn/core';
import type { Sql, Tx } from '../../db/index.ts';

// The rows of trait_backfills (migration 0040): a backfill's settings, cursor, progress and counts.

/** Counts of one trait's changes in a backfill. */
export interface KeyCounts {
  /** Stored values the rule rewrote (or, in a dry run, would rewrite). */
  normalized: number;
  /** Missing values filled, or derived values derived again to something else. */
  filled: number;
  /** Derived values removed (a template input is missing now). */
  cleared: number;
  /** Values the rule fails on: kept as they are, as the fold keeps them. */
  failed: number;
}

/** One change, as stored in the sample (values sealed like profile_traits holds them). */
export interface SampleChange {
  profileId: string;
  key: string;
  from: unknown;
  to: unknown;
  kind: 'normalized' | 'filled' | 'cleared';
}

/** Where a backfill is: `cancelled` and `failed` ones may be resumed, `done` is final (migration 0043). */
export type BackfillStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** A backfill as stored. */
export interface BackfillRow {
  id: string;
  keys: string[];
  rules: Record<string, TraitQualityRule>;
  dry_run: boolean;
  trigger_flows: boolean;
  import_id: string | null;
  status: BackfillStatus;
  cursor: string | null;
  total: number;
  rows_done: number;
  profiles_changed: number;
  changes: Record<string, KeyCounts>;
  sample: SampleChange[];
  chunks: number;
  attempts: number;
  error: string | null;
  actor: string | null;
  elapsed_ms: string;
  attempt_started_at: Date | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  cancelled_at: Date | null;
  cancelled_by: string | null;
  resumes: number;
}

const COLUMNS =
  'id::text, keys, rules, dry_run, trigger_flows, import_id::text, status, cursor, total, rows_done, profiles_changed, changes, sample, chunks, attempts, error, actor, elapsed_ms::text, attempt_started_at, created_at, updated_at, finished_at, cancelled_at, cancelled_by, resumes';

/**
 * Records a new backfill (queued). A real run reserves an id from the imports sequence for its
 * consequences (no import ever gets it); a dry run changes nothing and needs none.
 *
 * @example
 * const row = await insertBackfill(sql, { keys: ['country'], rules, dryRun: false, triggerFlows: false, actor: 'k1' });
 */
export async function insertBackfill(
  sql: Tx,
  b: {
    keys: readonly string[];
    rules: Record<string, TraitQualityRule>;
    dryRun: boolean;
    triggerFlows: boolean;
    actor: string;
  },
): Promise<BackfillRow> {
  const [row] = await sql<BackfillRow[]>`
    INSERT INTO trait_backfills (keys, rules, dry_run, trigger_flows, import_id, actor)
    VALUES (
      ${b.keys as string[]}::text[], ${sql.json(b.rules as never)}, ${b.dryRun}, ${b.triggerFlows},
      CASE WHEN ${b.dryRun}::boolean THEN NULL ELSE nextval(pg_get_serial_sequence('imports', 'id')) END,
      ${b.actor}
    )
    RETURNING ${sql.unsafe(COLUMNS)}`;
  return row!;
}

/**
 * One backfill, or undefined. With `lock`, its row stays locked until the transaction ends: one chunk of
 * a backfill at a time, whichever worker runs it.
 *
 * @example
 * const b = await getBackfill(tx, '3', true);
 */
export async function getBackfill(sql: Tx, id: string, lock = false): Promise<BackfillRow | undefined> {
  // COLUMNS is a fixed list written above: unsafe only splices it in.
  const [row] = await sql<BackfillRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM trait_backfills WHERE id = ${id} ${lock ? sql`FOR UPDATE` : sql``}`;
  return row;
}

/**
 * Backfills, newest first.
 *
 * @example
 * const page = await listBackfills(sql, 20);
 */
export async function listBackfills(sql: Sql, limit: number): Promise<BackfillRow[]> {
  return sql<BackfillRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM trait_backfills ORDER BY id DESC LIMIT ${limit}`;
}

/**
 * Starts (or resumes) an attempt: status running, the total counted once, the attempt's clock started.
 *
 * @example
 * await beginAttempt(sql, '3', 2000);
 */
export async function beginAttempt(sql: Tx, id: string, total: number | null): Promise<void> {
  await sql`
    UPDATE trait_backfills
    SET status = 'running', attempts = attempts + 1, attempt_started_at = now(), updated_at = now(),
      total = coalesce(${total}::int, total), error = NULL
    WHERE id = ${id} AND status IN ('queued', 'running', 'failed')`;
}

/**
 * Commits a chunk's progress with its writes (same transaction): cursor, counts, sample, time spent.
 *
 * @example
 * await saveProgress(tx, row, { cursor, rowsDone: 500, profilesChanged: 12, changes, sample });
 */
export async function saveProgress(
  tx: Tx,
  id: string,
  p: {
    cursor: string;
    rows: number;
    profilesChanged: number;
    changes: Record<string, KeyCounts>;
    sample: SampleChange[];
  },
): Promise<void> {
  await tx`
    UPDATE trait_backfills
    SET cursor = ${p.cursor}, rows_done = rows_done + ${p.rows}, profiles_changed = profiles_changed + ${p.profilesChanged},
      changes = ${tx.json(p.changes as never)}, sample = ${tx.json(p.sample as never)}, chunks = chunks + 1,
      updated_at = now()
    WHERE id = ${id}`;
}

/**
 * Ends a running backfill: done (rows_done is then the total), or failed with the reason. A backfill
 * cancelled meanwhile stays cancelled.
 *
 * @example
 * await finishBackfill(sql, '3', null);
 */
export async function finishBackfill(sql: Tx, id: string, error: string | null): Promise<void> {
  await sql`
    UPDATE trait_backfills
    SET status = ${error === null ? 'done' : 'failed'}, error = ${error},
      total = CASE WHEN ${error === null} THEN rows_done ELSE total END,
      elapsed_ms = elapsed_ms + (extract(epoch FROM now() - coalesce(attempt_started_at, now())) * 1000)::bigint,
      attempt_started_at = NULL, updated_at = now(),
      finished_at = CASE WHEN ${error === null} THEN now() END
    WHERE id = ${id} AND status = 'running'`;
}

/**
 * Cancels a backfill that is queued, running or failed (its pending retries then do nothing). The update
 * waits for the row lock a running chunk holds, so it lands between two chunks: the counts are those of
 * the chunks committed before it, and the next chunk sees `cancelled` and stops. Returns the row after
 * (unchanged when it was cancelled already or done), or undefined when there is none.
 *
 * @example
 * const b = await cancelBackfill(sql, '3', 'api:key:k1');
 */
export async function cancelBackfill(sql: Sql, id: string, actor: string): Promise<BackfillRow | undefined> {
  return (await sql.begin(async (tx) => {
    const b = await getBackfill(tx, id, true);
    if (!b || b.status === 'done' || b.status === 'cancelled') return b;
    const [row] = await tx<BackfillRow[]>`
      UPDATE trait_backfills
      SET status = 'cancelled', cancelled_at = now(), cancelled_by = ${actor}, updated_at = now(),
        elapsed_ms = elapsed_ms + (extract(epoch FROM now() - coalesce(attempt_started_at, now())) * 1000)::bigint,
        attempt_started_at = NULL
      WHERE id = ${id}
      RETURNING ${tx.unsafe(COLUMNS)}`;
    return row;
  })) as BackfillRow | undefined;
}

/**
 * Marks a failed or cancelled backfill queued again (cursor, counts and sample kept), in the caller's
 * transaction with the job that continues it. The status is read without the row lock first: a running
 * backfill's chunk holds that lock, and the answer for it (not resumable) should not wait for the chunk.
 * Returns the row after, or, when it could not be resumed (queued, running or done), the row as it is.
 *
 * @example
 * const { row, resumed } = await markResumed(tx, '3');
 */
export async function markResumed(tx: Tx, id: string): Promise<{ row: BackfillRow | undefined; resumed: boolean }> {
  const b = await getBackfill(tx, id);
  if (!b || (b.status !== 'failed' && b.status !== 'cancelled')) return { row: b, resumed: false };
  const [row] = await tx<BackfillRow[]>`
    UPDATE trait_backfills
    SET status = 'queued', error = NULL, cancelled_at = NULL, cancelled_by = NULL, resumes = resumes + 1,
      updated_at = now()
    WHERE id = ${id} AND status IN ('failed', 'cancelled')
    RETURNING ${tx.unsafe(COLUMNS)}`;
  // A pg-boss retry began it again meanwhile.
  return row ? { row, resumed: true } : { row: await getBackfill(tx, id), resumed: false };
}

/**
 * Live profiles after `cursor`, in id order (the keyset of a backfill's chunks).
 *
 * @example
 * const ids = await profilesAfter(tx, null, 500);
 */
export async function profilesAfter(tx: Tx, cursor: string | null, limit: number): Promise<string[]> {
  const rows = await tx<{ id: string }[]>`
    SELECT id
    FROM profiles
    WHERE merged_into IS NULL AND erased_at IS NULL
      ${cursor ? tx`AND id > ${cursor}` : tx``}
    ORDER BY id
    LIMIT ${limit}`;
  return rows.map((r) => r.id);
}

/**
 * Live profiles a backfill will visit (its total, for progress and ETA).
 *
 * @example
 * const total = await liveProfiles(sql);
 */
export async function liveProfiles(sql: Tx): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM profiles WHERE merged_into IS NULL AND erased_at IS NULL`;
  return row!.n;
}

/**
 * Records one `traits.backfilled` track event (source `cairn`, processed) per changed profile: what a
 * backfill changed, in the person's timeline, carrying the backfill's reserved import id so stages 3-5
 * treat its consequences as an import's. Timestamped at the profile's fold position, so a later refold
 * of the profile (which folds every event) moves no `last_seen_at`. Returns event ids by profile.
 *
 * @example
 * const ids = await recordBackfillEvents(tx, backfill, [{ p, ts, keys }]);
 */
export async function recordBackfillEvents(
  tx: Tx,
  backfill: { id: string; importId: string | null },
  rows: readonly { p: string; ts: string; keys: string[] }[],
): Promise<Map<string, { id: string; ts: Date }>> {
  if (!rows.length) return new Map();
  const prefix = `traits.backfilled:${backfill.id}:`;
  const inserted = await tx<{ id: string; profile_id: string; timestamp: Date }[]>`
    WITH c AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (p uuid, ts text, keys jsonb)
    ),
    who AS (
      SELECT c.*,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'userId' ORDER BY i.created_at, i.key LIMIT 1) AS user_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'anonymousId' ORDER BY i.created_at, i.key LIMIT 1) AS anonymous_id
      FROM c
    )
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, profile_id, processed_at, import_id)
    SELECT 'cairn', ${prefix} || w.p::text, 'track', 'traits.backfilled', w.user_id, w.anonymous_id, w.ts::timestamptz, now(),
      jsonb_strip_nulls(jsonb_build_object(
        'type', 'track', 'event', 'traits.backfilled', 'messageId', ${prefix} || w.p::text,
        'userId', w.user_id, 'anonymousId', w.anonymous_id,
        'timestamp', w.ts, 'receivedAt', w.ts,
        'properties', jsonb_build_object('backfill', ${backfill.id}::text, 'traits', w.keys),
        'context', jsonb_build_object('library', jsonb_build_object('name', 'cairn')))),
      w.p, now(), ${backfill.importId}::bigint
    FROM who w
    ORDER BY w.p
    RETURNING id::text, profile_id::text, timestamp`;
  return new Map(inserted.map((r) => [r.profile_id, { id: r.id, ts: r.timestamp }]));
}
