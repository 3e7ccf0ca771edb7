import type { Tx } from '../../db/index.ts';

// A merged-away profile's points ledger and coupons belong to the person it became: its entries and
// issued coupons move to the survivor (the ledger keeps each entry's time, so the balance of the two is
// the survivor's from then on). An unmerge does not move them back.

/**
 * Moves the points ledger and issued coupons of merged-away profiles (`moves`: merged id → survivor
 * id) to their survivors, in the merge's transaction.
 *
 * @example
 * await movePointsAndCoupons(tx, new Map([[mergedId, survivorId]]));
 */
export async function movePointsAndCoupons(tx: Tx, moves: ReadonlyMap<string, string>): Promise<void> {
  if (!moves.size) return;
  const doc = JSON.stringify([...moves].map(([m, s]) => ({ m, s })));
  await tx`
    UPDATE points_ledger l SET profile_id = x.s
    FROM json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
    WHERE l.profile_id = x.m`;
  await tx`
    UPDATE coupons c SET issued_to = x.s
    FROM json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
    WHERE c.issued_to = x.m`;
}
