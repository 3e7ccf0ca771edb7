const pairs = (x: number) => (x * (x - 1)) / 2;

/**
 * Adjusted Rand index of two labelings of the same points: 1 for the same partition (whatever the
 * label names), about 0 for a random one.
 *
 * @example
 * adjustedRandIndex([0, 0, 1, 1], [1, 1, 0, 0]); // 1
 */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError('adjustedRandIndex: labelings differ in length');
  const table = new Map<string, number>();
  const rowSums = new Map<number, number>();
  const colSums = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    const key = `${a[i]}:${b[i]}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    rowSums.set(a[i]!, (rowSums.get(a[i]!) ?? 0) + 1);
    colSums.set(b[i]!, (colSums.get(b[i]!) ?? 0) + 1);
  }
  let index = 0;
  for (const c of table.values()) index += pairs(c);
  let rows = 0;
  let cols = 0;
  for (const c of rowSums.values()) rows += pairs(c);
  for (const c of colSums.values()) cols += pairs(c);
  const expected = (rows * cols) / pairs(a.length);
  const max = (rows + cols) / 2;
  return max === expected ? 1 : (index - expected) / (max - expected);
}
