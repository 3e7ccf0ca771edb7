export type * from './ast.ts';
export { type Compare, r } from './builder.ts';
export {
  type CompiledNode,
  type CompiledRule,
  compileRule,
  describeRule,
  type RuleDependencies,
  ruleDependencies,
  ruleEdges,
} from './compile.ts';
export {
  isDateOperand,
  normalizeDate,
  RULE_LIMITS,
  type RuleIssue,
  type RuleValidation,
  ruleSchema,
  validateRule,
} from './schema.ts';
export { Fragment, sql as ruleSql } from './sql.ts';
