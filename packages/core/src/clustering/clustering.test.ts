import { describe, expect, it } from 'vitest';
import { adjustedRandIndex } from './ari.ts';
import { clusterPoints } from './cluster.ts';
import { matchIds, minCostAssignment } from './match.ts';
import { pointsOf, seededRandom } from './matrix.ts';

// Gaussian blobs with known membership, in features of very different scales (standardisation matters).
function blobs(seed: number, perBlob: number, centres: number[][], spread: number[]) {
  const random = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const rows: number[][] = [];
  const truth: number[] = [];
  centres.forEach((c, b) => {
    for (let i = 0; i < perBlob; i++) {
      rows.push(c.map((x, j) => x + gauss() * spread[j]!));
      truth.push(b);
    }
  });
  return { rows, truth, gauss };
}

const FEATURES = ['spend', 'orders', 'discountShare'];
const CENTRES = [
  [200, 2, 0.8],
  [1500, 12, 0.1],
  [700, 6, 0.45],
  [3000, 3, 0.05],
];
const SPREAD = [120, 1.2, 0.06];

describe('clustering', () => {
  it('recovers known groups with k chosen by silhouette (ARI >= 0.9)', () => {
    const { rows, truth } = blobs(1, 500, CENTRES, SPREAD);
    const r = clusterPoints(pointsOf(rows), FEATURES, { kRange: [2, 7], seed: 42 });
    const ari = adjustedRandIndex(truth, r.ids);
    console.log(`ARI (k chosen = ${r.k}): ${ari.toFixed(4)}; silhouettes`, r.scores);
    expect(r.k).toBe(4);
    expect(ari).toBeGreaterThanOrEqual(0.9);
    expect(r.clusters.map((c) => c.size).reduce((a, b) => a + b)).toBe(rows.length);
    // Descriptions are in original units: the big spenders' centroid is near 3000.
    const big = r.clusters.find((c) => c.centroid.spend! > 2500)!;
    expect(big.centroid.spend).toBeGreaterThan(2800);
    expect(big.distinguishing[0]).toMatchObject({ feature: 'spend', direction: 'high' });
  });

  it('is reproducible with a fixed seed', () => {
    const { rows } = blobs(2, 300, CENTRES, SPREAD);
    const a = clusterPoints(pointsOf(rows), FEATURES, { k: 4, seed: 9 });
    const b = clusterPoints(pointsOf(rows), FEATURES, { k: 4, seed: 9 });
    expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
  });

  it('keeps ids stable on re-run over jittered data with 5% new points', () => {
    const { rows, truth, gauss } = blobs(3, 400, CENTRES, SPREAD);
    const first = clusterPoints(pointsOf(rows), FEATURES, { k: 4, seed: 1 });
    const jittered = rows.map((r) => r.map((x, j) => x + gauss() * SPREAD[j]! * 0.1));
    const extra = blobs(4, 20, CENTRES, SPREAD);
    // A different seed too: without matching, label numbers would come out in another order.
    const second = clusterPoints(pointsOf([...jittered, ...extra.rows]), FEATURES, {
      k: 4,
      seed: 777,
      previous: first.clusters,
    });
    const same = Array.from(first.ids).filter((id, i) => second.ids[i] === id).length / rows.length;
    const ari = adjustedRandIndex(truth, Array.from(second.ids).slice(0, rows.length));
    console.log(`re-run: ${(same * 100).toFixed(2)}% of profiles kept their cluster id; ARI ${ari.toFixed(4)}`);
    expect(same).toBeGreaterThanOrEqual(0.98);
    expect(new Set(second.clusters.map((c) => c.id))).toEqual(new Set(first.clusters.map((c) => c.id)));
  });

  it('gives fresh ids to clusters a larger k adds', () => {
    expect(
      matchIds(
        [[0], [10], [5]],
        [
          { id: 3, centroid: [0] },
          { id: 7, centroid: [10] },
        ],
      ),
    ).toEqual([3, 7, 8]);
    expect(
      minCostAssignment([
        [4, 1, 3],
        [2, 0, 5],
        [3, 2, 2],
      ]),
    ).toEqual([1, 0, 2]);
  });

  it('adjusted Rand index: 1 for a relabelled partition, about 0 for a random one', () => {
    expect(adjustedRandIndex([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9])).toBe(1);
    const random = seededRandom(5);
    const a = Array.from({ length: 5000 }, () => Math.floor(random() * 4));
    const b = Array.from({ length: 5000 }, () => Math.floor(random() * 4));
    expect(Math.abs(adjustedRandIndex(a, b))).toBeLessThan(0.02);
  });
});
