import { advance, type FlowDefinition } from '@cairn/core';
import { type FlowVersion, versionKey } from './catalog.ts';
import { type Changes, createChanges } from './changes.ts';
import { experimentsFor } from './experiments.ts';
import { loadFacts, unionNeeds } from './people.ts';
import { lockWaitingRuns, waitingRunsOf } from './planner-queries.ts';
import { lockPeople, type RunnerDeps, step } from './runner.ts';
import { stateOf } from './runs.ts';

// Runs waiting at a `wait_until` on a date trait get `{ type: 'replan' }` when an identify event of their
// person arrives (the date may have moved): a date moved earlier fires at its new moment, not at the old
// one. A date moved later needs nothing (at `due` the trait is read again), but the replan also moves
// `due` later, so the timer does not wake the run for nothing. The engine ignores a replan that leaves
// the moment where it was.

const PEOPLE_PER_TX = 100;

/** Whether the run's node waits until a date trait. */
function waitsOnTrait(def: FlowDefinition, node: string): boolean {
  const n = def.nodes.find((x) => x.id === node);
  return n?.type === 'wait_until' && 'trait' in n.until;
}

/**
 * Feeds `replan` to these people's runs that wait until a date trait, under the person lock (as the
 * runner's event steps), one transaction per group of people. Returns how many runs were fed.
 *
 * @example
 * await replanWaits(deps, ['6f1c…']);
 */
export async function replanWaits(r: RunnerDeps, people: readonly string[]): Promise<number> {
  const waiting = await waitingRunsOf(r.sql, people);
  if (!waiting.length) return 0;
  const versions = await r.catalog.versions(
    r.sql,
    waiting.map((w) => ({ flowId: w.flowId, version: w.version })),
  );
  const due = waiting.filter((w) => {
    const v = versions.get(versionKey(w.flowId, w.version));
    return v !== undefined && waitsOnTrait(v.def, w.node);
  });
  if (!due.length) return 0;
  const who = [...new Set(due.map((w) => w.profileId))];
  let fed = 0;
  for (let i = 0; i < who.length; i += PEOPLE_PER_TX) {
    const chunk = new Set(who.slice(i, i + PEOPLE_PER_TX));
    const ids = due.filter((w) => chunk.has(w.profileId)).map((w) => w.id);
    const changes = (await r.sql.begin(async (tx) => {
      const changes = createChanges();
      await lockPeople(tx, [...chunk]);
      const rows = await lockWaitingRuns(tx, ids);
      const used = new Map<string, FlowVersion>();
      for (const row of rows) {
        const v = versions.get(versionKey(row.flowId, row.version));
        if (v && row.node !== null && waitsOnTrait(v.def, row.node)) used.set(row.id, v);
      }
      const facts = await loadFacts(
        tx,
        r.pii,
        rows.filter((x) => used.has(x.id)).map((x) => x.profileId),
        unionNeeds([...used.values()].map((v) => v.needs)),
      );
      const now = r.clock().getTime();
      const ex = await experimentsFor(r, tx, used.values(), now);
      for (const row of rows) {
        const version = used.get(row.id);
        if (!version) continue;
        const state = stateOf(row, r.pii);
        const profile = facts.get(row.profileId)!;
        const result = step(r, version, state, profile, () =>
          advance(version.def, state, { type: 'replan' }, { now, profile, ...ex.ctx(version) }),
        );
        changes.record(version, state, result, { isNew: false, sourceId: row.sourceId, input: 'replan' });
        fed++;
      }
      await changes.commit(tx, r, now);
      return changes;
    })) as Changes;
    changes.count(r);
  }
  return fed;
}
