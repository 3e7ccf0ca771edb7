import { chooseK, type FitOptions, fitKMeans } from './kmeans.ts';
import { matchIds } from './match.ts';
import type { Points } from './matrix.ts';
import { fitScaler, type Scaler, standardise, toOriginal, toStandard } from './standardise.ts';

/** A cluster as a run describes it: stable id, size, and where its centre lies. */
export interface ClusterDescription {
  /** Stable across runs: matched to the previous run's cluster with the nearest centroid. */
  id: number;
  size: number;
  /** Centroid in the features' own units, by feature name. */
  centroid: Record<string, number>;
  /** Centroid as z-scores (how many standard deviations from the population mean), by feature name. */
  standardised: Record<string, number>;
  /** The features that set the cluster apart: largest |z| first (at most three, |z| >= 0.25). */
  distinguishing: { feature: string; z: number; direction: 'high' | 'low' }[];
}

/** What one clustering run produced. */
export interface ClusteringResult {
  k: number;
  /** Per point, its cluster's stable id. */
  ids: Int32Array;
  clusters: ClusterDescription[];
  scaler: Scaler;
  inertia: number;
  /** Silhouette per k tried (when k was chosen), else empty. */
  scores: { k: number; silhouette: number }[];
}

/** How a run chooses k and keeps ids: a fixed k or a range, and the previous run's clusters. */
export interface ClusteringOptions extends FitOptions {
  k?: number;
  kRange?: [number, number];
  /** The previous run's clusters (centroids in original units, by feature name) whose ids to keep. */
  previous?: readonly { id: number; centroid: Record<string, number> }[];
  silhouetteSample?: number;
  onProgress?: (step: string) => void;
}

/** The default range when neither k nor kRange is given. */
export const DEFAULT_K_RANGE: [number, number] = [2, 8];

/**
 * Standardises the features, runs K-means (k given, or chosen by silhouette over a range), keeps ids
 * stable against the previous run, and describes each cluster.
 *
 * @example
 * const r = clusterPoints(pointsOf(rows), ['spend', 'orders'], { kRange: [2, 6], seed: 42 });
 * r.clusters[0]; // { id: 0, size: 120, centroid: { spend: 410.2, orders: 7.1 }, distinguishing: [...] }
 */
export function clusterPoints(
  points: Points,
  features: readonly string[],
  options: ClusteringOptions = {},
): ClusteringResult {
  if (points.d !== features.length) throw new RangeError(`${points.d} columns for ${features.length} features`);
  if (points.n < 2) throw new RangeError('clustering needs at least 2 points');
  options.onProgress?.('standardising');
  const scaler = fitScaler(points);
  const z = standardise(points, scaler);
  let chosen: { k: number; fit: ReturnType<typeof fitKMeans>; scores: { k: number; silhouette: number }[] };
  if (options.k) {
    options.onProgress?.(`fitting k=${options.k}`);
    chosen = { k: options.k, fit: fitKMeans(z, Math.min(options.k, points.n), options), scores: [] };
  } else {
    const range = options.kRange ?? DEFAULT_K_RANGE;
    const hi = Math.min(range[1], points.n - 1);
    chosen = chooseK(z, [range[0], Math.max(2, hi)], { ...options, onK: (k) => options.onProgress?.(`trying k=${k}`) });
  }
  const { fit } = chosen;
  const previous = (options.previous ?? []).map((p) => ({
    id: p.id,
    centroid: toStandard(
      features.map((f) => p.centroid[f] ?? 0),
      scaler,
    ),
  }));
  const stable = matchIds(fit.centroids, previous);
  const ids = new Int32Array(fit.labels.length);
  const sizes = new Array<number>(fit.centroids.length).fill(0);
  for (let i = 0; i < ids.length; i++) {
    const l = fit.labels[i]!;
    ids[i] = stable[l]!;
    sizes[l]!++;
  }
  const clusters = fit.centroids
    .map((c, l) => describe(stable[l]!, sizes[l]!, c, features, scaler))
    .sort((a, b) => a.id - b.id);
  return { k: fit.centroids.length, ids, clusters, scaler, inertia: fit.inertia, scores: chosen.scores };
}

function describe(
  id: number,
  size: number,
  z: readonly number[],
  features: readonly string[],
  scaler: Scaler,
): ClusterDescription {
  const original = toOriginal(z, scaler);
  const byName = (v: readonly number[]) => Object.fromEntries(features.map((f, j) => [f, round(v[j]!)]));
  const distinguishing = features
    .map((feature, j) => ({ feature, z: round(z[j]!), direction: z[j]! >= 0 ? ('high' as const) : ('low' as const) }))
    .filter((x) => Math.abs(x.z) >= 0.25)
    .sort((a, b) => Math.abs(b.z) - Math.abs(a.z))
    .slice(0, 3);
  return { id, size, centroid: byName(original), standardised: byName(z), distinguishing };
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;
