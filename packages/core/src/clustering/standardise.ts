import type { Points } from './matrix.ts';

/** Per-feature mean and standard deviation, to move between original units and z-scores. */
export interface Scaler {
  mean: number[];
  std: number[];
}

/**
 * Mean and (population) standard deviation of each feature. A constant feature gets std 1, so it
 * standardises to 0 instead of dividing by zero.
 *
 * @example
 * fitScaler(pointsOf([[1], [3]])); // { mean: [2], std: [1] }
 */
export function fitScaler(points: Points): Scaler {
  const { data, n, d } = points;
  const mean = new Array<number>(d).fill(0);
  const sq = new Array<number>(d).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] = n ? mean[j]! / n : 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) {
      const x = data[i * d + j]! - mean[j]!;
      sq[j]! += x * x;
    }
  const std = sq.map((s) => {
    const v = n ? Math.sqrt(s / n) : 0;
    return v > 1e-12 ? v : 1;
  });
  return { mean, std };
}

/**
 * The points as z-scores (a new block; the input is left as it is).
 *
 * @example
 * standardise(pointsOf([[1], [3]]), { mean: [2], std: [1] }).data; // Float64Array [-1, 1]
 */
export function standardise(points: Points, scaler: Scaler): Points {
  const { data, n, d } = points;
  const out = new Float64Array(data.length);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) out[i * d + j] = (data[i * d + j]! - scaler.mean[j]!) / scaler.std[j]!;
  return { data: out, n, d };
}

/**
 * One vector from z-scores back to original units.
 *
 * @example
 * toOriginal([1], { mean: [2], std: [1] }); // [3]
 */
export function toOriginal(z: readonly number[], scaler: Scaler): number[] {
  return z.map((v, j) => v * scaler.std[j]! + scaler.mean[j]!);
}

/**
 * One vector from original units to z-scores.
 *
 * @example
 * toStandard([3], { mean: [2], std: [1] }); // [1]
 */
export function toStandard(x: readonly number[], scaler: Scaler): number[] {
  return x.map((v, j) => (v - scaler.mean[j]!) / scaler.std[j]!);
}
