import type { FlowDefinition } from './ast.ts';

/** One problem with a flow: the node it concerns (when it concerns one), where, and what. */
export interface FlowIssue {
  node?: string;
  /** A dotted JSON path in the definition: `nodes.3.duration`, `edges.2.to`. */
  path: string;
  message: string;
}

/** A flow's validation: the flow, or every problem found. */
export type FlowValidation = { ok: true; flow: FlowDefinition } | { ok: false; issues: FlowIssue[] };

/**
 * What the server knows and `validateFlow` cannot: each list given is checked against (a missing
 * list is not checked).
 */
export interface FlowContext {
  destinations?: readonly string[];
  /** Per destination id, the actions its plugin offers. */
  actions?: Readonly<Record<string, readonly string[]>>;
  audiences?: readonly string[];
  tags?: readonly string[];
  /** Trait keys known (trait definitions). */
  traits?: readonly string[];
  /** Computed trait keys. */
  computed?: readonly string[];
  /** Custom calendar names. */
  calendars?: readonly string[];
  /** Coupon pool keys. */
  couponPools?: readonly string[];
}
