import { compileComputedTrait, compileRule } from '@cairn/core';
import type { Transaction, Tx } from '../../db/index.ts';
import { type HandOff, handOffIds } from '../../jobs/handoff.ts';
import { type Definition, nodeName, readsOf } from './definitions.ts';
import { shareDefinitions } from './locks.ts';
import { deferChanges, INLINE_CHANGE_EVENTS, recordInOrder } from './outbox.ts';
import { STORES } from './store.ts';
import { recordTraitChanges, type TraitChange, watchedComputedTraits } from './trait-changes.ts';

/** Profiles whose membership changed, per definition (`audience:key`). */
export type Changes = Map<string, { entered: string[]; exited: string[] }>;

/** The outcome of applying definitions: the changes and the events recording them. */
export interface ApplyResult {
  changes: Changes;
  /** Change events recorded in the transaction (to hand to fan-out after it commits). */
  eventIds: string[];
  evaluated: number;
  /** Changes whose events went to the outbox (recorded by `drainChanges` after the commit). */
  deferred: number;
  /** Profiles postponed because a recompute held a definition they needed (see `retryPostponed`). */
  postponed: number;
}

/** A result with nothing in it. */
export const emptyResult = (): ApplyResult => ({
  changes: new Map(),
  eventIds: [],
  evaluated: 0,
  deferred: 0,
  postponed: 0,
});

/**
 * Adds one chunk's result to a running total (in loops: a full recompute's lists are too long for push(...)).
 *
 * @example
 * mergeResults(total, await applyDefinitions(tx, defs, opts));
 */
export function mergeResults(into: ApplyResult, r: ApplyResult): void {
  into.evaluated += r.evaluated;
  into.deferred += r.deferred;
  into.postponed += r.postponed;
  for (const id of r.eventIds) into.eventIds.push(id);
  for (const [k, c] of r.changes) {
    const t = into.changes.get(k) ?? { entered: [], exited: [] };
    for (const id of c.entered) t.entered.push(id);
    for (const id of c.exited) t.exited.push(id);
    into.changes.set(k, t);
  }
}

/**
 * Re-evaluates definitions (given in dependency order) and records what changed. A definition is
 * evaluated over `scope.initial(def)` (profile ids, `'all'`, or nothing) plus the profiles whose
 * membership changed in a definition it reads — so a change cascades through audiences of audiences
 * in one pass. Profiles in scope that are no longer live (merged away) leave with reason `merge`.
 *
 * Incremental callers pass `share: true`: the definitions' locks are shared for the transaction, and
 * a definition a full recompute holds is skipped, its profiles noted in `compute_postponed` for
 * `retryPostponed`. A recompute passes nothing: it holds its definitions' locks exclusively already.
 *
 * @example
 * await applyDefinitions(tx, defs, { now, by: 'event', initial: (d) => touched, share: true });
 */
export async function applyDefinitions(
  tx: Transaction,
  defs: readonly Definition[],
  opts: {
    now: Date;
    by: string;
    initial: (d: Definition) => readonly string[] | 'all' | null;
    share?: boolean;
    /** Hands the recorded change events over (`memberships.changed`) in this transaction (none: nobody hears of them). */
    handOff?: HandOff;
  },
): Promise<ApplyResult> {
  const changes: Changes = new Map();
  const eventIds: string[] = [];
  let evaluated = 0;
  let deferred = 0;
  const busy = opts.share ? await shareDefinitions(tx, mayEvaluate(defs, opts.initial)) : new Set<string>();
  const postponed = new Set<string>();
  let watched: Set<string> | undefined;
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
    if (busy.has(nodeName(def.kind, def.key))) {
      for (const id of scope ?? []) postponed.add(id);
      continue;
    }
    evaluated++;
    if (def.kind === 'computed') {
      const changed = await applyComputed(tx, def, scope, opts.now);
      if (!changed.length) continue;
      changes.set(nodeName(def.kind, def.key), { entered: changed.map((c) => c.id), exited: [] });
      // Changes a live flow's trait_changed trigger waits for are recorded as events (trait-changes.ts).
      watched ??= await watchedComputedTraits(tx);
      if (watched.has(def.key))
        for (const id of await recordTraitChanges(tx, def.key, changed, opts.now, opts.by)) eventIds.push(id);
      continue;
    }
    const store = STORES[def.kind];
    const truth = compileRule(def.rule, { now: opts.now }).truth(scope).render();
    const diff = await store.apply(tx, def.key, truth, scope, opts.now, opts.by);
    const [entered, exitedNow] = [diff.entered, diff.exited];
    if (entered.length || exitedNow.length || diff.gone.length)
      changes.set(nodeName(def.kind, def.key), { entered, exited: [...exitedNow, ...diff.gone] });
    if (entered.length + exitedNow.length > INLINE_CHANGE_EVENTS) {
      // A large diff (a full recompute): its change events are recorded after it commits, from the outbox.
      await deferChanges(tx, def, 'enter', entered, opts.now, opts.by);
      await deferChanges(tx, def, 'exit', exitedNow, opts.now, opts.by);
      deferred += entered.length + exitedNow.length;
      continue;
    }
    // Appended in a loop: a cascade can change many profiles, too many arguments for push(...).
    for (const id of await recordInOrder(tx, def, 'enter', entered, opts.now, opts.by)) eventIds.push(id);
    for (const id of await recordInOrder(tx, def, 'exit', exitedNow, opts.now, opts.by)) eventIds.push(id);
  }
  if (postponed.size) await postpone(tx, [...postponed], opts.by);
  // In the transaction that recorded them: a change event recorded is a change event handed over. After
  // the commit, a crash (or a failed send) would leave it recorded, its membership changed, and no
  // retry would record it again.
  if (eventIds.length && opts.handOff) await handOffIds(opts.handOff, tx, 'memberships.changed', eventIds);
  return { changes, eventIds, evaluated, deferred, postponed: postponed.size };
}

/**
 * The definitions a pass may evaluate: those with an initial scope and, through the cascade, those reading them
 * (`defs` in dependency order). Only their locks are shared: a pass holds few advisory locks beside its profiles'.
 */
function mayEvaluate(defs: readonly Definition[], initial: (d: Definition) => unknown): string[] {
  const names = new Set<string>();
  for (const d of defs)
    if (initial(d) !== null || readsOf(d).some((r) => names.has(r))) names.add(nodeName(d.kind, d.key));
  return [...names];
}

/** Notes profiles to re-evaluate once the recompute holding a definition they needed commits. */
async function postpone(tx: Tx, ids: readonly string[], by: string): Promise<void> {
  await tx`INSERT INTO compute_postponed (profile_id, by) SELECT p, ${by} FROM unnest(${ids as string[]}::uuid[]) AS p`;
}

/**
 * Recomputes a computed trait's values over a scope and stores those that changed (and removes the
 * values of profiles that no longer have one). Returns the profiles whose value changed with the value
 * before and after, so rules reading the trait re-evaluate them and flows can be told.
 */
async function applyComputed(
  tx: Tx,
  def: Extract<Definition, { kind: 'computed' }>,
  scope: readonly string[] | undefined,
  now: Date,
): Promise<TraitChange[]> {
  const values = compileComputedTrait(def.computed, { now }).values(scope);
  const { text, values: params } = values.render();
  // The comparison happens in SQL: one statement, whatever the scope's size (a full recompute too).
  // `unsafe` because the compiler (packages/core, no driver) renders its own parameterised text;
  // every value stays a bound parameter.
  // `old` reads the values as they were before this statement (one snapshot for every part of it).
  const scoped = scope ? `AND c.profile_id = ANY($${params.length + 3}::uuid[])` : '';
  const changed = await tx.unsafe<TraitChange[]>(
    `WITH fresh AS (${text}),
     old AS (SELECT c.profile_id, c.value FROM computed_trait_values c WHERE c.key = $${params.length + 1} ${scoped}),
     upserted AS (
       INSERT INTO computed_trait_values AS c (profile_id, key, value, computed_at)
       SELECT f.id::uuid, $${params.length + 1}, f.v, $${params.length + 2}::timestamptz FROM fresh f
       ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at
       WHERE c.value IS DISTINCT FROM excluded.value
       RETURNING c.profile_id, c.value),
     removed AS (
       DELETE FROM computed_trait_values c
       WHERE c.key = $${params.length + 1}
         ${scoped}
         AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.id::uuid = c.profile_id)
       RETURNING c.profile_id)
     SELECT u.profile_id::text AS id, o.value AS "from", u.value AS "to"
     FROM upserted u LEFT JOIN old o ON o.profile_id = u.profile_id
     UNION ALL
     SELECT r.profile_id::text, o.value, NULL FROM removed r LEFT JOIN old o ON o.profile_id = r.profile_id`,
    [...params, def.key, now.toISOString(), ...(scope ? [scope] : [])] as never[],
  );
  return changed;
}
