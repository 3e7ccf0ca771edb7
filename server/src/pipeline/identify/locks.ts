import { createHash } from 'node:crypto';
import type { Tx } from '../../db/index.ts';

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)); class 3 is delivery
// order's (pipeline/deliver/order.ts). Every class in use, one owner each: 1-2 here, 3 delivery order,
// 4 and 6 compute, 5 the outbox drainer, 7 flow people, 8 sends (governance), 9 the experiment sweep,
// 10 rollup keys, 11 points, 12 experiments, 42-43 people per day (measure/rollup-period-people.ts),
// 44-45 trait breakdowns (measure/rollup-traits.ts), 46 the hourly count deltas' fold (measure/rollup.ts).
const IDENTITY = 1;
const PROFILE = 2;

/** The 32-bit lock key of an identity key or profile id; collisions only serialise more than needed. */
export function lockKey(text: string): number {
  return createHash('sha1').update(text).digest().readInt32BE(0);
}

function sortedKeys(texts: Iterable<string>): number[] {
  return [...new Set([...texts].map(lockKey))].sort((a, b) => a - b);
}

/**
 * Thrown when a transaction needs locks it could not take without risking a deadlock: the caller
 * rolls back and retries, taking `keys` (blocking, sorted) up front.
 */
export class NeedsMoreLocks extends Error {
  constructor(readonly keys: ReadonlySet<string>) {
    super(`identity component grew to ${keys.size} identities while locking; retrying`);
  }
}

/**
 * Locks identities for the rest of the transaction, blocking, in sorted key order: every writer takes
 * its blocking identity locks first and sorted, so two writers never wait on each other in a cycle.
 *
 * @example
 * await lockIdentities(tx, ['userId:u1', 'anonymousId:a1']);
 */
export async function lockIdentities(tx: Tx, keys: Iterable<string>): Promise<Set<number>> {
  const sorted = sortedKeys(keys);
  // unnest returns the array's order and the projection runs row by row: locks are taken sorted.
  if (sorted.length) await tx`SELECT pg_advisory_xact_lock(${IDENTITY}::int, k) FROM unnest(${sorted}::int[]) AS k`;
  return new Set(sorted);
}

/**
 * Tries to lock more identities without waiting (they are out of sorted order); false if any is held
 * by another transaction, which then must be retried with {@link NeedsMoreLocks}.
 *
 * @example
 * if (!(await tryLockIdentities(tx, extra, held))) throw new NeedsMoreLocks(all);
 */
export async function tryLockIdentities(tx: Tx, keys: Iterable<string>, held: Set<number>): Promise<boolean> {
  const missing = sortedKeys(keys).filter((k) => !held.has(k));
  if (!missing.length) return true;
  const [row] = await tx<{ ok: boolean }[]>`
    SELECT bool_and(pg_try_advisory_xact_lock(${IDENTITY}::int, k)) AS ok FROM unnest(${missing}::int[]) AS k`;
  if (!row?.ok) return false;
  for (const k of missing) held.add(k);
  return true;
}

/**
 * Locks profiles (blocking, sorted) after all identity locks are held. Writers of a profile's traits
 * that hold disjoint identities of it meet here.
 *
 * @example
 * await lockProfiles(tx, profileIds);
 */
export async function lockProfiles(tx: Tx, ids: Iterable<string>): Promise<void> {
  const sorted = sortedKeys(ids);
  if (sorted.length) await tx`SELECT pg_advisory_xact_lock(${PROFILE}::int, k) FROM unnest(${sorted}::int[]) AS k`;
}
