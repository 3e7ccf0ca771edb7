export type * from './ast.ts';
export { type Compare, r } from './builder.ts';
export {
  type CompiledNode,
  type CompiledRule,
  compileRule,
  describeRule,
  emptyDependencies,
  type RuleDependencies,
  ruleDependencies,
  ruleEdges,
} from './compile.ts';
export {
  COMPUTED_PRESETS,
  type CompiledComputedTrait,
  type ComputedTraitDefinition,
  compileComputedTrait,
  computedKindOf,
  computedTraitEdges,
  computedTraitSchema,
  describeComputedTrait,
  LIFECYCLE_DEFAULTS,
  RFM_DEFAULTS,
} from './computed.ts';
export type { ComputedKind, KindDependencies } from './computed-kinds.ts';
export { compareValue, eventName, matchEvent } from './evaluate.ts';
export {
  compileEventFilter,
  describeEventFilter,
  eventFilterJsonSchema,
  eventFilterSchema,
} from './event-filter.ts';
export { type JsonSchema, ruleJsonSchema } from './json-schema.ts';
export { PREFERENCE_DEFAULTS, type PreferenceDefinition } from './preferences.ts';
export {
  AGGREGATE_COMPARISONS,
  COMPARISONS,
  isDateOperand,
  normalizeDate,
  RULE_HINT,
  RULE_LIMITS,
  type RuleIssue,
  type RuleValidation,
  ruleSchema,
  validateRule,
} from './schema.ts';
export { SCORE_DEFAULTS, type ScoreDefinition } from './scores.ts';
export { Fragment, sql as ruleSql } from './sql.ts';
