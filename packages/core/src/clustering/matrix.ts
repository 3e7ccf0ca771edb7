// Points are kept row-major in one Float64Array (n × d): a million profiles × 8 features is 64 MB in one
// block instead of a million small arrays, and the hot loops below read it without allocating.

/** Points as one row-major block: point i's feature j is `data[i * d + j]`. */
export interface Points {
  data: Float64Array;
  n: number;
  d: number;
}

/**
 * Builds a point block from rows of numbers.
 *
 * @example
 * const p = pointsOf([[1, 2], [3, 4]]); // { n: 2, d: 2, data: Float64Array [1, 2, 3, 4] }
 */
export function pointsOf(rows: readonly (readonly number[])[]): Points {
  const d = rows[0]?.length ?? 0;
  const data = new Float64Array(rows.length * d);
  rows.forEach((r, i) => {
    data.set(r, i * d);
  });
  return { data, n: rows.length, d };
}

/**
 * A seeded generator of uniform numbers in [0, 1) (mulberry32): a run with the same seed samples and
 * starts the same way.
 *
 * @example
 * const random = seededRandom(42);
 * random(); // the same number on every run
 */
export function seededRandom(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * `m` distinct indices of `0..n-1`, chosen uniformly with a seeded generator (all of them, in order,
 * when m >= n). Floyd's algorithm: m draws, no array of n.
 *
 * @example
 * sampleIndices(1_000_000, 1000, seededRandom(1)).length; // 1000
 */
export function sampleIndices(n: number, m: number, random: () => number): Uint32Array {
  if (m >= n) return Uint32Array.from({ length: n }, (_, i) => i);
  const chosen = new Set<number>();
  for (let j = n - m; j < n; j++) {
    const t = Math.floor(random() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return Uint32Array.from([...chosen].sort((a, b) => a - b));
}

/**
 * The nearest centroid of every point (squared Euclidean distance) and the total squared distance (inertia).
 *
 * @example
 * const { labels, inertia } = assignNearest(points, [[0, 0], [5, 5]]);
 */
export function assignNearest(
  points: Points,
  centroids: readonly (readonly number[])[],
): { labels: Int32Array; inertia: number } {
  const { data, n, d } = points;
  const k = centroids.length;
  const flat = new Float64Array(k * d);
  centroids.forEach((c, i) => {
    flat.set(c, i * d);
  });
  const labels = new Int32Array(n);
  let inertia = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let best = 0;
    let bestDist = Number.POSITIVE_INFINITY;
    for (let c = 0; c < k; c++) {
      const co = c * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const diff = data[o + j]! - flat[co + j]!;
        s += diff * diff;
      }
      if (s < bestDist) {
        bestDist = s;
        best = c;
      }
    }
    labels[i] = best;
    inertia += bestDist;
  }
  return { labels, inertia };
}
