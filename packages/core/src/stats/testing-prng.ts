/**
 * A seeded pseudo-random generator for the statistics' simulations (mulberry32): tests repeat
 * exactly, and a failure names the seed that shows it.
 */

/**
 * A generator of uniform numbers in [0, 1) from a 32-bit seed.
 *
 * @example
 * const random = seeded(42);
 * random(); // the same number on every run
 */
export function seeded(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A binomial draw (successes of `n` trials at rate `p`) by inverting its CDF with one uniform: about
 * n·p steps instead of n draws, for simulations of many looks.
 *
 * @example
 * binomialDraw(seeded(1), 100, 0.1); // about 10
 */
export function binomialDraw(random: () => number, n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return n;
  const u = random();
  const odds = p / (1 - p);
  let pmf = (1 - p) ** n;
  let cdf = pmf;
  let k = 0;
  while (u > cdf && k < n) {
    pmf *= ((n - k) / (k + 1)) * odds;
    k++;
    cdf += pmf;
  }
  return k;
}
