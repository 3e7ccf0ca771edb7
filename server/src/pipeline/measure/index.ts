export { type AnalyticsReader, createAnalyticsReader, type ReadMeta } from './reader.ts';
export { createMeasureStage, type MeasureStage } from './stage.ts';
