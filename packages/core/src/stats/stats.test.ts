import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chiSquareTail,
  conversionArm,
  conversionRate,
  fixedHorizonP,
  minimumDetectableEffect,
  mixtureRho,
  powerOf,
  rateDifference,
  relativeLift,
  sampleRatioMismatch,
  sampleSize,
  sequentialTest,
  valueArm,
  zQuantile,
} from './index.ts';
import { seeded } from './testing-prng.ts';

describe('conversion rates and intervals', () => {
  // Newcombe, "Two-sided confidence intervals for the single proportion", Stat Med 1998;17:857-872,
  // Table II, method 3 (score / Wilson, without continuity correction).
  it.each([
    [81, 263, 0.2553, 0.3662],
    [15, 148, 0.0624, 0.1605],
    [0, 20, 0, 0.1611],
    [1, 29, 0.0061, 0.1718],
  ])('Wilson %i/%i = [%f, %f] (Newcombe 1998)', (x, n, lower, upper) => {
    const r = conversionRate(x, n);
    expect(r.estimate).toBeCloseTo(x / n, 12);
    expect(r.lower).toBeCloseTo(lower, 4);
    expect(r.upper).toBeCloseTo(upper, 4);
  });

  // Newcombe, "Interval estimation for the difference between independent proportions", Stat Med
  // 1998;17:873-890, Table II, method 10 (hybrid score), examples (a) and (b).
  it.each([
    [56, 70, 48, 80, 0.0524, 0.3339],
    [9, 10, 3, 10, 0.1705, 0.809],
  ])('Newcombe difference %i/%i − %i/%i = [%f, %f]', (xb, nb, xa, na, lower, upper) => {
    const d = rateDifference({ conversions: xa, n: na }, { conversions: xb, n: nb });
    expect(d.estimate).toBeCloseTo(xb / nb - xa / na, 12);
    expect(d.lower).toBeCloseTo(lower, 4);
    expect(d.upper).toBeCloseTo(upper, 4);
  });

  it('intervals contain the estimate, stay in range, and narrow with more people', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, share) => {
        const x = Math.round(share * n);
        const r = conversionRate(x, n);
        expect(r.lower).toBeGreaterThanOrEqual(0);
        expect(r.upper).toBeLessThanOrEqual(1);
        expect(r.lower).toBeLessThanOrEqual(r.estimate + 1e-12);
        expect(r.upper).toBeGreaterThanOrEqual(r.estimate - 1e-12);
        const more = conversionRate(x * 4, n * 4);
        expect(more.upper - more.lower).toBeLessThan(r.upper - r.lower + 1e-12);
        const d = rateDifference({ conversions: x, n }, { conversions: x, n });
        expect(d.lower).toBeLessThanOrEqual(0);
        expect(d.upper).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  it('the relative lift interval is the Katz log interval of the rate ratio', () => {
    // 10 % → 13 % on 1,000 each: RR 1.3, SE(ln RR) = √(1/130 − 1/1000 + 1/100 − 1/1000).
    const l = relativeLift({ conversions: 100, n: 1000 }, { conversions: 130, n: 1000 });
    const se = Math.sqrt(1 / 130 - 1 / 1000 + 1 / 100 - 1 / 1000);
    expect(l.estimate).toBeCloseTo(0.3, 12);
    expect(l.lower).toBeCloseTo(1.3 * Math.exp(-1.959964 * se) - 1, 5);
    expect(l.upper).toBeCloseTo(1.3 * Math.exp(1.959964 * se) - 1, 5);
    expect(Number.isNaN(relativeLift({ conversions: 0, n: 10 }, { conversions: 1, n: 10 }).estimate)).toBe(true);
    expect(() => conversionRate(11, 10)).toThrow(RangeError);
  });
});

describe('sample size and minimum detectable effect', () => {
  // R's stats::power.prop.test help page examples (same normal-approximation formula):
  // power.prop.test(n = 50, p1 = .50, p2 = .75) => power = 0.740; (p1 = .50, p2 = .75, power = .90)
  // => n = 76.7; (n = 50, p1 = .5, power = .90) => p2 = 0.8026.
  it('matches R power.prop.test', () => {
    expect(powerOf(50, 0.5, 0.75)).toBeCloseTo(0.74, 3);
    expect(sampleSize({ baseline: 0.5, mde: 0.25, power: 0.9 }).exact).toBeCloseTo(76.7, 1);
    expect(minimumDetectableEffect({ baseline: 0.5, perGroup: 50, power: 0.9 }).target).toBeCloseTo(0.8026, 4);
  });

  it('5 % → 6 % needs about 8,000 per group; 1,000 per group only detects a ~60 % relative lift at 5 %', () => {
    const n = sampleSize({ baseline: 0.05, mde: 0.01 });
    expect(n.perGroup).toBe(8158);
    expect(sampleSize({ baseline: 0.05, mde: 0.2, relative: true }).perGroup).toBe(8158);
    // The seed's "≥ 1,000 per group at 95 %".
    const mde = minimumDetectableEffect({ baseline: 0.05, perGroup: 1000 });
    expect(mde.absolute).toBeCloseTo(0.031, 3);
    expect(mde.relative).toBeGreaterThan(0.55);
    expect(mde.relative).toBeLessThan(0.65);
    expect(Number.isNaN(minimumDetectableEffect({ baseline: 0.9, perGroup: 2 }).target)).toBe(true);
  });

  it('the sample size and the MDE are inverses of each other', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 0.6, noNaN: true }),
        fc.double({ min: 0.05, max: 0.5, noNaN: true }),
        fc.constantFrom(0.01, 0.05, 0.1),
        fc.constantFrom(0.8, 0.9),
        (baseline, relative, alpha, power) => {
          const n = sampleSize({ baseline, mde: relative, relative: true, alpha, power });
          expect(powerOf(n.exact, baseline, n.target, alpha)).toBeCloseTo(power, 6);
          const back = minimumDetectableEffect({ baseline, perGroup: n.exact, alpha, power });
          expect(back.target).toBeCloseTo(n.target, 6);
        },
      ),
    );
  });
});

describe('sample ratio mismatch', () => {
  it('uses the chi-square tail: critical values of the NIST/SEMATECH e-Handbook table 1.3.6.7.4', () => {
    expect(chiSquareTail(10.828, 1)).toBeCloseTo(0.001, 5);
    expect(chiSquareTail(13.816, 2)).toBeCloseTo(0.001, 5);
    expect(chiSquareTail(3.841, 1)).toBeCloseTo(0.05, 4);
  });

  it('flags a split off the plan at p < 0.001 and passes one on it', () => {
    // 5,000 vs 5,400 planned 50/50: χ² = 2·200²/5,200 = 15.38.
    const off = sampleRatioMismatch([5000, 5400], [50, 50]);
    expect(off.chiSquare).toBeCloseTo(15.3846, 3);
    expect(off.mismatch).toBe(true);
    expect(sampleRatioMismatch([5000, 5300], [50, 50]).mismatch).toBe(false);
    // 10/45/45 planned, observed on plan.
    expect(sampleRatioMismatch([1000, 4510, 4490], [10, 45, 45]).p).toBeGreaterThan(0.5);
    expect(sampleRatioMismatch([1, 10], [0, 100]).mismatch).toBe(true);
    expect(sampleRatioMismatch([0, 0], [50, 50]).p).toBe(1);
  });

  it('flags about 0.1 % of correct random splits', () => {
    const random = seeded(7);
    let flagged = 0;
    const runs = 2000;
    for (let r = 0; r < runs; r++) {
      let a = 0;
      for (let i = 0; i < 1000; i++) if (random() < 0.5) a++;
      if (sampleRatioMismatch([a, 1000 - a], [50, 50]).mismatch) flagged++;
    }
    expect(flagged / runs).toBeLessThan(0.005);
  });
});

// A/A and A/B runs with a look after every 100 people per arm, up to 20,000 per arm: the test
// stops at the first look where it is significant.
function peek(
  pa: number,
  pb: number,
  runs: number,
  seed: number,
  significant: (ca: number, cb: number, n: number) => boolean | 'a' | 'b',
) {
  const random = seeded(seed);
  const out = { decided: 0, bWins: 0, aWins: 0 };
  for (let r = 0; r < runs; r++) {
    let ca = 0;
    let cb = 0;
    for (let n = 100; n <= 20_000; n += 100) {
      for (let i = 0; i < 100; i++) {
        if (random() < pa) ca++;
        if (random() < pb) cb++;
      }
      const s = significant(ca, cb, n);
      if (s) {
        out.decided++;
        if (s === 'b') out.bWins++;
        else out.aWins++;
        break;
      }
    }
  }
  return out;
}

const msprt = (alpha: number) => (ca: number, cb: number, n: number) => {
  const t = sequentialTest(conversionArm({ conversions: ca, n }), conversionArm({ conversions: cb, n }), { alpha });
  return t.significant && (t.difference > 0 ? 'b' : 'a');
};

describe('the always-valid sequential test (mSPRT)', () => {
  it('stays at or under alpha over 200 looks with no true difference (500 runs each)', () => {
    for (const [p, alpha, seed] of [
      [0.1, 0.05, 1],
      [0.03, 0.05, 2],
      [0.1, 0.1, 3],
    ] as const) {
      const r = peek(p, p, 500, seed, msprt(alpha));
      // Ville's bound: P(ever significant) ≤ α; +1.5 points of tolerance for 500 runs' noise.
      expect(r.decided / 500, `p=${p} alpha=${alpha}`).toBeLessThanOrEqual(alpha + 0.015);
    }
  });

  it('while a fixed-horizon z-test peeked at the same way is wrong far more often', () => {
    const naive = peek(0.1, 0.1, 500, 1, (ca, cb, n) => {
      const p = fixedHorizonP(conversionArm({ conversions: ca, n }), conversionArm({ conversions: cb, n }));
      return p < 0.05 && (cb > ca ? 'b' : 'a');
    });
    expect(naive.decided / 500).toBeGreaterThan(0.2);
  });

  it('decides for the better variant with a true lift (10 % → 13 %, and 5 % → 6 %)', () => {
    const big = peek(0.1, 0.13, 500, 4, msprt(0.05));
    expect(big.bWins / 500).toBeGreaterThan(0.95);
    expect(big.aWins).toBe(0);
    const small = peek(0.05, 0.06, 300, 5, msprt(0.05));
    expect(small.bWins / 300).toBeGreaterThan(0.8);
    expect(small.aWins / 300).toBeLessThan(0.01);
  });

  it('its confidence sequence is the inversion of the test and covers the truth at every look', () => {
    const random = seeded(9);
    let missed = 0;
    const runs = 300;
    for (let r = 0; r < runs; r++) {
      let ca = 0;
      let cb = 0;
      for (let n = 100; n <= 10_000; n += 100) {
        for (let i = 0; i < 100; i++) {
          if (random() < 0.2) ca++;
          if (random() < 0.23) cb++;
        }
        const t = sequentialTest(conversionArm({ conversions: ca, n }), conversionArm({ conversions: cb, n }));
        expect(t.significant).toBe(t.lower > 0 || t.upper < 0);
        if (t.lower > 0.03 || t.upper < 0.03) {
          missed++;
          break;
        }
      }
    }
    expect(missed / runs).toBeLessThanOrEqual(0.05 + 0.02);
  });

  it('keeps the running minimum of the p-value and knows nothing without variance', () => {
    const a = conversionArm({ conversions: 100, n: 1000 });
    expect(sequentialTest(a, a, { previousP: 0.2 }).p).toBe(0.2);
    const none = sequentialTest(conversionArm({ conversions: 0, n: 500 }), conversionArm({ conversions: 0, n: 500 }));
    expect(none.significant).toBe(false);
    expect(none.lower).toBe(Number.NEGATIVE_INFINITY);
    expect(mixtureRho(0.05, 5000)).toBeCloseTo(0.03984, 5);
    expect(zQuantile(0.975)).toBeCloseTo(1.959964, 6);
  });

  it('tests revenue per person from running sums', () => {
    const random = seeded(11);
    const sums = [
      { n: 0, sum: 0, sumSquares: 0 },
      { n: 0, sum: 0, sumSquares: 0 },
    ];
    // 10 % buy; a buyer spends 50 (a) or 60 (b) on average.
    for (let i = 0; i < 20_000; i++)
      for (const [k, mean] of [
        [0, 50],
        [1, 60],
      ] as const) {
        const v = random() < 0.1 ? mean * (0.5 + random()) : 0;
        sums[k]!.n++;
        sums[k]!.sum += v;
        sums[k]!.sumSquares += v * v;
      }
    const t = sequentialTest(valueArm(sums[0]!), valueArm(sums[1]!));
    expect(t.difference).toBeGreaterThan(0);
    expect(t.significant).toBe(true);
    expect(t.lower).toBeLessThan(1);
    expect(t.upper).toBeGreaterThan(1);
  });
});
