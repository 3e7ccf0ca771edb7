import type { Tx } from '../../db/index.ts';
import { RUN_COLUMNS } from './queries.ts';
import type { RunRow } from './runs.ts';

// The planner's tables (migration 0016): flow_timers (a flow's next firing, or its date sweep) and
// flow_planned (a person's next date-trait entry). Times cross as ISO text in and epoch ms out.

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A flow's timer row. */
export interface FlowTimerRow {
  flowId: string;
  version: number;
  /** Epoch ms. */
  due: number;
  /** The last profile a committed batch of this firing (or sweep) reached. */
  cursor: string | null;
  why: string | null;
}

/** Sets a flow's timer (a publish, the next firing planned); a firing under way starts over. */
export async function setFlowTimer(
  tx: Tx,
  flowId: string,
  version: number,
  due: number | null,
  why: string | null,
): Promise<void> {
  await tx`
    INSERT INTO flow_timers (flow_id, version, due, cursor, why)
    VALUES (${flowId}, ${version}, ${iso(due)}, NULL, ${why})
    ON CONFLICT (flow_id) DO UPDATE SET version = excluded.version, due = excluded.due, cursor = NULL, why = excluded.why`;
}

/** Removes a flow's timer (its trigger is no longer time-based). */
export async function dropFlowTimer(tx: Tx, flowId: string): Promise<void> {
  await tx`DELETE FROM flow_timers WHERE flow_id = ${flowId}`;
}

/** Moves a firing (or sweep) under way on: the last profile its committed batches reached. */
export async function advanceCursor(tx: Tx, flowId: string, cursor: string): Promise<void> {
  await tx`UPDATE flow_timers SET cursor = ${cursor}::uuid WHERE flow_id = ${flowId}`;
}

/**
 * Claims the flow timer due longest ago, locked for the transaction; one another server holds is
 * skipped (it is firing it), never waited for.
 */
export async function claimFlowTimer(tx: Tx, now: Date): Promise<FlowTimerRow | undefined> {
  const [row] = await tx<FlowTimerRow[]>`
    SELECT flow_id AS "flowId", version, (extract(epoch FROM due) * 1000)::float8 AS due, cursor::text, why
    FROM flow_timers
    WHERE due IS NOT NULL AND due <= ${now}
    ORDER BY due
    LIMIT 1
    FOR UPDATE SKIP LOCKED`;
  return row;
}

/** The flows whose timers use a custom calendar (to plan again when its days change). */
export async function flowsUsingCalendar(tx: Tx, key: string): Promise<{ id: string; version: number }[]> {
  return tx<{ id: string; version: number }[]>`
    SELECT f.id, f.version
    FROM flow_timers t JOIN flows f ON f.id = t.flow_id
    JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version
    WHERE v.definition->'trigger'->'calendar'->>'custom' = ${key}`;
}

/**
 * A page of the people a firing enters, after `cursor` in profile id order: the members of an
 * audience, or every live profile.
 */
export async function peoplePage(
  tx: Tx,
  audience: string | undefined,
  cursor: string | null,
  limit: number,
): Promise<string[]> {
  const after = cursor ? tx`AND profile_id > ${cursor}::uuid` : tx``;
  const rows = audience
    ? await tx<{ id: string }[]>`
        SELECT profile_id::text AS id FROM audience_memberships
        WHERE audience = ${audience} AND exited_at IS NULL ${after}
        ORDER BY profile_id LIMIT ${limit}`
    : await tx<{ id: string }[]>`
        SELECT id::text FROM profiles
        WHERE merged_into IS NULL AND erased_at IS NULL ${cursor ? tx`AND id > ${cursor}::uuid` : tx``}
        ORDER BY id LIMIT ${limit}`;
  return rows.map((r) => r.id);
}

/** A page of the live profiles that have a trait, after `cursor` in profile id order. */
export async function withTraitPage(tx: Tx, trait: string, cursor: string | null, limit: number): Promise<string[]> {
  const rows = await tx<{ id: string }[]>`
    SELECT t.profile_id::text AS id
    FROM profile_traits t JOIN profiles p ON p.id = t.profile_id AND p.merged_into IS NULL
    WHERE t.key = ${trait} ${cursor ? tx`AND t.profile_id > ${cursor}::uuid` : tx``}
    ORDER BY t.profile_id LIMIT ${limit}`;
  return rows.map((r) => r.id);
}

/** A person's planned date entry. */
export interface PlannedRow {
  flowId: string;
  profileId: string;
  version: number;
  /** Epoch ms. */
  due: number;
}

/**
 * Claims up to `limit` planned entries that came due, oldest first (SKIP LOCKED, as the timer's runs);
 * `gone`: the person was merged away or erased since.
 */
export async function claimPlanned(tx: Tx, now: Date, limit: number): Promise<(PlannedRow & { gone: boolean })[]> {
  return tx<(PlannedRow & { gone: boolean })[]>`
    SELECT t.flow_id AS "flowId", t.profile_id::text AS "profileId", t.version,
      (extract(epoch FROM t.due) * 1000)::float8 AS due,
      (p.id IS NULL OR p.merged_into IS NOT NULL OR p.erased_at IS NOT NULL) AS gone
    FROM flow_planned t LEFT JOIN profiles p ON p.id = t.profile_id
    WHERE t.due <= ${now}
    ORDER BY t.due
    LIMIT ${limit}
    FOR UPDATE OF t SKIP LOCKED`;
}

/** The planned entries of these people in these flows. */
export async function plannedOf(tx: Tx, flowIds: readonly string[], profileIds: readonly string[]) {
  if (!flowIds.length || !profileIds.length) return [];
  return tx<PlannedRow[]>`
    SELECT flow_id AS "flowId", profile_id::text AS "profileId", version,
      (extract(epoch FROM due) * 1000)::float8 AS due
    FROM flow_planned
    WHERE flow_id = ANY(${flowIds as string[]}::text[]) AND profile_id = ANY(${profileIds as string[]}::uuid[])`;
}

/**
 * Writes people's next date entries (`due` null: none, the row goes), in a fixed order (two writers
 * over the same people never wait for each other in a cycle).
 */
export async function writePlanned(
  tx: Tx,
  rows: readonly { flowId: string; profileId: string; version: number; due: number | null }[],
): Promise<void> {
  const sorted = [...rows].sort((a, b) =>
    a.flowId === b.flowId ? a.profileId.localeCompare(b.profileId) : a.flowId.localeCompare(b.flowId),
  );
  const set = sorted.filter((r) => r.due !== null);
  const gone = sorted.filter((r) => r.due === null);
  if (set.length) {
    const doc = JSON.stringify(set.map((r) => ({ f: r.flowId, p: r.profileId, v: r.version, d: iso(r.due) })));
    await tx`
      INSERT INTO flow_planned (flow_id, profile_id, version, due)
      SELECT f, p, v, d FROM json_to_recordset(${doc}::text::json) AS x (f text, p uuid, v integer, d timestamptz)
      ON CONFLICT (flow_id, profile_id) DO UPDATE SET version = excluded.version, due = excluded.due`;
  }
  if (gone.length)
    await tx`
      DELETE FROM flow_planned t
      USING unnest(${gone.map((r) => r.flowId)}::text[], ${gone.map((r) => r.profileId)}::uuid[]) AS x (f, p)
      WHERE t.flow_id = x.f AND t.profile_id = x.p`;
}

/** When the planner next has something to do (epoch ms), or null. */
export async function plannerNextDue(sql: Tx): Promise<number | null> {
  const [row] = await sql<{ due: number | null }[]>`
    SELECT (extract(epoch FROM least(
      (SELECT min(due) FROM flow_timers WHERE due IS NOT NULL),
      (SELECT min(due) FROM flow_planned))) * 1000)::float8 AS due`;
  return row?.due ?? null;
}

/** The profiles identify events of a batch belong to (their traits may have changed). */
export async function identifiedPeople(sql: Tx, eventIds: readonly string[]): Promise<string[]> {
  if (!eventIds.length) return [];
  const rows = await sql<{ p: string }[]>`
    SELECT DISTINCT profile_id::text AS p FROM events
    WHERE id = ANY(${eventIds as string[]}::bigint[]) AND type = 'identify' AND profile_id IS NOT NULL`;
  return rows.map((r) => r.p);
}

/** A waiting run, as much as deciding whether it waits at a node on a date trait needs. */
export interface WaitingRunRef {
  id: string;
  flowId: string;
  version: number;
  profileId: string;
  node: string;
}

/** The waiting runs of these profiles (through flow_runs_person_idx). */
export async function waitingRunsOf(sql: Tx, profileIds: readonly string[]): Promise<WaitingRunRef[]> {
  if (!profileIds.length) return [];
  return sql<WaitingRunRef[]>`
    SELECT id::text, flow_id AS "flowId", version, profile_id::text AS "profileId", node
    FROM flow_runs
    WHERE profile_id = ANY(${profileIds as string[]}::uuid[]) AND status = 'waiting' AND node IS NOT NULL`;
}

/** These runs, locked for the transaction, if they still wait (a step may have moved them meanwhile). */
export async function lockWaitingRuns(tx: Tx, ids: readonly string[]): Promise<RunRow[]> {
  if (!ids.length) return [];
  return tx<RunRow[]>`
    SELECT ${RUN_COLUMNS(tx)}
    FROM flow_runs r
    WHERE r.id = ANY(${ids as string[]}::uuid[]) AND r.status = 'waiting'
    ORDER BY r.id
    FOR UPDATE`;
}
