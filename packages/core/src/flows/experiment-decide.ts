/**
 * The experiment's decision, from aggregate counts the runner keeps (experiment.ts has the node).
 * Pure: the same counts, node and time give the same decision. The runner calls it at each look and
 * keeps the first decided result for good: the sequential test's guarantee (at most `alpha` false
 * winners however often it looks) holds for stopping at the first significant look.
 */
import { conversionRate, type Interval, rateDifference, relativeLift } from '../stats/proportions.ts';
import {
  type ArmSummary,
  conversionArm,
  type SequentialResult,
  sequentialTest,
  valueArm,
} from '../stats/sequential.ts';
import { type SampleRatioCheck, sampleRatioMismatch } from '../stats/srm.ts';
import type { ExperimentNode } from './ast.ts';
import { type Arm, armName, armPercents, type ExperimentStatus } from './experiment.ts';

/** One arm's counts: people assigned in the test whose goal window has closed, and their outcomes. */
export interface ArmCount {
  n: number;
  /** People with at least one goal event in their window. */
  conversions: number;
  /** With a `goal.value`: the sum of each person's summed values, and of their squares. */
  sum?: number;
  sumSquares?: number;
}

/** What the runner counted for one experiment. */
export interface ExperimentCounts {
  /** When the first person was assigned (epoch ms): the deadline runs from it. */
  startedAt: number;
  /** Per variant, in the node's order. */
  variants: ArmCount[];
  control?: ArmCount;
}

/** One arm in the results. */
export interface ArmResult {
  arm: Arm;
  name: string;
  n: number;
  conversions: number;
  /** The conversion rate with its Wilson interval. */
  rate: Interval;
  /** Revenue per person (with a `goal.value`). */
  mean?: number;
}

/** One pairwise comparison `b − a` in the results. */
export interface ArmComparison {
  a: Arm;
  b: Arm;
  /** The always-valid test on the goal metric (confidence sequence, p-value) at the Bonferroni level. */
  test: SequentialResult;
  /** The rate difference with Newcombe's interval and the relative lift (fixed-horizon, for reading). */
  difference: Interval;
  lift: Interval;
}

/** The decision and the numbers behind it (the results API's body). */
export interface ExperimentResult {
  status: ExperimentStatus;
  deadline: number;
  metric: 'conversion' | 'value';
  arms: ArmResult[];
  comparisons: ArmComparison[];
  srm: SampleRatioCheck;
  /** Why it is decided or not, in words. */
  reason: string;
}

const DAY_MS = 86_400_000;

function summary(node: ExperimentNode, c: ArmCount): ArmSummary {
  if (node.goal.value === undefined) return conversionArm(c);
  return valueArm({ n: c.n, sum: c.sum ?? 0, sumSquares: c.sumSquares ?? 0 });
}

/**
 * Decides an experiment from its counts at `now`: a winner when one arm beats every other in the
 * always-valid test (mSPRT, `alpha` split over the pairs by Bonferroni) with at least `minPerArm`
 * people in each arm and no sample ratio mismatch; at or after the deadline without one, the
 * default variant, marked inconclusive; else undecided.
 *
 * @example
 * const r = decideExperiment({ startedAt, variants: [{ n: 5000, conversions: 500 }, { n: 5000, conversions: 650 }] }, node, now);
 * r.status; // { decided: true, winner: 1, inconclusive: false, at: now, reason: '...' }
 */
export function decideExperiment(counts: ExperimentCounts, node: ExperimentNode, now: number): ExperimentResult {
  const arms: { arm: Arm; count: ArmCount }[] = counts.variants.map((count, i) => ({ arm: i, count }));
  if (node.control) arms.push({ arm: 'control', count: counts.control ?? { n: 0, conversions: 0 } });
  if (counts.variants.length !== node.variants.length)
    throw new RangeError(`counts for ${counts.variants.length} variants, the node has ${node.variants.length}`);
  const alpha = node.decide.alpha ?? 0.05;
  const minPerArm = node.decide.minPerArm ?? 100;
  const deadline = counts.startedAt + node.decide.deadlineDays * DAY_MS;
  const pairs = (arms.length * (arms.length - 1)) / 2;
  const level = alpha / pairs;
  const summaries = arms.map((a) => summary(node, a.count));
  const srm = sampleRatioMismatch(
    arms.map((a) => a.count.n),
    armPercents(node),
  );

  const comparisons: ArmComparison[] = [];
  for (let i = 0; i < arms.length; i++)
    for (let j = i + 1; j < arms.length; j++) {
      const a = arms[i]!.count;
      const b = arms[j]!.count;
      comparisons.push({
        a: arms[i]!.arm,
        b: arms[j]!.arm,
        test: sequentialTest(summaries[i]!, summaries[j]!, {
          alpha: level,
          ...(node.decide.tuning ? { tuning: node.decide.tuning } : {}),
        }),
        difference: rateDifference(a, b, 1 - level),
        lift: relativeLift(a, b, 1 - level),
      });
    }

  // An arm wins when every comparison it is in is significant in its favour.
  const beats = (w: number) =>
    comparisons.every((c) => {
      if (c.a !== arms[w]!.arm && c.b !== arms[w]!.arm) return true;
      const sign = c.b === arms[w]!.arm ? 1 : -1;
      return c.test.significant && sign * c.test.difference > 0;
    });
  const ready = arms.every((a) => a.count.n >= minPerArm);
  const best = ready && !srm.mismatch ? arms.findIndex((_, w) => beats(w)) : -1;

  const results: ArmResult[] = arms.map((a, i) => ({
    arm: a.arm,
    name: armName(node, a.arm),
    n: a.count.n,
    conversions: a.count.conversions,
    rate: conversionRate(a.count.conversions, a.count.n),
    ...(node.goal.value !== undefined ? { mean: summaries[i]!.mean } : {}),
  }));
  const metric = node.goal.value === undefined ? 'conversion' : 'value';
  const base = { deadline, metric, arms: results, comparisons, srm } as const;

  if (best >= 0) {
    const w = arms[best]!.arm;
    const worst = Math.max(...comparisons.filter((c) => c.a === w || c.b === w).map((c) => c.test.p));
    const reason = `${armName(node, w)} beats every other arm (always-valid p ≤ ${worst.toPrecision(2)}, level ${level.toPrecision(2)}${pairs > 1 ? ` = ${alpha}/${pairs} pairs` : ''})`;
    return { ...base, status: { decided: true, winner: w, inconclusive: false, at: now, reason }, reason };
  }
  const why = srm.mismatch
    ? `sample ratio mismatch (p = ${srm.p.toPrecision(2)} < 0.001): the split is not what was planned, no winner can be trusted`
    : !ready
      ? `fewer than ${minPerArm} people in an arm`
      : 'no arm beats every other yet';
  if (now >= deadline) {
    const d = node.decide.default ?? 0;
    const reason = `deadline reached: ${why}; the default is used`;
    return { ...base, status: { decided: true, winner: d, inconclusive: true, at: now, reason }, reason };
  }
  return { ...base, status: { decided: false, deadline }, reason: why };
}
