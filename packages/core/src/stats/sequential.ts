/**
 * An always-valid test of the difference between two arms: the mixture sequential probability ratio
 * test (mSPRT) of Johari, Koomen, Pekelis & Walsh ("Peeking at A/B tests", KDD 2017; "Always valid
 * inference", Operations Research 2022), as Optimizely's Stats Engine and Eppo use it, on the normal
 * approximation of the difference of means (a conversion rate is the mean of 0/1 outcomes).
 *
 * With the difference estimate θ̂ ~ N(θ, v) and a normal mixture θ ~ N(0, τ²) under the
 * alternative, the likelihood ratio against θ = 0 is
 *
 *   Λ = √(v / (v + τ²)) · exp(θ̂² τ² / (2 v (v + τ²)))
 *
 * and under θ = 0 it is a martingale, so by Ville's inequality P(Λ ever reaches 1/α) ≤ α however
 * often one looks. 1/Λ (its running minimum) is the always-valid p-value; inverting the test gives
 * the confidence sequence θ̂ ± √(2 v (v + τ²)/τ² · ln(√(1 + τ²/v) / α)), which is the normal-mixture
 * sequence of Howard, Ramdas, McAuliffe & Sekhon (Annals of Statistics 2021) that GrowthBook uses.
 */
import { zCdf } from './distributions.ts';

/** One arm as the test sees it: the number of people, their mean outcome and its per-person variance. */
export interface ArmSummary {
  n: number;
  mean: number;
  variance: number;
}

/**
 * An arm of 0/1 outcomes (converted or not): mean p, variance p(1 − p).
 *
 * @example
 * conversionArm({ conversions: 130, n: 1000 }); // { n: 1000, mean: 0.13, variance: 0.1131 }
 */
export function conversionArm(a: { conversions: number; n: number }): ArmSummary {
  const mean = a.n ? a.conversions / a.n : 0;
  return { n: a.n, mean, variance: mean * (1 - mean) };
}

/**
 * An arm of values (revenue per person, 0 for those who bought nothing) from running sums: the mean
 * and the sample variance.
 *
 * @example
 * valueArm({ n: 4, sum: 10, sumSquares: 50 }); // { n: 4, mean: 2.5, variance: 8.33 }
 */
export function valueArm(a: { n: number; sum: number; sumSquares: number }): ArmSummary {
  if (a.n < 2) return { n: a.n, mean: a.n ? a.sum / a.n : 0, variance: 0 };
  const mean = a.sum / a.n;
  return { n: a.n, mean, variance: Math.max(0, (a.sumSquares - a.n * mean * mean) / (a.n - 1)) };
}

/** The default tuning: the sample per arm at which the confidence sequence is tightest (GrowthBook's default). */
export const DEFAULT_TUNING = 5_000;

/**
 * The mixture's spread ρ, in units of the per-person standard deviation (τ² = ρ²·(σ²_a + σ²_b)),
 * chosen so that the confidence sequence is tightest at `tuning` people per arm (Howard et al. 2021,
 * eq. 3.7: ρ² = (−2 ln α + ln(1 − 2 ln α)) / n*).
 *
 * @example
 * mixtureRho(0.05, 5000); // 0.0398
 */
export function mixtureRho(alpha: number, tuning = DEFAULT_TUNING): number {
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(1 + l)) / tuning);
}

/** Options of the sequential test. */
export interface SequentialOptions {
  /** The error rate under any number of looks (default 0.05). */
  alpha?: number;
  /** The sample per arm at which the test is most sensitive (default 5,000). */
  tuning?: number;
  /** The always-valid p-value at the previous look: the p-value is the running minimum. */
  previousP?: number;
}

/** The state of an always-valid test at one look. */
export interface SequentialResult {
  /** The difference `b − a` of the means. */
  difference: number;
  /** The confidence sequence at this look (covers the true difference at all looks at once with 1 − α). */
  lower: number;
  upper: number;
  /** The mixture likelihood ratio Λ. */
  likelihoodRatio: number;
  /** The always-valid p-value: min(previousP, 1/Λ). */
  p: number;
  /** p ≤ α: the difference is not 0, in the direction of its sign. */
  significant: boolean;
  alpha: number;
}

/**
 * The mSPRT of `b` against `a` at this look. Stop at the first look where `significant` holds: the
 * chance of ever stopping when the arms do not differ is at most `alpha`, however often one looks.
 *
 * @example
 * const r = sequentialTest(conversionArm({ conversions: 500, n: 5000 }), conversionArm({ conversions: 650, n: 5000 }));
 * r.significant; // true (b is better: r.difference > 0)
 */
export function sequentialTest(a: ArmSummary, b: ArmSummary, options: SequentialOptions = {}): SequentialResult {
  const alpha = options.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha lies between 0 and 1, got ${alpha}`);
  const rho = mixtureRho(alpha, options.tuning ?? DEFAULT_TUNING);
  const difference = b.mean - a.mean;
  const v = a.n && b.n ? a.variance / a.n + b.variance / b.n : 0;
  const tau2 = rho * rho * (a.variance + b.variance);
  const previousP = options.previousP ?? 1;
  if (!(v > 0) || !(tau2 > 0)) {
    // No variance yet (no people, or all outcomes alike): nothing can be concluded.
    return {
      difference,
      lower: Number.NEGATIVE_INFINITY,
      upper: Number.POSITIVE_INFINITY,
      likelihoodRatio: 1,
      p: previousP,
      significant: previousP <= alpha,
      alpha,
    };
  }
  const logLr = 0.5 * Math.log(v / (v + tau2)) + (difference * difference * tau2) / (2 * v * (v + tau2));
  const p = Math.min(previousP, Math.min(1, Math.exp(-logLr)));
  const half = Math.sqrt(((2 * v * (v + tau2)) / tau2) * Math.log(Math.sqrt(1 + tau2 / v) / alpha));
  return {
    difference,
    lower: difference - half,
    upper: difference + half,
    likelihoodRatio: Math.exp(logLr),
    p,
    significant: p <= alpha,
    alpha,
  };
}

/**
 * The fixed-horizon z-test of the same difference (valid for ONE look only): for comparison in
 * reports, never for stopping early.
 *
 * @example
 * fixedHorizonP(conversionArm({ conversions: 100, n: 1000 }), conversionArm({ conversions: 130, n: 1000 })); // 0.035
 */
export function fixedHorizonP(a: ArmSummary, b: ArmSummary): number {
  const v = a.variance / a.n + b.variance / b.n;
  if (!(v > 0)) return 1;
  const z = Math.abs(b.mean - a.mean) / Math.sqrt(v);
  return 2 * (1 - zCdf(z));
}
