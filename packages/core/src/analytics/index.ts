// Stage 6, measure: the query builders and the maths of analytics, free of I/O (the server runs the
// statements these build on its read-only analytics connection).

export * from './active.ts';
export * from './attribution.ts';
export * from './funnel.ts';
export * from './kpi.ts';
export * from './paths.ts';
export {
  bucketOf,
  bucketStarts,
  INTERVALS,
  previousRange,
  RANGE_LIMITS,
  type TimeInterval,
  type TimeRange,
  timeRangeSchema,
} from './range.ts';
export * from './retention.ts';
export * from './roi.ts';
export * from './schedule.ts';
export {
  foldTrends,
  numericValue,
  OTHER_GROUP,
  percentChange,
  type RolledProperty,
  type RollupSource,
  rankKey,
  rollsUp,
  rollupSource,
  rollupWindow,
  TREND_LIMITS,
  TREND_MEASURES,
  type TrendBreakdown,
  type TrendLine,
  type TrendMeasure,
  type TrendQuery,
  type TrendRow,
  type TrendSeries,
  type TrendSeriesResult,
  trendsQuery,
} from './trends.ts';
