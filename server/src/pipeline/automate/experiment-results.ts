import {
  type ArmComparison,
  type ArmResult,
  decideExperiment,
  type ExperimentNode,
  type ExperimentStatus,
  minimumDetectableEffect,
  type SampleRatioCheck,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { experimentsOfFlow } from './experiment-queries.ts';
import { countsOf, experimentNodes, statusOf } from './experiments.ts';
import { flowVersions } from './queries.ts';

// The results API's numbers (GET /api/flows/:id/experiments): the stored counts read through the
// core's decideExperiment, the stored decision as the status (a decision is never recomputed), and
// the minimum detectable effect for the people counted so far.

/** One experiment's results. */
export interface ExperimentReport {
  version: number;
  node: string;
  name: string | null;
  startedAt: number;
  deadline: number;
  status: ExperimentStatus;
  metric: 'conversion' | 'value';
  arms: ArmResult[];
  comparisons: ArmComparison[];
  srm: SampleRatioCheck;
  /** Why it is decided or not (the stored reason once decided). */
  reason: string;
  /** People in the test whose goal window is still open (not counted yet). */
  pending: number;
  /**
   * The smallest upward change of the baseline arm's rate the counts so far detect with 80 % power at the
   * decision's level (fixed-horizon: a guide to how far the test is from finding such a change); null
   * before the baseline has a rate strictly between 0 and 1.
   */
  minimumDetectableEffect: { baseline: number; perGroup: number; absolute: number; relative: number } | null;
  lastLookAt: number | null;
}

function mde(
  node: ExperimentNode,
  arms: readonly ArmResult[],
  pairs: number,
): ExperimentReport['minimumDetectableEffect'] {
  const base = arms.find((a) => a.arm === (node.control ? 'control' : (node.decide.default ?? 0)));
  const perGroup = Math.min(...arms.map((a) => a.n));
  if (!base || !(base.rate.estimate > 0 && base.rate.estimate < 1) || perGroup < 2) return null;
  const alpha = (node.decide.alpha ?? 0.05) / pairs;
  const m = minimumDetectableEffect({ baseline: base.rate.estimate, perGroup, alpha });
  return Number.isFinite(m.target)
    ? { baseline: base.rate.estimate, perGroup, absolute: m.absolute, relative: m.relative }
    : null;
}

/**
 * A flow's experiments (every version, newest first) with their results at `now`.
 *
 * @example
 * const reports = await experimentResults(sql, 'flw_1', Date.now());
 */
export async function experimentResults(sql: Tx, flowId: string, now: number): Promise<ExperimentReport[]> {
  const rows = await experimentsOfFlow(sql, flowId);
  if (!rows.length) return [];
  const defs = await flowVersions(
    sql,
    [...new Set(rows.map((r) => r.version))].map((version) => ({ id: flowId, version })),
  );
  const pending = await sql<{ version: number; node: string; count: number }[]>`
    SELECT version, node, count(*)::int AS count
    FROM flow_experiment_people
    WHERE flow_id = ${flowId} AND NOT counted
    GROUP BY 1, 2`;
  const reports: ExperimentReport[] = [];
  for (const row of rows) {
    const def = defs.find((d) => d.version === row.version)?.definition;
    const node = def && experimentNodes(def).find((n) => n.id === row.node);
    if (!node) continue;
    const counts = countsOf(node, row.counts);
    const result = decideExperiment({ startedAt: row.startedAt, ...counts }, node, now);
    const status = statusOf(node, row);
    const armCount = node.variants.length + (node.control ? 1 : 0);
    reports.push({
      version: row.version,
      node: row.node,
      name: node.name ?? null,
      startedAt: row.startedAt,
      deadline: result.deadline,
      status,
      metric: result.metric,
      arms: result.arms,
      comparisons: result.comparisons,
      srm: result.srm,
      reason: status.decided ? status.reason : result.reason,
      pending: pending.find((p) => p.version === row.version && p.node === row.node)?.count ?? 0,
      minimumDetectableEffect: mde(node, result.arms, (armCount * (armCount - 1)) / 2),
      lastLookAt: row.lastLookAt,
    });
  }
  return reports;
}
