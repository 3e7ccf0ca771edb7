import type { Rule, RuleOp } from '../ast.ts';
import { consent, subscription } from './contact.ts';
import { aggregate, occurrence, performed } from './events.ts';
import { and, not, or } from './logic.ts';
import { hasTag, inAudience } from './membership.ts';
import type { Operator } from './types.ts';
import { account, computed, trait, traitIndex } from './value.ts';

/** Every operator, by its `op`: one small module each, no switch over node types. */
export const OPERATORS: { [K in RuleOp]: Operator<Extract<Rule, { op: K }>> } = {
  and,
  or,
  not,
  trait,
  trait_index: traitIndex,
  computed,
  account,
  performed,
  aggregate,
  occurrence,
  has_tag: hasTag,
  in_audience: inAudience,
  consent,
  subscription,
};
