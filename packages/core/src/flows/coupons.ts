/**
 * The coupon and points nodes. `issue_coupon` asks the runner for one code of a pool and waits for it
 * (the runner issues it exactly once per visit, keyed by the effect key); `points` writes a ledger
 * entry with the step. The balance is `computed.points_balance` in the facts (points.ts), so rules,
 * branches and templates read it like any computed trait; a `points` node updates it for the rest of
 * its step.
 */
import { z } from 'zod';
import { valueAt } from '../rules/values.ts';
import type { IssueCouponNode, PointsEffect, PointsNode } from './coupon-types.ts';
import { POINTS_BALANCE } from './points.ts';
import type { Outcome, Step } from './state.ts';
import { renderTemplate, scopeOf } from './template.ts';

export type { IssueCouponEffect, IssueCouponNode, PointsEffect, PointsNode } from './coupon-types.ts';

/** The run data field a code is kept in when the node names none. */
export const DEFAULT_COUPON_FIELD = 'coupon';
/** The largest `delta` and `expiresInDays`. */
export const MAX_POINTS = 1_000_000_000;
const MAX_EXPIRY_DAYS = 3660;

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const nodeId = z.string().regex(ID, 'a node id: letters, digits, _ and -, at most 64');
const poolKey = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'a pool key: a-z, 0-9, _ and -, at most 64');
const field = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'a run data field name');
const base = { id: nodeId, name: z.string().min(1).max(200).optional() };

/** The zod schemas of the coupon and points nodes, by type (spread into `NODE_SCHEMAS`). */
export const COUPON_NODE_SCHEMAS = {
  issue_coupon: z.strictObject({ ...base, type: z.literal('issue_coupon'), pool: poolKey, as: field.optional() }),
  points: z.strictObject({
    ...base,
    type: z.literal('points'),
    delta: z.union([
      z
        .number()
        .int()
        .min(-MAX_POINTS)
        .max(MAX_POINTS)
        .refine((n) => n !== 0, 'a delta of 0 changes nothing'),
      z.string().min(1).max(1000),
    ]),
    reason: z.string().min(1).max(500),
    expiresInDays: z.number().int().min(1).max(MAX_EXPIRY_DAYS).optional(),
    allowNegative: z.boolean().optional(),
  }),
} as const;

/** The run data field an `issue_coupon` node keeps its code in. */
export const couponField = (n: IssueCouponNode): string => n.as ?? DEFAULT_COUPON_FIELD;

// An outcome without an edge that should not fail the run: it exits with the reason instead.
function optional(step: Step, node: { id: string }, go: string, reason: string, values?: Record<string, unknown>) {
  const edge = step.def.edges.some((e) => e.from === node.id && e.on === go);
  if (edge) return { go, reason, ...(values ? { values } : {}) };
  return { end: 'exited' as const, reason: `${reason} (no ${go} edge)`, ...(values ? { values } : {}) };
}

/**
 * The person's points balance as the step sees it (`computed.points_balance`, 0 when absent).
 *
 * @example
 * balanceOf(step); // 120
 */
export function balanceOf(step: Step): number {
  const v = step.facts.computed?.[POINTS_BALANCE];
  return typeof v === 'number' ? v : 0;
}

function points(node: PointsNode, step: Step, key: string): Outcome {
  const scope = scopeOf(step);
  let delta = node.delta;
  if (typeof delta === 'string') {
    const text = renderTemplate(delta, scope).text.trim();
    if (!/^-?\d{1,10}$/.test(text) || Number(text) === 0 || Math.abs(Number(text)) > MAX_POINTS)
      return { go: 'failed', reason: `points: ${JSON.stringify(text)} is not a non-zero whole number of points` };
    delta = Number(text);
  }
  const balance = balanceOf(step);
  if (delta < 0 && !node.allowNegative && balance + delta < 0)
    return optional(step, node, 'insufficient', `a balance of ${balance} cannot spend ${-delta} points`, {
      balance,
      delta,
    });
  const reason = renderTemplate(node.reason, scope).text.slice(0, 500) || node.id;
  const effect: PointsEffect = { type: 'points', key, node: node.id, delta, reason };
  if (node.expiresInDays) effect.expiresAt = step.now + node.expiresInDays * 86_400_000;
  step.effects.push(effect);
  // Later nodes of this step see the new balance; the runner's next step reads it from the ledger.
  step.facts = { ...step.facts, computed: { ...step.facts.computed, [POINTS_BALANCE]: balance + delta } };
  return {
    go: 'next',
    reason: `${delta > 0 ? 'add' : 'subtract'} ${Math.abs(delta)} points (${reason}): balance ${balance + delta}`,
    values: { key, delta, balance: balance + delta },
  };
}

/** The engine's handlers of the coupon and points nodes (spread into the handler table of nodes.ts). */
export const couponHandlers = {
  issue_coupon: {
    run: (node: IssueCouponNode, _step: Step, key: string): Outcome => ({
      await: { type: 'issue_coupon', key, node: node.id, pool: node.pool },
      reason: `a code of pool ${node.pool}`,
    }),
    result: (
      node: IssueCouponNode,
      step: Step,
      result: { ok: true; output?: unknown } | { ok: false; error: string },
    ): Outcome => {
      if (!result.ok) return { go: 'failed', reason: `failed: ${result.error}` };
      // No output at all: a simulation's default answer (a code the simulation does not know).
      if (result.output === undefined) return { go: 'next', reason: `issued a code of ${node.pool}` };
      const code = valueAt(result.output, ['code']);
      if (typeof code !== 'string') return optional(step, node, 'empty', `pool ${node.pool} has no code left`);
      const f = couponField(node);
      const kept: Record<string, string> = { [f]: code };
      const expires = valueAt(result.output, ['expiresAt']);
      if (typeof expires === 'string') kept[`${f}_expires_at`] = expires;
      Object.assign(step.state.data, kept);
      return { go: 'next', reason: `issued ${code} of ${node.pool}`, values: kept };
    },
  },
  points: { run: points },
};

/** The coupon and points nodes. */
export type CouponNode = IssueCouponNode | PointsNode;

/**
 * The templates of a coupon or points node (for the event paths a flow reads and template checks).
 *
 * @example
 * couponNodeTexts({ type: 'points', delta: '{{ event.properties.total }}', reason: 'order', ... }); // both
 */
export function couponNodeTexts(n: CouponNode): string[] {
  if (n.type !== 'points') return [];
  return [n.reason, ...(typeof n.delta === 'string' ? [n.delta] : [])];
}

/**
 * The run data fields a coupon node sets (`coupon`, `coupon_expires_at`).
 *
 * @example
 * couponRunFields({ id: 'c', type: 'issue_coupon', pool: 'spring' }); // ['coupon', 'coupon_expires_at']
 */
export function couponRunFields(n: CouponNode): string[] {
  return n.type === 'issue_coupon' ? [couponField(n), `${couponField(n)}_expires_at`] : [];
}

/**
 * What is wrong with a coupon node beyond its structure: a pool the server does not have.
 *
 * @example
 * couponNodeIssues(node, { couponPools: ['spring'] }); // [] or [{ field: 'pool', message }]
 */
export function couponNodeIssues(
  n: CouponNode,
  known: { couponPools?: readonly string[] },
): { field: string; message: string }[] {
  if (n.type === 'issue_coupon' && known.couponPools && !known.couponPools.includes(n.pool))
    return [{ field: 'pool', message: `unknown coupon pool "${n.pool}"` }];
  return [];
}
