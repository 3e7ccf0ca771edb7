/**
 * The distributions the statistics need, from stdlib (`@stdlib/stats-base-dists-*`: typed, tested
 * against reference implementations, maintained): nothing here approximates a distribution by hand.
 */
import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';

/**
 * The standard normal quantile Φ⁻¹(p).
 *
 * @example
 * zQuantile(0.975); // 1.959963984540054
 */
export function zQuantile(p: number): number {
  return normalQuantile(p, 0, 1);
}

/**
 * The standard normal CDF Φ(z).
 *
 * @example
 * zCdf(1.959963984540054); // 0.975
 */
export function zCdf(z: number): number {
  return normalCdf(z, 0, 1);
}

/**
 * The upper tail P(χ²ₖ ≥ x) of a chi-square distribution with `k` degrees of freedom.
 *
 * @example
 * chiSquareTail(3.841458820694124, 1); // 0.05
 */
export function chiSquareTail(x: number, k: number): number {
  return 1 - chisquareCdf(x, k);
}
