import { describe, expect, it } from 'vitest';
import { campaignMoney, rate } from './roi.ts';

describe('campaignMoney', () => {
  it('computes ROI, cost per acquisition and the budget’s use', () => {
    expect(campaignMoney({ revenue: 300, cost: 120, converted: 2, budget: 500 })).toEqual({
      revenue: 300,
      cost: 120,
      roi: 1.5,
      costPerAcquisition: 60,
      revenuePerConversion: 150,
      budget: { amount: 500, spent: 120, remaining: 380, used: 0.24 },
    });
  });

  it('has no ROI without cost, no CPA without conversions, and rounds money to cents', () => {
    expect(campaignMoney({ revenue: 0.1 + 0.2, cost: 0, converted: 0, budget: null })).toEqual({
      revenue: 0.3,
      cost: 0,
      roi: null,
      costPerAcquisition: null,
      revenuePerConversion: null,
      budget: null,
    });
    const loss = campaignMoney({ revenue: 50, cost: 200, converted: 3, budget: 0 });
    expect(loss.roi).toBe(-0.75);
    expect(loss.costPerAcquisition).toBe(66.67);
    expect(loss.budget).toEqual({ amount: 0, spent: 200, remaining: -200, used: null });
  });

  it('rates to 4 places, null over nothing', () => {
    expect(rate(1, 3)).toBe(0.3333);
    expect(rate(0, 0)).toBeNull();
  });
});
