export * from './alert-queries.ts';
export { ALERT_DEFAULTS, type CheckResult, checkAlerts, type KpiStatus, kpiStatus } from './alerts.ts';
export * from './campaign-results.ts';
export * from './campaigns.ts';
export {
  type AnalyticsReader,
  createAnalyticsReader,
  type PinnedReader,
  type ReadMeta,
  readHeaders,
} from './reader.ts';
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
export { type RollupKey, recountRollup, rollupKeysOf, startRollupWorker } from './rollup.ts';
export {
  addFirstTimesOf,
  type FirstTimeMoves,
  firstTimeMovesOf,
  followFirstTimes,
  forgetFirstTimes,
} from './rollup-first-times.ts';
export { followRepoint, forgetPeople, movesOf, peopleRowsOf } from './rollup-people.ts';
export {
  dropRolledProperty,
  type RolledProperty,
  type RolledPropertyRow,
  rolledProperties,
  rolledPropertyRows,
  rollUpProperty,
} from './rollup-values.ts';
export { createMeasureStage, type MeasureStage } from './stage.ts';
