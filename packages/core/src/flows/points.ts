/**
 * A person's points balance from their ledger, at a moment. Credits may expire; a debit spends the
 * credits that expire soonest first (those that never expire last), so points already spent never
 * expire a second time. A debit larger than what is left leaves a negative balance, which later credits
 * pay back first.
 */

/** The computed trait the balance is given to flows as: `computed.points_balance`. */
export const POINTS_BALANCE = 'points_balance';

/** One ledger entry: `at` and `expiresAt` in epoch ms (in the ledger's order). */
export interface PointsEntry {
  delta: number;
  at: number;
  expiresAt?: number | null;
}

/** A balance and the credits still counting, soonest to expire first. */
export interface PointsBalance {
  balance: number;
  /** What is left of credits that will expire, with when. */
  expiring: { amount: number; at: number }[];
}

/**
 * The balance at `now` of a ledger (entries in the order they were written; entries after `now` do not
 * count yet).
 *
 * @example
 * pointsBalance([{ delta: 100, at: 0, expiresAt: 1000 }, { delta: -30, at: 10 }], 500); // { balance: 70, ... }
 * pointsBalance([{ delta: 100, at: 0, expiresAt: 1000 }, { delta: -30, at: 10 }], 1000).balance; // 0
 */
export function pointsBalance(entries: readonly PointsEntry[], now: number): PointsBalance {
  let lots: { amount: number; expiresAt: number | null }[] = [];
  let debt = 0;
  const alive = (at: number) => {
    lots = lots.filter((l) => l.amount > 0 && (l.expiresAt === null || l.expiresAt > at));
  };
  for (const e of entries) {
    if (e.at > now) continue;
    alive(e.at);
    if (e.delta > 0) {
      const repaid = Math.min(debt, e.delta);
      debt -= repaid;
      if (e.delta > repaid) lots.push({ amount: e.delta - repaid, expiresAt: e.expiresAt ?? null });
      continue;
    }
    let need = -e.delta;
    const order = [...lots].sort((a, b) => (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity));
    for (const lot of order) {
      if (!need) break;
      const used = Math.min(lot.amount, need);
      lot.amount -= used;
      need -= used;
    }
    debt += need;
  }
  alive(now);
  const balance = lots.reduce((s, l) => s + l.amount, 0) - debt;
  const expiring = lots
    .filter((l) => l.expiresAt !== null)
    .map((l) => ({ amount: l.amount, at: l.expiresAt! }))
    .sort((a, b) => a.at - b.at);
  return { balance, expiring };
}
