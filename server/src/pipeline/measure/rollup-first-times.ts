import type { Tx } from '../../db/index.ts';

/**
 * Lowers the first times (analytics_first_times, migration 0041) with newly attached events: one upsert
 * keeping least(first_at), so a retried chunk changes nothing and a late event earlier than a person's
 * first time becomes it. Called by identify in the transaction that attaches the events (after the
 * attaching UPDATE and any re-point): a first-time cohort is never behind the events it reads, and the
 * identity locks that transaction holds keep a concurrent merge of the same people after it.
 *
 * @example
 * await addFirstTimesOf(tx, ['41', '42']);
 */
export async function addFirstTimesOf(tx: Tx, ids: readonly string[]): Promise<void> {
  if (!ids.length) return;
  await tx`
    INSERT INTO analytics_first_times AS f (profile_id, type, event, first_at)
    SELECT profile_id, coalesce(type, ''), coalesce(ev, ''), min(timestamp)
    FROM (
      SELECT profile_id, type, coalesce(event, '') AS ev, timestamp
      FROM events
      WHERE id = ANY(${ids as string[]}::bigint[]) AND profile_id IS NOT NULL
    ) e
    -- Per (type, name), and the person's row of any event (type and name '').
    GROUP BY GROUPING SETS ((profile_id, type, ev), (profile_id))
    -- Most groups have a first time already, as early or earlier: skipped before the upsert, which would
    -- lock (write) each such row even when it changes nothing.
    HAVING NOT EXISTS (
      SELECT 1 FROM analytics_first_times o
      WHERE o.profile_id = e.profile_id
        AND o.type = coalesce(e.type, '')
        AND o.event = coalesce(e.ev, '')
        AND o.first_at <= min(e.timestamp)
    )
    ON CONFLICT (profile_id, type, event) DO UPDATE SET first_at = excluded.first_at
    WHERE excluded.first_at < f.first_at`;
}

/** What a re-point moves between profiles: pairs of the profile events leave and the one they join. */
export interface FirstTimeMoves {
  from: string[];
  to: string[];
}

/**
 * The profile pairs whose events re-pointing these profiles will move (identify's repointEvents
 * predicate), read in the merge's transaction before its UPDATE; {@link followFirstTimes} applies them after.
 *
 * @example
 * const moves = await firstTimeMovesOf(tx, profiles);
 * await tx`UPDATE events ...`;
 * await followFirstTimes(tx, moves);
 */
export async function firstTimeMovesOf(tx: Tx, profiles: readonly string[]): Promise<FirstTimeMoves> {
  const rows = await tx<{ from: string; to: string }[]>`
    SELECT DISTINCT e.profile_id::text AS from, i.profile_id::text AS to
    FROM events e
    JOIN identities i ON i.key = e.identity_key
    WHERE e.profile_id = ANY(${profiles as string[]}::uuid[]) AND e.profile_id <> i.profile_id`;
  return { from: rows.map((r) => r.from), to: rows.map((r) => r.to) };
}

/**
 * After a merge (or its undo) re-pointed events: every profile on either side of a move gets its first
 * times recomputed from its attached events, in the merge's transaction (which holds both profiles' locks).
 * Times older than the events' retention horizon cannot be recomputed (their events may be dropped): each
 * profile keeps its own, and the profiles it sent events to get them too (migration 0041 says why).
 * A profile merged away has no events left, and no rows.
 *
 * @example
 * await followFirstTimes(tx, moves);
 */
export async function followFirstTimes(tx: Tx, m: FirstTimeMoves): Promise<void> {
  if (!m.from.length) return;
  const touched = [...new Set([...m.from, ...m.to])];
  await tx`
    WITH horizon AS (
      SELECT CASE WHEN count(*) = 0 OR bool_or(lower_bound IS NULL) THEN NULL
        ELSE min(lower_bound) + interval '1 day' END AS at
      FROM event_partitions
    ),
    pairs AS (
      SELECT DISTINCT f, t FROM unnest(${m.from}::uuid[], ${m.to}::uuid[]) AS u(f, t)
    ),
    -- Read and emptied in one: the aggregate below consumes every deleted row before it inserts one.
    gone AS (
      DELETE FROM analytics_first_times WHERE profile_id = ANY(${touched}::uuid[])
      RETURNING profile_id, type, event, first_at
    ),
    -- Rows before the horizon: kept by their profile unless it was merged away, and carried along the moves.
    old AS (
      SELECT g.profile_id, g.type, g.event, g.first_at
      FROM gone g, horizon h
      WHERE g.first_at < h.at
    ),
    kept AS (
      SELECT o.profile_id, o.type, o.event, o.first_at
      FROM old o
      JOIN profiles p ON p.id = o.profile_id AND p.merged_into IS NULL
      UNION ALL
      SELECT pairs.t, o.type, o.event, o.first_at
      FROM old o
      JOIN pairs ON pairs.f = o.profile_id
    )
    INSERT INTO analytics_first_times (profile_id, type, event, first_at)
    SELECT profile_id, type, event, min(first_at)
    FROM (
      SELECT e.profile_id, k.type, k.event, e.timestamp AS first_at
      FROM events e
      -- Per (type, name), and the person's row of any event (type and name '').
      CROSS JOIN LATERAL (VALUES (e.type, coalesce(e.event, '')), ('', '')) AS k(type, event)
      WHERE e.profile_id = ANY(${touched}::uuid[])
      UNION ALL
      SELECT profile_id, type, event, first_at FROM kept
    ) x
    GROUP BY 1, 2, 3`;
}

/**
 * An erasure: the first times of these profiles go with their events.
 *
 * @example
 * await forgetFirstTimes(tx, ids);
 */
export async function forgetFirstTimes(tx: Tx, profiles: readonly string[]): Promise<void> {
  if (!profiles.length) return;
  await tx`DELETE FROM analytics_first_times WHERE profile_id = ANY(${profiles as string[]}::uuid[])`;
}
