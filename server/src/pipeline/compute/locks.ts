import type { Tx } from '../../db/index.ts';
import { lockKey } from '../identify/locks.ts';

// Advisory lock class of stage 3 (identify uses 1 and 2, delivery order 3, the outbox drainer 5): one profile's
// memberships are decided by one transaction at a time, evaluated after the lock so it reads the latest committed events.
const COMPUTE = 4;

/**
 * Locks profiles for stage 3 for the rest of the transaction (sorted: no deadlock between workers).
 *
 * @example
 * await lockProfiles(tx, ids);
 */
export async function lockProfiles(tx: Tx, ids: readonly string[]): Promise<void> {
  const keys = [...new Set(ids.map((id) => lockKey(`compute:${id}`)))].sort((a, b) => a - b);
  if (keys.length) await tx`SELECT pg_advisory_xact_lock(${COMPUTE}::int, k) FROM unnest(${keys}::int[]) AS k`;
}
