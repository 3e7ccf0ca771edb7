import type { Tx } from '../../db/index.ts';

// A merged-away profile's A/B test assignments (flow_experiment_people) belong to the person it became,
// as its runs and events do. One person is one person in a test: when both profiles were assigned in
// the same experiment, the earliest assignment stands (its arm and time: the person's first exposure)
// and the other is dropped. A person already counted stays counted (`counted` of either), so the look
// never counts them again with the merged events; the counts keep what was counted before the merge
// (a person counted twice while they were two profiles stays in both arms' n: the counts are not per
// person). An unmerge does not move them back.

interface AssignmentToMove {
  flowId: string;
  version: number;
  node: string;
  profileId: string;
  owner: string;
  arm: string;
  assignedAt: Date;
  counted: boolean;
}

/**
 * Moves the experiment assignments of merged-away profiles (`moves`: merged id → survivor id) to their
 * survivors, in the merge's transaction: one row per (experiment, survivor), the earliest assigned.
 *
 * @example
 * await moveExperimentAssignments(tx, new Map([[mergedId, survivorId]]));
 */
export async function moveExperimentAssignments(tx: Tx, moves: ReadonlyMap<string, string>): Promise<void> {
  if (!moves.size) return;
  const doc = JSON.stringify([...moves].map(([m, s]) => ({ m, s })));
  // The merged profiles' rows and their survivors' in the same experiments, locked (a look marking them
  // counted finishes first, or waits and finds them moved), in key order.
  const rows = await tx<AssignmentToMove[]>`
    WITH moved AS (
      SELECT p.flow_id, p.version, p.node, p.profile_id, x.s AS owner
      FROM flow_experiment_people p
      JOIN json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid) ON p.profile_id = x.m
    )
    SELECT p.flow_id AS "flowId", p.version, p.node, p.profile_id::text AS "profileId",
      coalesce(m.owner, p.profile_id)::text AS owner, p.arm, p.assigned_at AS "assignedAt", p.counted
    FROM flow_experiment_people p
    LEFT JOIN moved m USING (flow_id, version, node, profile_id)
    WHERE m.profile_id IS NOT NULL
      OR (p.flow_id, p.version, p.node, p.profile_id) IN (SELECT flow_id, version, node, owner FROM moved)
    ORDER BY p.flow_id, p.version, p.node, p.profile_id
    FOR UPDATE OF p`;
  if (!rows.some((r) => r.owner !== r.profileId)) return;
  const kept = new Map<string, AssignmentToMove>();
  for (const r of rows) {
    const key = `${r.flowId}\u0000${r.version}\u0000${r.node}\u0000${r.owner}`;
    const k = kept.get(key);
    const counted = r.counted || (k?.counted ?? false);
    // The earliest; at the same moment, the survivor's own.
    const first =
      !k ||
      r.assignedAt.getTime() < k.assignedAt.getTime() ||
      (r.assignedAt.getTime() === k.assignedAt.getTime() && r.profileId === r.owner);
    kept.set(key, { ...(first ? r : k), counted });
  }
  await tx`
    DELETE FROM flow_experiment_people p
    USING json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
    WHERE p.profile_id = x.m`;
  const out = [...kept.values()].map((r) => ({
    f: r.flowId,
    v: r.version,
    n: r.node,
    p: r.owner,
    a: r.arm,
    at: r.assignedAt.toISOString(),
    c: r.counted,
  }));
  await tx`
    INSERT INTO flow_experiment_people (flow_id, version, node, profile_id, arm, assigned_at, counted)
    SELECT f, v, n, p, a, at, c
    FROM json_to_recordset(${JSON.stringify(out)}::text::json)
      AS x (f text, v integer, n text, p uuid, a text, at timestamptz, c boolean)
    ORDER BY f, v, n, p
    ON CONFLICT (flow_id, version, node, profile_id)
      DO UPDATE SET arm = excluded.arm, assigned_at = excluded.assigned_at, counted = excluded.counted`;
}
