import type { Tx } from '../../db/index.ts';

// A merged-away profile's flow runs belong to the person it became: they move with its events, so a
// run waiting for "Order Completed" sees the order the survivor places, and the re-entry policy counts
// the runs both had. A flow lets a person be in it once at a time (unless it allows several): when both
// had an active run in such a flow, the survivor's goes on and the merged one's ends, with the reason.

interface RunToMove {
  id: string;
  flowId: string;
  exclusive: boolean;
  active: boolean;
  to: string;
}

/**
 * Moves the runs of merged-away profiles (`moves`: merged id → survivor id) to their survivors, in the
 * merge's transaction; ends (exited) a moved active run when the survivor has one in the same flow
 * and the flow allows one per person, and journals why.
 *
 * @example
 * await moveFlowRuns(tx, new Map([[mergedId, survivorId]]));
 */
export async function moveFlowRuns(tx: Tx, moves: ReadonlyMap<string, string>): Promise<void> {
  if (!moves.size) return;
  const doc = JSON.stringify([...moves].map(([m, s]) => ({ m, s })));
  // Locked, so a timer or event step on one of them finishes first (or skips it) and sees it moved.
  const runs = await tx<RunToMove[]>`
    SELECT r.id, r.flow_id AS "flowId", r.exclusive, r.status IN ('waiting', 'awaiting_effect') AS active, x.s AS "to"
    FROM flow_runs r JOIN json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid) ON r.profile_id = x.m
    ORDER BY r.entered_at, r.id
    FOR UPDATE OF r`;
  if (!runs.length) return;
  const survivors = [...new Set(runs.map((r) => r.to))];
  const taken = new Set(
    (
      await tx<{ slot: string }[]>`
        SELECT flow_id || ':' || profile_id AS slot FROM flow_runs
        WHERE profile_id = ANY(${survivors}::uuid[]) AND exclusive AND status IN ('waiting', 'awaiting_effect')`
    ).map((r) => r.slot),
  );
  const ending: RunToMove[] = [];
  for (const r of runs) {
    if (!r.active || !r.exclusive) continue;
    const slot = `${r.flowId}:${r.to}`;
    if (taken.has(slot)) ending.push(r);
    else taken.add(slot);
  }
  if (ending.length) {
    const ids = ending.map((r) => r.id);
    await tx`
      UPDATE flow_runs SET status = 'exited', due = NULL, listen = NULL,
        state = state - 'awaiting' - 'since'
          || jsonb_build_object('endedAt', (extract(epoch FROM now()) * 1000)::bigint,
            'reason', 'merged into a profile already in the flow')
      WHERE id = ANY(${ids}::uuid[])`;
    await tx`
      INSERT INTO flow_steps (run_id, node, iteration, at, type, outcome, reason, decided)
      SELECT id, NULL, NULL, now(), 'end', 'exited', 'merged into a profile already in the flow', false
      FROM unnest(${ids}::uuid[]) AS id`;
  }
  await tx`
    UPDATE flow_runs r SET profile_id = x.s
    FROM json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
    WHERE r.profile_id = x.m`;
}
