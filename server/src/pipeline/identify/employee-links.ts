import type { Tx } from '../../db/index.ts';

// A merged-away profile's links to employees belong to the person it became: they go after the
// survivor's own links (the survivor's lead owner stays the lead), in their order; an employee linked
// to both keeps the survivor's place.

/**
 * Moves the employee links of merged-away profiles (`moves`: merged id → survivor id) to their
 * survivors, in the merge's transaction.
 *
 * @example
 * await moveEmployeeLinks(tx, new Map([[mergedId, survivorId]]));
 */
export async function moveEmployeeLinks(tx: Tx, moves: ReadonlyMap<string, string>): Promise<void> {
  if (!moves.size) return;
  const doc = JSON.stringify([...moves].map(([m, s]) => ({ m, s })));
  // `ends` reads the survivors' links before the delete (one snapshot for the whole statement).
  await tx`
    WITH moves AS (
      SELECT m, s FROM json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
    ),
    ends AS (
      SELECT x.s, coalesce(max(pe.position), -1) AS high
      FROM (SELECT DISTINCT s FROM moves) x
      LEFT JOIN profile_employees pe ON pe.profile_id = x.s
      GROUP BY x.s
    ),
    moved AS (
      DELETE FROM profile_employees pe USING moves x
      WHERE pe.profile_id = x.m
      RETURNING x.s, pe.employee_id, pe.position, pe.linked_at
    )
    INSERT INTO profile_employees (profile_id, employee_id, position, linked_at)
    SELECT m.s, m.employee_id,
      e.high + row_number() OVER (PARTITION BY m.s ORDER BY m.position, m.linked_at, m.employee_id),
      m.linked_at
    FROM moved m JOIN ends e ON e.s = m.s
    ON CONFLICT (profile_id, employee_id) DO NOTHING`;
}
