import type { Tx } from '../../db/index.ts';

// The experiment nodes' rows (migration 0021): assignments written with the journal, counts, the
// decision, the looks' claims. Times cross as ISO text in and epoch ms out.

/** An experiment: one node of one version of a flow. */
export interface ExperimentKey {
  flowId: string;
  version: number;
  node: string;
}

/** A test assignment, from a journal entry with `phase: 'test'`. */
export interface AssignmentRow extends ExperimentKey {
  profileId: string;
  /** A variant's index as text, or 'control'. */
  arm: string;
  assignedAt: number;
}

/** An experiment's stored row. */
export interface ExperimentRow extends ExperimentKey {
  startedAt: number;
  counts: Record<string, unknown>;
  decidedArm: string | null;
  decidedAt: number | null;
  inconclusive: boolean | null;
  decidedReason: string | null;
  sweptAt: number | null;
  lastLookAt: number | null;
}

const COLUMNS = (tx: Tx) => tx`
  flow_id AS "flowId", version, node, (extract(epoch FROM started_at) * 1000)::float8 AS "startedAt", counts,
  decided_arm AS "decidedArm", (extract(epoch FROM decided_at) * 1000)::float8 AS "decidedAt", inconclusive,
  decided_reason AS "decidedReason", (extract(epoch FROM swept_at) * 1000)::float8 AS "sweptAt",
  (extract(epoch FROM last_look_at) * 1000)::float8 AS "lastLookAt"`;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Records test assignments (a person once per experiment: a later run of theirs adds nobody) and makes
 * the experiments' rows on their first assignment (`started_at`: the earliest one given here).
 */
export async function insertAssignments(tx: Tx, rows: readonly AssignmentRow[]): Promise<void> {
  if (!rows.length) return;
  const doc = JSON.stringify(
    rows.map((r) => ({ f: r.flowId, v: r.version, n: r.node, p: r.profileId, a: r.arm, at: iso(r.assignedAt) })),
  );
  // Experiments first, in key order (two transactions making the same rows wait, never deadlock).
  await tx`
    INSERT INTO flow_experiments (flow_id, version, node, started_at, counts)
    SELECT f, v, n, min(at), '{}'::jsonb
    FROM json_to_recordset(${doc}::text::json) AS x (f text, v integer, n text, p uuid, a text, at timestamptz)
    GROUP BY f, v, n
    ORDER BY f, v, n
    ON CONFLICT DO NOTHING`;
  await tx`
    INSERT INTO flow_experiment_people (flow_id, version, node, profile_id, arm, assigned_at)
    SELECT f, v, n, p, a, at
    FROM json_to_recordset(${doc}::text::json) AS x (f text, v integer, n text, p uuid, a text, at timestamptz)
    ORDER BY f, v, n, p
    ON CONFLICT DO NOTHING`;
}

/** These experiments' rows (not locked). */
export async function experimentRows(tx: Tx, keys: readonly ExperimentKey[]): Promise<ExperimentRow[]> {
  if (!keys.length) return [];
  return tx<ExperimentRow[]>`
    SELECT ${COLUMNS(tx)}
    FROM flow_experiments e
    JOIN unnest(${keys.map((k) => k.flowId)}::text[], ${keys.map((k) => k.version)}::int[],
        ${keys.map((k) => k.node)}::text[]) AS k (f, v, n)
      ON e.flow_id = k.f AND e.version = k.v AND e.node = k.n`;
}

/** One experiment's row, locked for the transaction (waiting for a look under way), or undefined. */
export async function lockExperiment(tx: Tx, k: ExperimentKey): Promise<ExperimentRow | undefined> {
  const [row] = await tx<ExperimentRow[]>`
    SELECT ${COLUMNS(tx)} FROM flow_experiments
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node}
    FOR UPDATE`;
  return row;
}

/**
 * Claims one undecided experiment nobody looked at since `lookedBefore` (another server's look holds
 * its row: skipped, never waited for), the longest unlooked first.
 */
export async function claimLook(tx: Tx, lookedBefore: number): Promise<ExperimentRow | undefined> {
  const [row] = await tx<ExperimentRow[]>`
    SELECT ${COLUMNS(tx)} FROM flow_experiments
    WHERE swept_at IS NULL AND decided_at IS NULL
      AND (last_look_at IS NULL OR last_look_at <= ${iso(lookedBefore)})
    ORDER BY last_look_at NULLS FIRST
    LIMIT 1
    FOR UPDATE SKIP LOCKED`;
  return row;
}

/** Decided experiments whose held people have not all been given the decision yet. */
export async function unswept(tx: Tx): Promise<ExperimentKey[]> {
  return tx<ExperimentKey[]>`
    SELECT flow_id AS "flowId", version, node FROM flow_experiments
    WHERE swept_at IS NULL AND decided_at IS NOT NULL
    ORDER BY decided_at`;
}

/** A person in the test whose window has closed and who is not counted yet. */
export interface MaturedRow {
  profileId: string;
  arm: string;
  assignedAt: number;
}

/** Up to `limit` uncounted people of the experiment assigned at or before `assignedBy`, oldest first. */
export async function maturedPeople(
  tx: Tx,
  k: ExperimentKey,
  assignedBy: number,
  limit: number,
): Promise<MaturedRow[]> {
  return tx<MaturedRow[]>`
    SELECT profile_id::text AS "profileId", arm, (extract(epoch FROM assigned_at) * 1000)::float8 AS "assignedAt"
    FROM flow_experiment_people
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node} AND NOT counted
      AND assigned_at <= ${iso(assignedBy)}
    ORDER BY assigned_at, profile_id
    LIMIT ${limit}`;
}

/** A person's event in their goal window. */
export interface GoalEventRow {
  profileId: string;
  timestamp: Date;
  payload: Record<string, unknown>;
}

/**
 * The events of these people within their windows `[from, from + withinMs]` (by event timestamp), of
 * these names when given (a track event's name, a page's or screen's), through events_profile_idx.
 */
export async function windowEvents(
  tx: Tx,
  people: readonly { profileId: string; from: number }[],
  withinMs: number,
  names: readonly string[] | undefined,
): Promise<GoalEventRow[]> {
  if (!people.length) return [];
  return tx<GoalEventRow[]>`
    SELECT e.profile_id::text AS "profileId", e.timestamp, e.payload
    FROM unnest(${people.map((p) => p.profileId)}::uuid[], ${people.map((p) => iso(p.from))}::timestamptz[])
      AS w (p, since)
    JOIN events e
      ON e.profile_id = w.p AND e.timestamp >= w.since
      AND e.timestamp <= w.since + ${withinMs}::bigint * interval '1 millisecond'
    ${
      names
        ? tx`WHERE CASE WHEN e.type = 'track' THEN e.event WHEN e.type IN ('page', 'screen') THEN e.payload->>'name' END
              = ANY(${names as string[]}::text[])`
        : tx``
    }
    ORDER BY e.timestamp, e.id`;
}

/** Adds counted people: their counts and the `counted` marks, and when the experiment was looked at. */
export async function addCounts(
  tx: Tx,
  k: ExperimentKey,
  counts: Record<string, unknown>,
  profileIds: readonly string[],
  lookedAt: number,
): Promise<void> {
  if (profileIds.length)
    await tx`
      UPDATE flow_experiment_people SET counted = true
      WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node}
        AND profile_id = ANY(${profileIds as string[]}::uuid[])`;
  await tx`
    UPDATE flow_experiments SET counts = ${JSON.stringify(counts)}::text::jsonb, last_look_at = ${iso(lookedAt)}
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node}`;
}

/** When the experiment was last looked at. */
export async function touchLook(tx: Tx, k: ExperimentKey, at: number): Promise<void> {
  await tx`
    UPDATE flow_experiments SET last_look_at = ${iso(at)}
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node}`;
}

/** Stores the decision (only while there is none: the first decision stands). */
export async function saveDecision(
  tx: Tx,
  k: ExperimentKey,
  d: { arm: string; at: number; inconclusive: boolean; reason: string },
): Promise<void> {
  await tx`
    UPDATE flow_experiments
    SET decided_arm = ${d.arm}, decided_at = ${iso(d.at)}, inconclusive = ${d.inconclusive}, decided_reason = ${d.reason}
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node} AND decided_at IS NULL`;
}

/** Every held person of a decided experiment was given the decision. */
export async function markSwept(tx: Tx, k: ExperimentKey, at: number): Promise<void> {
  await tx`
    UPDATE flow_experiments SET swept_at = ${iso(at)}
    WHERE flow_id = ${k.flowId} AND version = ${k.version} AND node = ${k.node}`;
}

/** A flow's experiments (every version), for the results API. */
export async function experimentsOfFlow(tx: Tx, flowId: string): Promise<ExperimentRow[]> {
  return tx<ExperimentRow[]>`
    SELECT ${COLUMNS(tx)} FROM flow_experiments WHERE flow_id = ${flowId} ORDER BY version DESC, node`;
}
