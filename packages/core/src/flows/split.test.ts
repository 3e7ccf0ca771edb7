import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SPLIT_BUCKETS, splitBucket, splitPath } from './split.ts';

const id = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0'));

// Percentages in hundredths that add up to 100, 2 to 6 paths.
const percents = fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 5 }).map((cuts) => {
  const sorted = [0, ...cuts.sort((a, b) => a - b), 10_000];
  return sorted.slice(1).map((c, i) => (c - sorted[i]!) / 100);
});

describe('split', () => {
  it('a person always gets the same bucket, in range, and the path its percentages say', () => {
    fc.assert(
      fc.property(id, id, id, percents, (flow, node, profile, ps) => {
        const b = splitBucket(flow, node, profile);
        expect(splitBucket(flow, node, profile)).toBe(b);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(SPLIT_BUCKETS);
        const path = splitPath(b, ps);
        // The bucket lies inside the chosen path's share.
        const before = ps.slice(0, path).reduce((a, p) => a + Math.round(p * 100), 0);
        expect(b).toBeGreaterThanOrEqual(before);
        expect(b).toBeLessThan(before + Math.round(ps[path]! * 100));
      }),
    );
  });

  it('distributes 20,000 people close to the percentages, independently per node', () => {
    const n = 20_000;
    const counts = [0, 0, 0];
    let sameAsOtherNode = 0;
    for (let i = 0; i < n; i++) {
      const a = splitPath(splitBucket('flow-1', 'ab', `profile-${i}`), [10, 30, 60]);
      counts[a]!++;
      const b = splitPath(splitBucket('flow-1', 'cd', `profile-${i}`), [10, 30, 60]);
      if (a === b) sameAsOtherNode++;
    }
    // Binomial standard deviations are under 70 here; 5 of them is far from chance.
    expect(Math.abs(counts[0]! - 2000)).toBeLessThan(300);
    expect(Math.abs(counts[1]! - 6000)).toBeLessThan(350);
    expect(Math.abs(counts[2]! - 12_000)).toBeLessThan(350);
    // Independent splits agree with probability 0.1² + 0.3² + 0.6² = 0.46.
    expect(Math.abs(sameAsOtherNode / n - 0.46)).toBeLessThan(0.02);
  });
});
