// The money of a campaign's results: return on investment, cost per acquisition and the budget's use.
// Amounts are rounded to cents (sums of doubles carry noise like 0.30000000000000004), ratios to 4 places.

/** What a campaign's money comes to. */
export interface CampaignMoney {
  revenue: number;
  cost: number;
  /** (revenue − cost) / cost; null without cost. */
  roi: number | null;
  /** cost / converted people; null when nobody converted. */
  costPerAcquisition: number | null;
  /** revenue / converted people; null when nobody converted. */
  revenuePerConversion: number | null;
  budget: { amount: number; spent: number; remaining: number; used: number | null } | null;
}

const cents = (n: number) => Math.round(n * 100) / 100;
const ratio = (n: number) => Math.round(n * 10_000) / 10_000;

/**
 * ROI, cost per acquisition and the budget's use from revenue, cost, converted people and the budget.
 * A cost of 0 has no ROI (null, not Infinity); a budget of 0 has no share used.
 *
 * @example
 * campaignMoney({ revenue: 300, cost: 120, converted: 2, budget: 500 });
 * // { revenue: 300, cost: 120, roi: 1.5, costPerAcquisition: 60, revenuePerConversion: 150,
 * //   budget: { amount: 500, spent: 120, remaining: 380, used: 0.24 } }
 */
export function campaignMoney(input: {
  revenue: number;
  cost: number;
  converted: number;
  budget: number | null;
}): CampaignMoney {
  const revenue = cents(input.revenue);
  const cost = cents(input.cost);
  const { converted } = input;
  return {
    revenue,
    cost,
    roi: cost > 0 ? ratio((revenue - cost) / cost) : null,
    costPerAcquisition: converted > 0 ? cents(cost / converted) : null,
    revenuePerConversion: converted > 0 ? cents(revenue / converted) : null,
    budget:
      input.budget === null
        ? null
        : {
            amount: cents(input.budget),
            spent: cost,
            remaining: cents(input.budget - cost),
            used: input.budget > 0 ? ratio(cost / input.budget) : null,
          },
  };
}

/**
 * A rate (part / whole) to 4 places; null when the whole is 0.
 *
 * @example
 * rate(1, 3); // 0.3333
 */
export function rate(part: number, whole: number): number | null {
  return whole > 0 ? ratio(part / whole) : null;
}
