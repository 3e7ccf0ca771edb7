/**
 * The assignment of rows to columns with the least total cost (Hungarian method, O(n³)); rows may be
 * fewer or more than columns. Returns, per row, its column or -1 when it got none.
 *
 * @example
 * minCostAssignment([[1, 9], [9, 1]]); // [0, 1]
 */
export function minCostAssignment(cost: readonly (readonly number[])[]): number[] {
  const rows = cost.length;
  const cols = cost[0]?.length ?? 0;
  const n = Math.max(rows, cols);
  if (!n) return [];
  // Square it with zero-cost dummies; a row matched to a dummy column gets -1.
  const a = (i: number, j: number) => (i < rows && j < cols ? cost[i]![j]! : 0);
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1); // p[j]: the row (1-based) matched to column j
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Number.POSITIVE_INFINITY);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = Number.POSITIVE_INFINITY;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = a(i0 - 1, j - 1) - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0);
  }
  const out = new Array<number>(rows).fill(-1);
  for (let j = 1; j <= n; j++) if (p[j]! - 1 < rows && j - 1 < cols) out[p[j]! - 1] = j - 1;
  return out;
}

/**
 * Stable ids for new clusters: each new centroid takes the id of the previous run's centroid it is
 * matched to, the matching having the least total squared distance (both given in the same space).
 * New centroids left over (k grew) take fresh ids above every previous one.
 *
 * @example
 * matchIds([[5, 5], [0, 0]], [{ id: 0, centroid: [0, 0] }, { id: 1, centroid: [5, 5] }]); // [1, 0]
 */
export function matchIds(
  next: readonly (readonly number[])[],
  previous: readonly { id: number; centroid: readonly number[] }[],
): number[] {
  const cost = next.map((c) => previous.map((p) => c.reduce((s, x, j) => s + (x - p.centroid[j]!) ** 2, 0)));
  const matched = previous.length ? minCostAssignment(cost) : next.map(() => -1);
  let fresh = previous.reduce((m, p) => Math.max(m, p.id + 1), 0);
  return matched.map((col) => (col >= 0 ? previous[col]!.id : fresh++));
}
