import { advance, decideExperiment } from '@cairn/core';
import { type FlowVersion, versionKey } from './catalog.ts';
import { createChanges } from './changes.ts';
import { claimLook, type ExperimentKey, lockExperiment, markSwept, touchLook, unswept } from './experiment-queries.ts';
import { countMatured, decideAndStore, experimentNodes, experimentsFor, lockToDecide } from './experiments.ts';
import { loadFacts } from './people.ts';
import { type RunnerDeps, step } from './runner.ts';
import { stateOf } from './runs.ts';
import { lockPicked, waitingAt } from './version-queries.ts';

// The timer's work for experiments: a look at each undecided one every LOOK_EVERY_MS (count the people
// whose window closed, decide), and once decided, a `replan` for every run held at the node, in batches
// under the person locks (the held people follow the winner at once, not at the deadline).

/** How often an undecided experiment is looked at (on the runtime's clock). */
export const LOOK_EVERY_MS = 30_000;
/** Held runs given the decision per transaction. */
export const SWEEP_BATCH = 500;
// Advisory lock class: one server sweeps an experiment at a time (the decision's class is 8).
const SWEEP = 9;

/**
 * Looks at the experiments due a look and gives decided ones to their held runs. Returns how many
 * runs it moved (the timer runs another pass when that is a full batch).
 *
 * @example
 * await runExperiments(deps);
 */
export async function runExperiments(r: RunnerDeps): Promise<number> {
  for (let looked = 0; looked < 100 && (await lookOnce(r)); looked++);
  let moved = 0;
  for (const k of await unswept(r.sql)) moved += await sweep(r, k);
  return moved;
}

async function versionOf(r: RunnerDeps, k: ExperimentKey): Promise<FlowVersion | undefined> {
  return (await r.catalog.versions(r.sql, [k])).get(versionKey(k.flowId, k.version));
}

/**
 * One look, in one transaction: claims the undecided experiment looked at longest ago (SKIP LOCKED:
 * two servers never count the same people), counts the people whose window closed, decides. A decision
 * is stored under the exclusive lock; a look that finds nothing to decide takes none, so steps are never
 * held up by it. False when no experiment was due a look.
 */
async function lookOnce(r: RunnerDeps): Promise<boolean> {
  return (await r.sql.begin(async (tx) => {
    const now = r.clock().getTime();
    const row = await claimLook(tx, now - LOOK_EVERY_MS);
    if (!row) return false;
    const version = await versionOf(r, row);
    const node = version && experimentNodes(version.def).find((n) => n.id === row.node);
    if (!node) {
      await markSwept(tx, row, now);
      return true;
    }
    const { counts } = await countMatured(r.pii, tx, node, row, now);
    if (decideExperiment({ startedAt: row.startedAt, ...counts }, node, now).status.decided) {
      await lockToDecide(tx, row);
      const { status } = await decideAndStore(tx, node, row, counts, now);
      if (status.decided) r.log.info(`flow ${row.flowId} v${row.version}: experiment ${row.node}: ${status.reason}`);
    }
    await touchLook(tx, row, now);
    return true;
  })) as boolean;
}

/**
 * Gives a decided experiment's held runs the decision: `replan` for each run waiting at the node, in
 * batches in id order, under the person locks, rows locked without skipping; the experiment is marked
 * swept after the last. One server at a time (a try-lock: another server's sweep is left alone).
 */
async function sweep(r: RunnerDeps, k: ExperimentKey): Promise<number> {
  const version = await versionOf(r, k);
  let after = '00000000-0000-0000-0000-000000000000';
  let moved = 0;
  for (;;) {
    const changes = createChanges();
    const batch = (await r.sql.begin(async (tx) => {
      const [lock] = await tx<{ ok: boolean }[]>`
        SELECT pg_try_advisory_xact_lock(${SWEEP}::int, hashtext(${`${k.flowId}@${k.version}#${k.node}`})) AS ok`;
      if (!lock?.ok) return { done: true, moved: 0, last: after };
      const now = r.clock().getTime();
      const picked = await waitingAt(tx, { ...k, nodes: [k.node], after, limit: SWEEP_BATCH });
      if (!picked.length || !version) {
        const row = await lockExperiment(tx, k);
        if (row && row.sweptAt === null) await markSwept(tx, k, now);
        return { done: true, moved: 0, last: after };
      }
      const rows = (await lockPicked(tx, picked)).filter(
        (x) => x.status === 'waiting' && x.version === k.version && x.node === k.node,
      );
      // Facts (and their person locks) before the experiments' locks, as every other step takes them.
      const facts = await loadFacts(
        tx,
        r.pii,
        rows.map((x) => x.profileId),
        version.needs,
        now,
      );
      const ex = await experimentsFor(r, tx, [version], now);
      for (const row of rows) {
        const state = stateOf(row, r.pii);
        const profile = facts.get(row.profileId)!;
        const result = step(r, version, state, profile, () =>
          advance(version.def, state, { type: 'replan' }, { now, profile, ...ex.ctx(version) }),
        );
        changes.record(version, state, result, { isNew: false, sourceId: row.sourceId, input: 'replan' });
      }
      await changes.commit(tx, r, now);
      return { done: false, moved: rows.length, last: picked.at(-1)!.id };
    })) as { done: boolean; moved: number; last: string };
    changes.count(r);
    moved += batch.moved;
    after = batch.last;
    if (batch.done) return moved;
  }
}
