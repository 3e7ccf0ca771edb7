import { kmeans } from 'ml-kmeans';
import { assignNearest, type Points, sampleIndices, seededRandom } from './matrix.ts';

// The algorithm is mljs's `ml-kmeans` (kmeans++ start, seeded): Lloyd's iterations on a seeded sample
// of the points, then one pass of our own assigning every point to its nearest centroid. K-means
// centroids are means, and the mean of a large uniform sample is close to the population's: the
// benchmark (docs/benchmarks.md) measures the inertia of the sampled fit against a fit on every point.

/** Points Lloyd's iterations run on at most; the rest are only assigned. */
export const DEFAULT_FIT_SAMPLE = 100_000;
/** Points the silhouette is computed on at most (it is quadratic in them). */
export const DEFAULT_SILHOUETTE_SAMPLE = 2_000;

/** A K-means fit: the centroids (z-scores) and every point's nearest one. */
export interface KMeansFit {
  centroids: number[][];
  labels: Int32Array;
  /** Sum of squared distances of every point to its centroid. */
  inertia: number;
  iterations: number;
}

/** Options of a fit: the seed makes it reproducible. */
export interface FitOptions {
  seed?: number;
  fitSample?: number;
  maxIterations?: number;
}

function rowsOf(points: Points, idx: Uint32Array): number[][] {
  const { data, d } = points;
  return Array.from(idx, (i) => Array.from(data.subarray(i * d, i * d + d)));
}

/**
 * K-means with kmeans++ initialisation (ml-kmeans) on a seeded sample of at most `fitSample` points,
 * then every point assigned to its nearest centroid.
 *
 * @example
 * const fit = fitKMeans(points, 3, { seed: 42 });
 * fit.labels[0]; // 0, 1 or 2
 */
export function fitKMeans(points: Points, k: number, options: FitOptions = {}): KMeansFit {
  const seed = options.seed ?? 42;
  const idx = sampleIndices(points.n, options.fitSample ?? DEFAULT_FIT_SAMPLE, seededRandom(seed));
  const sample = rowsOf(points, idx);
  const kk = Math.min(k, sample.length);
  const result = kmeans(sample, kk, {
    initialization: 'kmeans++',
    seed,
    maxIterations: options.maxIterations ?? 100,
    tolerance: 1e-6,
  });
  const { labels, inertia } = assignNearest(points, result.centroids);
  return { centroids: result.centroids, labels, inertia, iterations: result.iterations };
}

/**
 * Mean silhouette coefficient (-1..1, higher is better separated) over a seeded sample of at most
 * `sample` points; exact when n <= sample.
 *
 * @example
 * silhouette(points, fit.labels, { seed: 1 }); // e.g. 0.71
 */
export function silhouette(
  points: Points,
  labels: Int32Array,
  options: { sample?: number; seed?: number } = {},
): number {
  const idx = sampleIndices(points.n, options.sample ?? DEFAULT_SILHOUETTE_SAMPLE, seededRandom(options.seed ?? 7));
  const { data, d } = points;
  const k = Math.max(...Array.from(idx, (i) => labels[i]!)) + 1;
  const m = idx.length;
  const counts = new Float64Array(k);
  for (let a = 0; a < m; a++) counts[labels[idx[a]!]!]!++;
  let total = 0;
  const sums = new Float64Array(k);
  for (let a = 0; a < m; a++) {
    const i = idx[a]!;
    sums.fill(0);
    for (let b = 0; b < m; b++) {
      if (a === b) continue;
      const j = idx[b]!;
      let s = 0;
      for (let f = 0; f < d; f++) {
        const diff = data[i * d + f]! - data[j * d + f]!;
        s += diff * diff;
      }
      sums[labels[j]!]! += Math.sqrt(s);
    }
    const own = labels[i]!;
    if (counts[own]! <= 1) continue; // a singleton's silhouette is 0 by convention
    const within = sums[own]! / (counts[own]! - 1);
    let nearest = Number.POSITIVE_INFINITY;
    for (let c = 0; c < k; c++) if (c !== own && counts[c]! > 0) nearest = Math.min(nearest, sums[c]! / counts[c]!);
    if (!Number.isFinite(nearest)) continue;
    total += (nearest - within) / Math.max(within, nearest);
  }
  return m ? total / m : 0;
}

/**
 * Fits every k of a range and keeps the one with the highest sampled silhouette.
 *
 * @example
 * const { k, fit, scores } = chooseK(points, [2, 6], { seed: 42 });
 */
export function chooseK(
  points: Points,
  range: readonly [number, number],
  options: FitOptions & { silhouetteSample?: number; onK?: (k: number) => void } = {},
): { k: number; fit: KMeansFit; scores: { k: number; silhouette: number }[] } {
  let best: { k: number; fit: KMeansFit; score: number } | undefined;
  const scores: { k: number; silhouette: number }[] = [];
  for (let k = Math.max(2, range[0]); k <= range[1]; k++) {
    options.onK?.(k);
    const fit = fitKMeans(points, k, options);
    const score = silhouette(points, fit.labels, { sample: options.silhouetteSample, seed: options.seed });
    scores.push({ k, silhouette: score });
    if (!best || score > best.score) best = { k, fit, score };
  }
  if (!best) throw new RangeError(`kRange [${range.join(', ')}] holds no k >= 2`);
  return { k: best.k, fit: best.fit, scores };
}
