/**
 * The `experiment` node: test on a sample, then send the winner. A person's place is decided by
 * hashes (as a split's): whether they are in the sample, and which arm (variant or control) they
 * get. The decision itself needs everyone's outcomes, so it is not made here: the runner counts the
 * arms, calls `decideExperiment` (experiment-decide.ts) and passes each experiment's status in the
 * step context (`ctx.experiments[nodeId]`). Held people wait until the deadline; when the runner
 * decides, it feeds them `{ type: 'replan' }` and they follow the winner.
 */
import type { ExperimentNode } from './ast.ts';
import type { Arm, ExperimentStatus } from './experiment-types.ts';
import { SPLIT_BUCKETS, splitBucket, splitPath } from './split.ts';
import type { Outcome, Step } from './state.ts';
import { localIso } from './time.ts';
import type { FlowIssue } from './validate-types.ts';

export type { Arm, ExperimentStatus } from './experiment-types.ts';

/** Where a person stands in an experiment. */
export interface Assignment {
  /** In the test sample (while undecided). */
  sampled: boolean;
  /** The arm they get if they are in the sample. */
  arm: Arm;
  sampleBucket: number;
  armBucket: number;
}

const DAY_MS = 86_400_000;

/** The shares of the arms: the variants', then the control's. */
export function armPercents(node: ExperimentNode): number[] {
  return [...node.variants.map((v) => v.percent), ...(node.control ? [node.control.percent] : [])];
}

/**
 * A person's place in an experiment: two independent hashes of (flow, node, profile), one for the
 * sample and one for the arm (the node id gets a suffix no node id can have), so that the sample
 * share and the arm shares do not depend on each other.
 *
 * @example
 * experimentAssignment('flow-1', node, 'profile-1'); // { sampled: true, arm: 1, sampleBucket: 412, armBucket: 7720 }
 */
export function experimentAssignment(flowId: string, node: ExperimentNode, profileId: string): Assignment {
  const sampleBucket = splitBucket(flowId, node.id, profileId);
  const armBucket = splitBucket(flowId, `${node.id}:arm`, profileId);
  const index = splitPath(armBucket, armPercents(node));
  return {
    sampled: sampleBucket < Math.round(node.sample * 100),
    arm: index < node.variants.length ? index : 'control',
    sampleBucket,
    armBucket,
  };
}

/**
 * The outcome an arm takes: `variant:<i>` or `control`.
 *
 * @example
 * armOutcome(1); // 'variant:1'
 */
export function armOutcome(arm: Arm): string {
  return arm === 'control' ? 'control' : `variant:${arm}`;
}

/**
 * The arm's name for people: the variant's name, or "control".
 *
 * @example
 * armName(node, 0); // 'variant 0 "Short subject"'
 */
export function armName(node: ExperimentNode, arm: Arm): string {
  return arm === 'control' ? 'control (holdout)' : `variant ${arm} ${JSON.stringify(node.variants[arm]?.name ?? '')}`;
}

/**
 * A person of the test's control group stays held out once the test has decided (and at the deadline's
 * default): never sent the winner, so the lift of what is sent can still be measured against them. The
 * group is the people whose hashes put them in the sample and in the control (those the test assigned
 * to it, and later entrants with the same hashes: the same share of everyone), so the holdout keeps its
 * people on every re-entry.
 */
function holdout(node: ExperimentNode, step: Step, sending: Arm): Outcome | undefined {
  if (!node.control || sending === 'control') return undefined;
  const a = experimentAssignment(step.state.flowId, node, step.state.profileId);
  if (!a.sampled || a.arm !== 'control') return undefined;
  return {
    go: armOutcome('control'),
    reason: `in the control group (holdout): not sent ${armName(node, sending)}`,
    values: { phase: 'holdout', arm: 'control', sampleBucket: a.sampleBucket, armBucket: a.armBucket },
  };
}

function winner(node: ExperimentNode, step: Step, status: ExperimentStatus & { decided: true }): Outcome {
  const held = holdout(node, step, status.winner);
  if (held) return held;
  return {
    go: armOutcome(status.winner),
    reason: `${status.inconclusive ? 'inconclusive, default' : 'the winner'}: ${armName(node, status.winner)} (${status.reason})`,
    values: { phase: 'winner', arm: status.winner, inconclusive: status.inconclusive },
  };
}

function deadlineOf(node: ExperimentNode, step: Step): number {
  const status = step.experiments?.[node.id];
  return status && !status.decided && status.deadline !== undefined
    ? status.deadline
    : step.now + node.decide.deadlineDays * DAY_MS;
}

/**
 * The node's handler (registered in nodes.ts): decided → the winner; in the sample → the person's
 * arm (the runner counts these from the journal: `values.phase = 'test'`); else wait for the
 * decision, at most until the deadline.
 */
export const experimentHandler = {
  run(node: ExperimentNode, step: Step): Outcome {
    const status = step.experiments?.[node.id];
    if (status?.decided) return winner(node, step, status);
    const a = experimentAssignment(step.state.flowId, node, step.state.profileId);
    if (a.sampled)
      return {
        go: armOutcome(a.arm),
        reason: `in the test sample (bucket ${a.sampleBucket} < ${Math.round(node.sample * 100)} of ${SPLIT_BUCKETS}): ${armName(node, a.arm)}`,
        values: { phase: 'test', arm: a.arm, sampleBucket: a.sampleBucket, armBucket: a.armBucket },
      };
    const due = deadlineOf(node, step);
    return {
      wait: { due },
      reason: `not in the ${node.sample}% test sample: held until the experiment decides, at most until ${localIso(due, step.zone.zone)}`,
      values: { phase: 'held', sampleBucket: a.sampleBucket },
    };
  },
  /** The deadline came: the decision if there is one, else the default variant, inconclusive. */
  due(node: ExperimentNode, step: Step): Outcome {
    const status = step.experiments?.[node.id];
    if (status?.decided) return winner(node, step, status);
    if (status && status.deadline !== undefined && status.deadline > step.now)
      return {
        wait: { due: status.deadline },
        reason: `still undecided: held until ${localIso(status.deadline, step.zone.zone)}`,
        values: { phase: 'held' },
      };
    const arm = node.decide.default ?? 0;
    const held = holdout(node, step, arm);
    if (held) return held;
    return {
      go: armOutcome(arm),
      reason: `inconclusive, default: ${armName(node, arm)} (no decision by the deadline)`,
      values: { phase: 'winner', arm, inconclusive: true },
    };
  },
  /** The runner decided (a `replan` input): held people follow the winner; undecided, nothing moves. */
  replan(node: ExperimentNode, step: Step): Outcome | undefined {
    const status = step.experiments?.[node.id];
    return status?.decided ? winner(node, step, status) : undefined;
  },
};

/** A decision scripted for a simulation: at `at` (epoch ms or ISO-8601), `winner` (inconclusive: the default at the deadline). */
export interface ScriptedDecision {
  at: number | string;
  winner: Arm;
  inconclusive?: boolean;
}

/**
 * The step context's `experiments` at `now` from scripted decisions (simulate()): undecided with
 * the decision time as deadline before it, decided from it on.
 *
 * @example
 * scriptedExperiments({ ab: { at: '2026-03-08T00:00:00Z', winner: 1 } }, now); // { experiments: { ab: { decided: false, deadline: ... } } }
 */
export function scriptedExperiments(
  script: Record<string, ScriptedDecision> | undefined,
  now: number,
): { experiments?: Record<string, ExperimentStatus> } {
  if (!script) return {};
  const experiments: Record<string, ExperimentStatus> = {};
  for (const [id, d] of Object.entries(script)) {
    const at = typeof d.at === 'number' ? d.at : Date.parse(d.at);
    experiments[id] =
      now < at
        ? { decided: false, deadline: at }
        : { decided: true, winner: d.winner, inconclusive: d.inconclusive ?? false, at, reason: 'scripted decision' };
  }
  return { experiments };
}

/**
 * The meaning checks of an experiment node: the shares add up to 100 in hundredths, the default is
 * a variant, the goal window fits in the deadline.
 *
 * @example
 * experimentIssues(node, 3); // [{ node: 'ab', path: 'nodes.3.variants', message: 'percentages add up to 90, not 100' }]
 */
export function experimentIssues(node: ExperimentNode, i: number): FlowIssue[] {
  const issues: FlowIssue[] = [];
  const add = (field: string, message: string) => issues.push({ node: node.id, path: `nodes.${i}.${field}`, message });
  const hundredths = armPercents(node).map((p) => p * 100);
  if (hundredths.some((h) => Math.abs(h - Math.round(h)) > 1e-9))
    add('variants', 'percentages have at most two decimals');
  const sum = hundredths.reduce((a, b) => a + Math.round(b), 0);
  if (sum !== 10_000)
    add(
      'variants',
      `the variants'${node.control ? ' and the control’s' : ''} percentages add up to ${sum / 100}, not 100`,
    );
  if (node.variants.length + (node.control ? 1 : 0) < 2)
    add('variants', 'an experiment needs two arms: two variants, or a variant and a control');
  const names = node.variants.map((v) => v.name);
  if (new Set(names).size !== names.length) add('variants', 'variant names must differ');
  const d = node.decide.default ?? 0;
  if (d >= node.variants.length) add('decide.default', `no variant ${d}: there are ${node.variants.length}`);
  if (node.goal.withinSeconds >= node.decide.deadlineDays * 86_400)
    add('goal.withinSeconds', 'the goal window must be shorter than the deadline, or no outcome is known before it');
  return issues;
}
