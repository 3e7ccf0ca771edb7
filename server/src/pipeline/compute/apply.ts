import type { Tx } from '../../db/index.ts';
import { lockKey } from '../identify/locks.ts';
import { type Definition, nodeName, readsOf } from './definitions.ts';
import { truthOf } from './evaluate.ts';
import { recordChangeEvents, STORES } from './store.ts';

// Advisory lock class of stage 3 (identify uses 1 and 2): one profile's memberships are decided by
// one transaction at a time, evaluated after the lock so it reads the latest committed events.
const COMPUTE = 3;

/** Profiles whose membership changed, per definition (`audience:key`). */
export type Changes = Map<string, { entered: string[]; exited: string[] }>;

/** The outcome of applying definitions: the changes and the events recording them. */
export interface ApplyResult {
  changes: Changes;
  eventIds: string[];
  evaluated: number;
}

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

/**
 * Re-evaluates definitions (given in dependency order) and records what changed. A definition is
 * evaluated over `scope.initial(def)` (profile ids, `'all'`, or nothing) plus the profiles whose
 * membership changed in a definition it reads — so a change cascades through audiences of audiences
 * in one pass. Profiles in scope that are no longer live (merged away) leave with reason `merge`.
 *
 * @example
 * await applyDefinitions(tx, defs, { now, by: 'event', initial: (d) => touched });
 */
export async function applyDefinitions(
  tx: Tx,
  defs: readonly Definition[],
  opts: { now: Date; by: string; initial: (d: Definition) => readonly string[] | 'all' | null },
): Promise<ApplyResult> {
  const changes: Changes = new Map();
  const eventIds: string[] = [];
  let evaluated = 0;
  for (const def of defs) {
    const initial = opts.initial(def);
    const cascaded = new Set<string>();
    for (const read of readsOf(def)) {
      const c = changes.get(read);
      if (c) for (const id of [...c.entered, ...c.exited]) cascaded.add(id);
    }
    if (initial === null && !cascaded.size) continue;
    const scope = initial === 'all' ? undefined : [...new Set([...(initial ?? []), ...cascaded])];
    if (scope && !scope.length) continue;
    evaluated++;
    const store = STORES[def.kind];
    const [truth, current] = await Promise.all([
      truthOf(tx, def.rule, { now: opts.now, profileIds: scope }),
      store.current(tx, def.key, scope),
    ]);
    const shouldEnter = [...truth].filter(([id, member]) => member && !current.has(id)).map(([id]) => id);
    const shouldExit = [...current].filter((id) => truth.get(id) !== true);
    const gone = shouldExit.filter((id) => !truth.has(id));
    const entered = await store.enter(tx, def.key, shouldEnter, opts.now, opts.by, 'rule');
    const exitedNow = await store.exit(
      tx,
      def.key,
      shouldExit.filter((id) => truth.has(id)),
      opts.now,
      opts.by,
      'rule',
    );
    // Merged-away profiles leave quietly: the survivor is evaluated on its own and carries on.
    const exitedGone = await store.exit(tx, def.key, gone, opts.now, 'merge', 'merged into another profile');
    if (entered.length || exitedNow.length || exitedGone.length)
      changes.set(nodeName(def.kind, def.key), { entered, exited: [...exitedNow, ...exitedGone] });
    eventIds.push(
      ...(await recordChangeEvents(tx, def, 'enter', entered, opts.now, opts.by)),
      ...(await recordChangeEvents(tx, def, 'exit', exitedNow, opts.now, opts.by)),
    );
  }
  return { changes, eventIds, evaluated };
}
