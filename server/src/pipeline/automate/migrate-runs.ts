import { durationMs, type FlowDefinition, moveRun, type NodeType, WAIT_TYPES } from '@cairn/core';
import { DomainError } from '../../infra/errors.ts';
import { type FlowVersion, versionKey } from './catalog.ts';
import { createChanges, type StepKind } from './changes.ts';
import { loadFacts } from './people.ts';
import { type RunnerDeps, step } from './runner.ts';
import { stateOf } from './runs.ts';
import { activeByNode, lockPicked, setVersion, waitingAt, waitingSince } from './version-queries.ts';

// Moving people in flight from one version of a flow to another (a publisher's node map, or a rollback:
// the same call with the versions swapped). Runs stay on the version they entered unless moved here.

/** What to move: the runs of `from` waiting at a node of `map` go to the mapped node of `to`. */
export interface MigrationRequest {
  flowId: string;
  from: number;
  to: number;
  /** Node of `from` → node of `to`. Runs at nodes not in the map stay. */
  map: Record<string, string>;
  /** Only count what would move. */
  dryRun: boolean;
  /** Who asked (`<kind>:<id>`), for the journal. */
  by: string | null;
  /** Why, in words, for the journal. */
  reason: string | null;
}

/** What a migration moved (or, dry, would move) and what stays where it is, and why. */
export interface MigrationReport {
  flowId: string;
  from: number;
  to: number;
  dryRun: boolean;
  /** Per mapped node: how many runs move; `atOnce`: the target does not wait, the run goes on when moved. */
  moves: { from: string; to: string; toType: NodeType; runs: number; atOnce: boolean }[];
  /** Runs that stay on `from`: at a node the map leaves out, or awaiting a webhook's or action's result. */
  stays: { node: string | null; reason: 'unmapped' | 'awaiting_effect'; runs: number }[];
  /** Runs moved by this call (0 when dry; a repeated call moves only those left). */
  moved: number;
  /** Runs that had moved on (to a node the map leaves out, or ended) by the time they were locked. */
  movedOnMeanwhile: number;
}

/** Runs per transaction. */
export const MIGRATE_BATCH = 500;
const MIGRATE: StepKind = 'migrate';

function checkMap(req: MigrationRequest, from: FlowDefinition, to: FlowDefinition): void {
  const issues: { path: string; message: string }[] = [];
  const fromIds = new Set(from.nodes.map((n) => n.id));
  const toIds = new Set(to.nodes.map((n) => n.id));
  for (const [a, b] of Object.entries(req.map)) {
    if (!fromIds.has(a)) issues.push({ path: `map.${a}`, message: `version ${req.from} has no node ${a}` });
    if (!toIds.has(b)) issues.push({ path: `map.${a}`, message: `version ${req.to} has no node ${b}` });
  }
  if (req.from === req.to) issues.push({ path: 'to', message: 'from and to are the same version' });
  if (issues.length) throw new DomainError(400, 'invalid_request', `${issues[0]!.path}: ${issues[0]!.message}`, issues);
}

/**
 * When a run began waiting at its node: `state.since` (a wait for an event, a run moved before), else its
 * journal's `waiting` entry for the visit, else (a plain wait) its due less the wait's duration.
 */
function sinceOf(
  def: FlowDefinition,
  run: { node: string; due: number | null; since?: number },
  journal: number | undefined,
  now: number,
): number {
  if (run.since !== undefined) return run.since;
  if (journal !== undefined) return journal;
  const node = def.nodes.find((n) => n.id === run.node);
  if (node?.type === 'wait' && run.due !== null) return run.due - durationMs(node.duration);
  return now;
}

/**
 * Moves the waiting runs of version `from` at the nodes of `map` onto the mapped nodes of version `to`,
 * or with `dryRun` only counts them. Each run is planned again as if it had entered the new node when it
 * began waiting (a shortened wait re-plans from then; a wait that would be over, or a node that does not
 * wait, goes on now) through the engine's `moveRun`, journaled (`migrated`: versions, nodes, who, why),
 * its effects committed with it. Runs awaiting a webhook's or action's result stay (a result must find
 * the node that asked). In batches of {@link MIGRATE_BATCH} in id order, one transaction each, under the
 * person lock, rows locked without skipping: a run a step holds is waited for, then read again. A run
 * already on `to` is not selected again, so a repeated call resumes where a failed one stopped.
 * 404: no such flow or version; 400: a map naming nodes the versions do not have.
 *
 * @example
 * await migrateRuns(deps, { flowId, from: 1, to: 2, map: { wait_3d: 'wait_1d' }, dryRun: false, by, reason });
 */
export async function migrateRuns(r: RunnerDeps, req: MigrationRequest): Promise<MigrationReport> {
  const versions = await r.catalog.versions(r.sql, [
    { flowId: req.flowId, version: req.from },
    { flowId: req.flowId, version: req.to },
  ]);
  const from = versions.get(versionKey(req.flowId, req.from));
  const to = versions.get(versionKey(req.flowId, req.to));
  if (!from || !to)
    throw new DomainError(404, 'not_found', `flow ${req.flowId} has no version ${from ? req.to : req.from}`);
  checkMap(req, from.def, to.def);
  const report = await preview(r, req, to);
  if (req.dryRun) return report;

  const nodes = Object.keys(req.map);
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const changes = createChanges();
    const batch = await r.sql.begin(async (tx) => {
      const picked = await waitingAt(tx, {
        flowId: req.flowId,
        version: req.from,
        nodes,
        after,
        limit: MIGRATE_BATCH,
      });
      if (!picked.length) return { picked: 0, last: after, moved: 0 };
      const rows = (await lockPicked(tx, picked)).filter(
        (x) => x.version === req.from && x.status === 'waiting' && x.node !== null && x.node in req.map,
      );
      report.movedOnMeanwhile += picked.length - rows.length;
      const journal = await waitingSince(
        tx,
        rows.map((x) => ({ id: x.id, node: x.node!, iteration: x.iteration })),
      );
      const facts = await loadFacts(
        tx,
        r.pii,
        rows.map((x) => x.profileId),
        to.needs,
      );
      const now = r.clock().getTime();
      for (const row of rows) {
        const state = stateOf(row, r.pii);
        const profile = facts.get(row.profileId)!;
        const target = req.map[row.node!]!;
        const since = sinceOf(
          from.def,
          { node: row.node!, due: row.due, since: state.since },
          journal.get(row.id),
          now,
        );
        const result = step(r, to, state, profile, () => moveRun(to.def, state, target, { now, since, profile }));
        const first = result.journal[0];
        if (first?.type === 'migrated')
          first.values = {
            ...first.values,
            from: { version: req.from, node: row.node, iteration: row.iteration },
            to: { version: req.to, node: target, iteration: (result.state.visits[target] ?? 0) - 1 },
            by: req.by,
            ...(req.reason ? { why: req.reason } : {}),
          };
        changes.record(to, state, result, { isNew: false, sourceId: row.sourceId, input: MIGRATE });
      }
      await changes.commit(tx, r, now);
      await setVersion(
        tx,
        rows.map((x) => x.id),
        req.to,
      );
      return { picked: picked.length, last: picked.at(-1)!.id, moved: rows.length };
    });
    changes.count(r);
    report.moved += batch.moved;
    after = batch.last;
    if (batch.picked < MIGRATE_BATCH) break;
  }
  return report;
}

async function preview(r: RunnerDeps, req: MigrationRequest, to: FlowVersion): Promise<MigrationReport> {
  const counts = await activeByNode(r.sql, req.flowId, req.from);
  const report: MigrationReport = {
    flowId: req.flowId,
    from: req.from,
    to: req.to,
    dryRun: req.dryRun,
    moves: [],
    stays: [],
    moved: 0,
    movedOnMeanwhile: 0,
  };
  for (const c of counts) {
    const target = c.node === null ? undefined : req.map[c.node];
    if (c.status === 'awaiting_effect') report.stays.push({ node: c.node, reason: 'awaiting_effect', runs: c.count });
    else if (target === undefined) report.stays.push({ node: c.node, reason: 'unmapped', runs: c.count });
    else {
      const type = to.def.nodes.find((n) => n.id === target)!.type;
      report.moves.push({ from: c.node!, to: target, toType: type, runs: c.count, atOnce: !WAIT_TYPES.has(type) });
    }
  }
  return report;
}
