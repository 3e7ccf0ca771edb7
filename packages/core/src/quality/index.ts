export { applyFills } from './fill.ts';
export {
  applyStep,
  DEFAULT_COUNTRY_LANGUAGES,
  describeType,
  isCountryLanguage,
  type Normalized,
  type NormalizeOp,
  type NormalizeStep,
  normalizeCountry,
  normalizeDateValue,
  normalizeValue,
} from './normalize.ts';
export {
  type CompiledFill,
  compileTraitRules,
  type TraitQualityRule,
  TraitQualityRuleSchema,
  type TraitQualityRules,
  templateInputs,
} from './rules.ts';
