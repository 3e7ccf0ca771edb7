import type { Rule } from '../ast.ts';
import type { CompileContext, RuleDependencies } from '../compile.ts';
import type { Fragment } from '../sql.ts';

/** One operator of the rule language: how it compiles, reads, moves with time and reads aloud. */
export interface Operator<R extends Rule> {
  /** Truth (may be NULL, read as false by the caller's coalesce) and, for leaves, the deciding value. */
  compile(rule: R, ctx: CompileContext, path: string): { truth: Fragment; value?: Fragment };
  dependencies(rule: R, deps: RuleDependencies): void;
  /** Profiles (`SELECT ... AS id`) whose truth may change because time moved from `since` to `now`. */
  edges?(rule: R, sinceMs: number, nowMs: number): Fragment | null;
  describe(rule: R, describe: (r: Rule) => string): string;
}
