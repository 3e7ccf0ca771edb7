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

// Class 6: one lock per definition. A full recompute holds it exclusively for the definitions it writes; incremental
// work (events, sweeps) tries it shared per definition and, when a recompute holds it, postpones those profiles for
// that definition instead of waiting (compute_postponed). Waiting would deadlock: both sides insert the same
// (definition, profile) rows in different orders.
const DEFINITION = 6;

/**
 * Locks definitions (`audience:key` names) exclusively for the rest of the transaction, in sorted order.
 *
 * @example
 * await lockDefinitions(tx, ['audience:vip', 'audience:vip_de']);
 */
export async function lockDefinitions(tx: Tx, names: readonly string[]): Promise<void> {
  const keys = [...new Set(names.map((n) => lockKey(`definition:${n}`)))].sort((a, b) => a - b);
  if (keys.length) await tx`SELECT pg_advisory_xact_lock(${DEFINITION}::int, k) FROM unnest(${keys}::int[]) AS k`;
}

/**
 * Tries to share the locks of definitions for the rest of the transaction (one statement, never waiting); returns
 * the names a recompute holds (or waits for), which the caller must not evaluate now.
 *
 * @example
 * const busy = await shareDefinitions(tx, defs.map((d) => nodeName(d.kind, d.key)));
 */
export async function shareDefinitions(tx: Tx, names: readonly string[]): Promise<Set<string>> {
  if (!names.length) return new Set();
  const rows = await tx<{ i: number; ok: boolean }[]>`
    SELECT i::int, pg_try_advisory_xact_lock_shared(${DEFINITION}::int, k) AS ok
    FROM unnest(${names.map((n) => lockKey(`definition:${n}`))}::int[]) WITH ORDINALITY AS u (k, i)`;
  return new Set(rows.filter((r) => !r.ok).map((r) => names[r.i - 1]!));
}
