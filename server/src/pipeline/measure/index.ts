export * from './campaign-results.ts';
export * from './campaigns.ts';
export { type AnalyticsReader, createAnalyticsReader, type ReadMeta } from './reader.ts';
export { type RollupKey, recountRollup, rollupKeysOf, startRollupWorker } from './rollup.ts';
export { createMeasureStage, type MeasureStage } from './stage.ts';
export {
  deleteReport,
  getReport,
  insertReport,
  listReports,
  listRuns,
  type Report,
  type ReportFields,
  updateReport,
} from './report-queries.ts';
export { destinationProblem, type Reports } from './reports.ts';
