/**
 * The shapes of the coupon and points nodes and their effects (coupons.ts runs them): no imports from
 * the rest of the engine, so ast.ts and state.ts can name them.
 */

/**
 * Takes one available code of a coupon pool for the run, once: the runner issues it under the visit's
 * effect key (a replayed step gets the same code) and the run keeps it as run data `as` (default
 * `coupon`; its expiry as `<as>_expires_at`). Outcomes: `next`, `empty` (the pool has no code left; without
 * an edge the run exits).
 */
export interface IssueCouponNode {
  id: string;
  name?: string;
  type: 'issue_coupon';
  /** The pool's key (`/api/coupon-pools`). */
  pool: string;
  /** The run data field that keeps the code (default `coupon`). */
  as?: string;
}

/**
 * Adds (or with a negative `delta`, subtracts) points on the person's ledger, once per visit (the
 * effect key is the entry's source). `delta`: an integer, or a template rendering one (`{{
 * event.properties.total }}`). `expiresInDays`: a credit stops counting then. A subtraction that would
 * take the balance below 0 takes `insufficient` (nothing written; without an edge the run exits) unless
 * `allowNegative`. A delta that does not render to a non-zero integer takes `failed`.
 */
export interface PointsNode {
  id: string;
  name?: string;
  type: 'points';
  delta: number | string;
  /** Why, in words (a template): kept on the ledger entry. */
  reason: string;
  expiresInDays?: number;
  allowNegative?: boolean;
}

/** What an `issue_coupon` node asks the runner: a code of `pool` for the run, under `key`. */
export interface IssueCouponEffect {
  type: 'issue_coupon';
  key: string;
  node: string;
  pool: string;
}

/** What a `points` node asks the runner: one ledger entry, its source `key`. */
export interface PointsEffect {
  type: 'points';
  key: string;
  node: string;
  delta: number;
  reason: string;
  /** Epoch ms when the credit stops counting. */
  expiresAt?: number;
}
