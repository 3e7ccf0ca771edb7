// Stage 6, measure: the query builders and the maths of analytics, free of I/O (the server runs the
// statements these build on its read-only analytics connection).
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
