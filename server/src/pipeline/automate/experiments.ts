import { createHash } from 'node:crypto';
import {
  type Arm,
  type ArmCount,
  decideExperiment,
  type ExperimentCounts,
  type ExperimentNode,
  type ExperimentResult,
  type ExperimentStatus,
  type FlowDefinition,
  type JsonObject,
  matchEvent,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import type { FlowVersion } from './catalog.ts';
import {
  addCounts,
  type ExperimentKey,
  type ExperimentRow,
  experimentRows,
  insertAssignments,
  lockExperiment,
  maturedPeople,
  saveDecision,
  windowEvents,
} from './experiment-queries.ts';
import type { StepRow } from './runs.ts';

// The runner's side of experiment nodes (packages/core/src/flows/README.md, "Runner duties"): test
// assignments recorded from the journal as it is written; counts kept per arm, each person once, when
// their goal window has closed; the first decision stored for good; every step told each experiment's
// status. Ordering: a step reads the statuses under a shared advisory lock per experiment and a decision
// is stored under the exclusive one, so a person a step held while undecided is committed before the
// decision is, and the sweep that follows the decision (experiment-look.ts) finds them.

// Advisory lock class (stage 4's people: 7): an experiment's status, shared by steps, exclusive to decide.
// Not 8: governance.ts's sends lock is class 8, and a person's key equal to an experiment's would make the
// two wait on each other (classes in use: 1-7, 8 sends, 9 sweep, 10 rollup, 11 points, 12, 42-43 per-day people).
const EXPERIMENT = 12;
const DAY_MS = 86_400_000;
/** People counted per query. */
export const COUNT_BATCH = 1000;

/**
 * The experiment nodes of a definition.
 *
 * @example
 * experimentNodes(def).map((n) => n.id); // ['ab']
 */
export function experimentNodes(def: FlowDefinition): ExperimentNode[] {
  return def.nodes.filter((n): n is ExperimentNode => n.type === 'experiment');
}

const keyText = (k: ExperimentKey) => `${k.flowId}@${k.version}#${k.node}`;
const lockKey = (k: ExperimentKey) =>
  createHash('sha1')
    .update(`experiment:${keyText(k)}`)
    .digest()
    .readInt32BE(0);
const armText = (arm: Arm) => String(arm);
const armOf = (text: string): Arm => (text === 'control' ? 'control' : Number(text));

/**
 * Records the journal's test assignments (`phase: 'test'` at an experiment node) of runs a transaction
 * commits, in that transaction (changes.ts): the person, their arm, when.
 *
 * @example
 * await recordAssignments(tx, [{ version, profileId, steps }]);
 */
export async function recordAssignments(
  tx: Tx,
  runs: readonly { version: Pick<FlowVersion, 'id' | 'version'>; profileId: string; steps: readonly StepRow[] }[],
): Promise<void> {
  const rows = runs.flatMap((r) =>
    r.steps
      .filter((s) => s.type === 'experiment' && s.node !== null && s.detail?.phase === 'test')
      .map((s) => ({
        flowId: r.version.id,
        version: r.version.version,
        node: s.node!,
        profileId: r.profileId,
        arm: armText(s.detail!.arm as Arm),
        assignedAt: s.at,
      })),
  );
  await insertAssignments(tx, rows);
}

/** The counts as stored, shaped for the node (a new row's `{}` is all zeros). */
export function countsOf(node: ExperimentNode, stored: Record<string, unknown>): Omit<ExperimentCounts, 'startedAt'> {
  const zero = (): ArmCount => ({ n: 0, conversions: 0, sum: 0, sumSquares: 0 });
  const given = (stored.variants as ArmCount[] | undefined) ?? [];
  return {
    variants: node.variants.map((_, i) => ({ ...zero(), ...given[i] })),
    ...(node.control ? { control: { ...zero(), ...(stored.control as ArmCount | undefined) } } : {}),
  };
}

/** The status a step is told: the stored decision, or undecided with the deadline. */
export function statusOf(node: ExperimentNode, row: ExperimentRow): ExperimentStatus {
  if (row.decidedArm !== null && row.decidedAt !== null)
    return {
      decided: true,
      winner: armOf(row.decidedArm),
      inconclusive: row.inconclusive ?? false,
      at: row.decidedAt,
      reason: row.decidedReason ?? '',
    };
  return { decided: false, deadline: row.startedAt + node.decide.deadlineDays * DAY_MS };
}

function numberAt(event: Record<string, unknown>, path: string): number {
  let v: unknown = event;
  for (const part of path.split('.')) v = v !== null && typeof v === 'object' ? (v as JsonObject)[part] : undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

/**
 * Counts the experiment's people whose goal window closed by `now` and who are not counted yet, all of
 * them (batches of {@link COUNT_BATCH}), into the stored counts; the caller holds the row's lock.
 * A person converts with an event matching `goal.event` timed within `[assigned, assigned + window]`;
 * with `goal.value`, their matching events' values are summed. Returns the counts and how many it added.
 *
 * @example
 * const { counts, added } = await countMatured(pii, tx, node, row, now);
 */
export async function countMatured(
  pii: Pick<Pii, 'openPayload'>,
  tx: Tx,
  node: ExperimentNode,
  row: ExperimentRow,
  now: number,
): Promise<{ counts: Omit<ExperimentCounts, 'startedAt'>; added: number }> {
  const counts = countsOf(node, row.counts);
  const withinMs = node.goal.withinSeconds * 1000;
  const names = node.goal.event.event === undefined ? undefined : [node.goal.event.event].flat();
  let added = 0;
  for (;;) {
    const people = await maturedPeople(tx, row, now - withinMs, COUNT_BATCH);
    if (!people.length) break;
    const events = await windowEvents(
      tx,
      people.map((p) => ({ profileId: p.profileId, from: p.assignedAt })),
      withinMs,
      names,
    );
    const outcome = new Map<string, { converted: boolean; value: number }>();
    for (const e of events) {
      const event = { ...pii.openPayload(e.payload as JsonObject), timestamp: new Date(e.timestamp).toISOString() };
      if (!matchEvent(node.goal.event, event, now)) continue;
      const o = outcome.get(e.profileId) ?? { converted: true, value: 0 };
      if (node.goal.value !== undefined) o.value += numberAt(event, node.goal.value);
      outcome.set(e.profileId, o);
    }
    for (const p of people) {
      const arm = armOf(p.arm);
      const c = arm === 'control' ? counts.control : counts.variants[arm];
      if (!c) continue;
      const o = outcome.get(p.profileId);
      c.n++;
      if (o) c.conversions++;
      if (node.goal.value !== undefined && o) {
        c.sum = (c.sum ?? 0) + o.value;
        c.sumSquares = (c.sumSquares ?? 0) + o.value * o.value;
      }
    }
    await addCounts(
      tx,
      row,
      counts,
      people.map((p) => p.profileId),
      now,
    );
    added += people.length;
    if (people.length < COUNT_BATCH) break;
  }
  return { counts, added };
}

/**
 * Decides from the counts and stores a decision if there is one (the caller holds the row's lock
 * and, when it may decide, the exclusive advisory lock: {@link lockToDecide}). Returns the result.
 *
 * @example
 * const result = await decideAndStore(tx, node, row, counts, now);
 */
export async function decideAndStore(
  tx: Tx,
  node: ExperimentNode,
  row: ExperimentRow,
  counts: Omit<ExperimentCounts, 'startedAt'>,
  now: number,
): Promise<ExperimentResult> {
  const result = decideExperiment({ startedAt: row.startedAt, ...counts }, node, now);
  const s = result.status;
  if (s.decided)
    await saveDecision(tx, row, { arm: armText(s.winner), at: s.at, inconclusive: s.inconclusive, reason: s.reason });
  return result;
}

/**
 * Takes the exclusive advisory lock of an experiment: waits for the steps that read it undecided to
 * commit (their held people), and makes new steps wait for the decision.
 *
 * @example
 * await lockToDecide(tx, key);
 */
export async function lockToDecide(tx: Tx, k: ExperimentKey): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(${EXPERIMENT}::int, ${lockKey(k)}::int)`;
}

/** The experiments' statuses a transaction steps with. */
export interface StepExperiments {
  /** The step context's part for a run of this version: `{ experiments }`, or nothing. */
  ctx(version: Pick<FlowVersion, 'id' | 'version'> | undefined): { experiments?: Record<string, ExperimentStatus> };
}

const NONE: StepExperiments = { ctx: () => ({}) };

/**
 * Reads the status of every experiment of these versions for the rest of the transaction: under a
 * shared advisory lock each (a decision waits for this transaction; a decision under way is waited
 * for). `deciding`: experiments a run is due at now (the timer's held runs at their deadline): an
 * undecided one whose deadline has come is counted and decided first, under its row lock and the
 * exclusive lock, so the run does not fall back to the default while a winner would be found. Versions
 * without experiment nodes cost nothing.
 *
 * @example
 * const ex = await experimentsFor(deps, tx, versions.values(), now);
 * advance(v.def, state, input, { now, profile, ...ex.ctx(v) });
 */
export async function experimentsFor(
  deps: { pii: Pick<Pii, 'openPayload'> },
  tx: Tx,
  versions: Iterable<FlowVersion | undefined>,
  now: number,
  deciding: readonly ExperimentKey[] = [],
): Promise<StepExperiments> {
  const nodes = new Map<string, { key: ExperimentKey; node: ExperimentNode }>();
  for (const v of versions)
    if (v)
      for (const node of experimentNodes(v.def)) {
        const key = { flowId: v.id, version: v.version, node: node.id };
        nodes.set(keyText(key), { key, node });
      }
  if (!nodes.size) return NONE;
  const asked = new Set(deciding.map(keyText));
  const before = await experimentRows(
    tx,
    [...nodes.values()].filter((x) => asked.has(keyText(x.key))).map((x) => x.key),
  );
  const decide = new Set(
    before
      .filter((row) => {
        const s = statusOf(nodes.get(keyText(row))!.node, row);
        return !s.decided && s.deadline !== undefined && s.deadline <= now;
      })
      .map(keyText),
  );
  // Row locks before advisory locks, each in one order, in every transaction: no cycle.
  const sorted = [...nodes.values()].sort((a, b) => keyText(a.key).localeCompare(keyText(b.key)));
  for (const x of sorted) if (decide.has(keyText(x.key))) await lockExperiment(tx, x.key);
  const locks = sorted
    .map((x) => ({ k: lockKey(x.key), exclusive: decide.has(keyText(x.key)) }))
    .sort((a, b) => a.k - b.k || Number(b.exclusive) - Number(a.exclusive));
  for (const l of locks)
    if (l.exclusive) await tx`SELECT pg_advisory_xact_lock(${EXPERIMENT}::int, ${l.k}::int)`;
    else await tx`SELECT pg_advisory_xact_lock_shared(${EXPERIMENT}::int, ${l.k}::int)`;

  const rows = await experimentRows(
    tx,
    sorted.map((x) => x.key),
  );
  const statuses = new Map<string, Record<string, ExperimentStatus>>();
  for (const row of rows) {
    const { node } = nodes.get(keyText(row))!;
    let status = statusOf(node, row);
    if (decide.has(keyText(row)) && !status.decided) {
      const { counts } = await countMatured(deps.pii, tx, node, row, now);
      status = (await decideAndStore(tx, node, row, counts, now)).status;
    }
    const v = `${row.flowId}@${row.version}`;
    statuses.set(v, { ...statuses.get(v), [row.node]: status });
  }
  return {
    ctx: (version) => {
      const experiments = version && statuses.get(`${version.id}@${version.version}`);
      return experiments ? { experiments } : {};
    },
  };
}
