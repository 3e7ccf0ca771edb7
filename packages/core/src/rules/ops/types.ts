import type { Rule } from '../ast.ts';
import type { Fragment } from '../sql.ts';

// The compiler's contract with its operators: a leaf module (types only), so compile.ts and every operator import it
// without a cycle.

/** What a rule reads: which changes can change its truth. */
export interface RuleDependencies {
  events: Set<string>;
  traits: Set<string>;
  computed: Set<string>;
  accountTraits: Set<string>;
  tags: Set<string>;
  audiences: Set<string>;
  consent: boolean;
  subscriptions: boolean;
  /** Some leaf's truth changes with time alone (relative windows and dates). */
  timeBound: boolean;
}

/** One node of a compiled rule: its path in the tree, its truth, and for leaves the value that decided it. */
export interface CompiledNode {
  path: string;
  rule: Rule;
  truth: Fragment;
  value?: Fragment;
}

/** What an operator's compiler can ask for. */
export interface CompileContext {
  /** The evaluation instant as a SQL parameter. */
  now: Fragment;
  nowMs: number;
  /**
   * Adds a CTE (`SELECT <profile id> AS id, ... FROM ... JOIN scope s ON s.id = ...`) joined to the scope
   * by `id`, and returns its alias.
   */
  relation(body: Fragment): string;
  /** Compiles a child node. */
  child(rule: Rule, path: string): Fragment;
}

/** One operator of the rule language: how it compiles, reads, moves with time and reads aloud. */
export interface Operator<R extends Rule> {
  /** Truth (may be NULL, read as false by the caller's coalesce) and, for leaves, the deciding value. */
  compile(rule: R, ctx: CompileContext, path: string): { truth: Fragment; value?: Fragment };
  dependencies(rule: R, deps: RuleDependencies): void;
  /** Profiles (`SELECT ... AS id`) whose truth may change because time moved from `since` to `now`. */
  edges?(rule: R, sinceMs: number, nowMs: number): Fragment | null;
  describe(rule: R, describe: (r: Rule) => string): string;
}
