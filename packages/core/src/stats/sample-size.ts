/**
 * How many people an A/B test of conversion rates needs, and what it can detect with a given number:
 * the normal-approximation power of the two-sided two-proportion z-test (Fleiss, Levin & Paik,
 * "Statistical Methods for Rates and Proportions", 3rd ed., 2003, eq. 4.14 without continuity
 * correction; R's `power.prop.test` solves the same equation).
 *
 *   n = (z₁₋α/₂ · √(2 p̄ q̄) + z₁₋β · √(p₁q₁ + p₂q₂))² / (p₂ − p₁)²,  p̄ = (p₁ + p₂)/2
 *
 * These are fixed-horizon numbers: a sequential (always-valid) test needs somewhat more people for
 * the same power, in exchange for being allowed to stop early (see README.md).
 */
import { zCdf, zQuantile } from './distributions.ts';

/** What a sample-size question fixes. */
export interface PowerPlan {
  /** The control's conversion rate, 0 < baseline < 1. */
  baseline: number;
  /** Two-sided significance level (default 0.05). */
  alpha?: number;
  /** The chance to detect the effect when it is there (default 0.8). */
  power?: number;
}

function checkPlan(p: PowerPlan): { alpha: number; power: number } {
  const alpha = p.alpha ?? 0.05;
  const power = p.power ?? 0.8;
  if (!(p.baseline > 0 && p.baseline < 1)) throw new RangeError(`baseline lies between 0 and 1, got ${p.baseline}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha lies between 0 and 1, got ${alpha}`);
  if (!(power > 0 && power < 1)) throw new RangeError(`power lies between 0 and 1, got ${power}`);
  return { alpha, power };
}

/**
 * The power of the two-sided test with `n` people per group to tell `p2` from `p1` (the main tail,
 * as `power.prop.test` with `strict = FALSE`).
 *
 * @example
 * powerOf(50, 0.5, 0.75); // 0.740 (R's power.prop.test example)
 */
export function powerOf(n: number, p1: number, p2: number, alpha = 0.05): number {
  const za = zQuantile(1 - alpha / 2);
  const pooled = Math.sqrt(((p1 + p2) * (2 - p1 - p2)) / 2);
  const spread = Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return zCdf((Math.sqrt(n) * Math.abs(p2 - p1) - za * pooled) / spread);
}

/**
 * People needed per group to detect a change of the baseline rate by `mde`: absolute (0.01 =
 * one percentage point) or, with `relative: true`, a share of the baseline (0.2 = +20 %).
 *
 * @example
 * sampleSize({ baseline: 0.05, mde: 0.01 }); // { perGroup: 8158, target: 0.06, ... }
 * sampleSize({ baseline: 0.05, mde: 0.2, relative: true }).perGroup; // 8158 (the same 5 % → 6 %)
 */
export function sampleSize(plan: PowerPlan & { mde: number; relative?: boolean }): {
  perGroup: number;
  exact: number;
  baseline: number;
  target: number;
  alpha: number;
  power: number;
} {
  const { alpha, power } = checkPlan(plan);
  const p1 = plan.baseline;
  const p2 = plan.relative ? p1 * (1 + plan.mde) : p1 + plan.mde;
  if (!(p2 > 0 && p2 < 1) || p2 === p1)
    throw new RangeError(`the target rate ${p2} must lie between 0 and 1 and differ from the baseline`);
  const za = zQuantile(1 - alpha / 2);
  const zb = zQuantile(power);
  const pbar = (p1 + p2) / 2;
  const root = za * Math.sqrt(2 * pbar * (1 - pbar)) + zb * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  const exact = (root * root) / ((p2 - p1) * (p2 - p1));
  return { perGroup: Math.ceil(exact), exact, baseline: p1, target: p2, alpha, power };
}

/**
 * The smallest upward change of the baseline rate that `perGroup` people per group detect with the
 * given power (solved by bisection on `powerOf`); `target` is NaN when no rate up to 100 % is
 * detectable.
 *
 * @example
 * minimumDetectableEffect({ baseline: 0.05, perGroup: 1000 }); // { absolute: 0.031, relative: 0.62, target: 0.081, ... }
 */
export function minimumDetectableEffect(plan: PowerPlan & { perGroup: number }): {
  absolute: number;
  relative: number;
  target: number;
  alpha: number;
  power: number;
} {
  const { alpha, power } = checkPlan(plan);
  if (!(plan.perGroup > 0)) throw new RangeError(`perGroup must be above 0, got ${plan.perGroup}`);
  const p1 = plan.baseline;
  let lo = p1;
  let hi = 1 - 1e-12;
  if (powerOf(plan.perGroup, p1, hi, alpha) < power)
    return { absolute: Number.NaN, relative: Number.NaN, target: Number.NaN, alpha, power };
  for (let i = 0; i < 100 && hi - lo > 1e-12; i++) {
    const mid = (lo + hi) / 2;
    if (powerOf(plan.perGroup, p1, mid, alpha) < power) lo = mid;
    else hi = mid;
  }
  return { absolute: hi - p1, relative: (hi - p1) / p1, target: hi, alpha, power };
}
