/**
 * Conversion rates with confidence intervals: Wilson's score interval for one rate, Newcombe's
 * hybrid score interval for the difference of two, and the Katz log interval for the relative lift.
 */
import { zQuantile } from './distributions.ts';

/** An estimate with a two-sided confidence interval. */
export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
  /** The confidence level, e.g. 0.95. */
  level: number;
}

function check(conversions: number, n: number): void {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(conversions) || conversions < 0 || conversions > n)
    throw new RangeError(`need whole counts with 0 ≤ conversions ≤ n, got ${conversions} of ${n}`);
}

function checkLevel(level: number): void {
  if (!(level > 0 && level < 1)) throw new RangeError(`a confidence level lies between 0 and 1, got ${level}`);
}

/**
 * A conversion rate with Wilson's score interval (Wilson 1927; recommended over the Wald interval by
 * Newcombe 1998 and Brown, Cai & DasGupta 2001: it stays inside [0, 1] and keeps its coverage for
 * small counts and rates near 0). With n = 0 the rate is unknown: estimate 0, interval [0, 1].
 *
 * @example
 * conversionRate(81, 263); // { estimate: 0.308, lower: 0.2553, upper: 0.3662, level: 0.95 }
 */
export function conversionRate(conversions: number, n: number, level = 0.95): Interval {
  check(conversions, n);
  checkLevel(level);
  if (n === 0) return { estimate: 0, lower: 0, upper: 1, level };
  const z = zQuantile(1 - (1 - level) / 2);
  const p = conversions / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At 0 or n conversions one bound is exactly 0 or 1; rounding must not move it past.
  const lower = conversions === 0 ? 0 : Math.max(0, center - half);
  const upper = conversions === n ? 1 : Math.min(1, center + half);
  return { estimate: p, lower, upper, level };
}

/** Conversions of one arm. */
export interface Proportion {
  conversions: number;
  n: number;
}

/**
 * The difference of two rates, `b − a`, with Newcombe's hybrid score interval (Newcombe 1998,
 * method 10): built from each arm's Wilson interval, so it behaves at small counts and at 0 % or
 * 100 % where the Wald interval collapses.
 *
 * @example
 * rateDifference({ conversions: 48, n: 80 }, { conversions: 56, n: 70 }); // { estimate: 0.2, lower: 0.0524, upper: 0.3339, ... }
 */
export function rateDifference(a: Proportion, b: Proportion, level = 0.95): Interval {
  const ra = conversionRate(a.conversions, a.n, level);
  const rb = conversionRate(b.conversions, b.n, level);
  const d = rb.estimate - ra.estimate;
  return {
    estimate: d,
    lower: d - Math.hypot(rb.estimate - rb.lower, ra.upper - ra.estimate),
    upper: d + Math.hypot(rb.upper - rb.estimate, ra.estimate - ra.lower),
    level,
  };
}

/**
 * The relative lift of `b` over `a`, `b/a − 1`, with the Katz log interval of the rate ratio
 * (Katz et al. 1978): exp(ln RR ± z·√(1/x_b − 1/n_b + 1/x_a − 1/n_a)) − 1. Undefined (NaN) when
 * either arm has no conversions.
 *
 * @example
 * relativeLift({ conversions: 100, n: 1000 }, { conversions: 130, n: 1000 }); // { estimate: 0.3, lower: 0.017, upper: 0.662, ... }
 */
export function relativeLift(a: Proportion, b: Proportion, level = 0.95): Interval {
  check(a.conversions, a.n);
  check(b.conversions, b.n);
  checkLevel(level);
  if (a.conversions === 0 || b.conversions === 0)
    return { estimate: Number.NaN, lower: Number.NaN, upper: Number.NaN, level };
  const z = zQuantile(1 - (1 - level) / 2);
  const ratio = b.conversions / b.n / (a.conversions / a.n);
  const se = Math.sqrt(1 / b.conversions - 1 / b.n + 1 / a.conversions - 1 / a.n);
  return {
    estimate: ratio - 1,
    lower: ratio * Math.exp(-z * se) - 1,
    upper: ratio * Math.exp(z * se) - 1,
    level,
  };
}
