/**
 * The sample-ratio-mismatch check: are the arms' sizes what the planned split says? A chi-square
 * goodness-of-fit test; p < 0.001 flags a mismatch (GrowthBook's and Optimizely's threshold), which
 * means the assignment or the counting is broken and the comparison cannot be trusted.
 */
import { chiSquareTail } from './distributions.ts';

/** The default p-value under which a split is flagged. */
export const SRM_THRESHOLD = 0.001;

/** The outcome of the check. */
export interface SampleRatioCheck {
  chiSquare: number;
  degreesOfFreedom: number;
  p: number;
  /** p < threshold. */
  mismatch: boolean;
  /** The counts the plan expects for the same total. */
  expected: number[];
}

/**
 * Checks observed arm sizes against planned weights (percentages or any positive weights). An arm
 * planned at 0 that got people is a certain mismatch; arms planned at 0 with nobody are left out.
 *
 * @example
 * sampleRatioMismatch([5000, 5300], [50, 50]); // { p: 0.003, mismatch: false, ... }
 * sampleRatioMismatch([5000, 5400], [50, 50]).mismatch; // true (p ≈ 0.00009)
 */
export function sampleRatioMismatch(
  observed: readonly number[],
  planned: readonly number[],
  threshold = SRM_THRESHOLD,
): SampleRatioCheck {
  if (observed.length !== planned.length || observed.length < 2)
    throw new RangeError('need the same number (≥ 2) of observed counts and planned weights');
  if (observed.some((o) => !Number.isInteger(o) || o < 0) || planned.some((w) => !(w >= 0)))
    throw new RangeError('counts are whole numbers ≥ 0 and weights ≥ 0');
  const total = observed.reduce((a, b) => a + b, 0);
  const weight = planned.reduce((a, b) => a + b, 0);
  if (!(weight > 0)) throw new RangeError('the planned weights add up to 0');
  const expected = planned.map((w) => (total * w) / weight);
  if (observed.some((o, i) => o > 0 && planned[i] === 0))
    return { chiSquare: Number.POSITIVE_INFINITY, degreesOfFreedom: 0, p: 0, mismatch: true, expected };
  const used = planned.map((w, i) => i).filter((i) => planned[i]! > 0);
  const degreesOfFreedom = used.length - 1;
  if (total === 0 || degreesOfFreedom < 1)
    return { chiSquare: 0, degreesOfFreedom: Math.max(0, degreesOfFreedom), p: 1, mismatch: false, expected };
  const chiSquare = used.reduce((s, i) => s + (observed[i]! - expected[i]!) ** 2 / expected[i]!, 0);
  const p = chiSquareTail(chiSquare, degreesOfFreedom);
  return { chiSquare, degreesOfFreedom, p, mismatch: p < threshold, expected };
}
