export { type AnalyticsReader, createAnalyticsReader, type ReadMeta } from './reader.ts';
export { type RollupKey, recountRollup, rollupKeysOf, startRollupWorker } from './rollup.ts';
export { createMeasureStage, type MeasureStage } from './stage.ts';
