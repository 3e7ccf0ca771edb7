export { chiSquareTail, zCdf, zQuantile } from './distributions.ts';
export { conversionRate, type Interval, type Proportion, rateDifference, relativeLift } from './proportions.ts';
export { minimumDetectableEffect, type PowerPlan, powerOf, sampleSize } from './sample-size.ts';
export {
  type ArmSummary,
  conversionArm,
  DEFAULT_TUNING,
  fixedHorizonP,
  mixtureRho,
  type SequentialOptions,
  type SequentialResult,
  sequentialTest,
  valueArm,
} from './sequential.ts';
export { type SampleRatioCheck, SRM_THRESHOLD, sampleRatioMismatch } from './srm.ts';
