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
