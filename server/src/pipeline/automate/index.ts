// Stage 4's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export {
  type CalendarDay,
  type CalendarRecord,
  type CalendarRow,
  calendarKeys,
  calendarsFor,
  deleteCalendar,
  flowNamingCalendar,
  getCalendar,
  insertCalendar,
  listCalendars,
  updateCalendar,
} from './calendars.ts';
export { needsOf } from './catalog.ts';
export {
  CONFLICT_EVENT_DAYS,
  CONFLICT_MAX_PEOPLE,
  CONFLICT_MEASURE_TIMEOUT_MS,
  type ConflictReport,
  type FlowConflict,
  findConflicts,
  MAX_MEASURED_CONFLICTS,
  storeConflicts,
  storedConflicts,
} from './conflicts.ts';
export {
  type CouponPoolRecord,
  type CouponPoolRow,
  type CouponStats,
  couponPoolKeys,
  couponStats,
  couponsOf,
  deleteCouponPool,
  flowNamingPool,
  getCouponPool,
  importCodes,
  insertCouponPool,
  listCouponPools,
  type PersonCoupon,
  updateCouponPool,
} from './coupon-queries.ts';
export { type ExperimentReport, experimentResults } from './experiment-results.ts';
export {
  archiveFlow,
  type FlowRecord,
  type FlowRow,
  type FlowStatus,
  type FlowTransition,
  flowRuns,
  getFlow,
  getFlowVersion,
  insertFlow,
  listFlows,
  type PublishRefusal,
  publishFlow,
  type ReviewState,
  type ReviewStep,
  type RunView,
  reviewFlow,
  type StepView,
  setFlowStatus,
  updateFlow,
} from './flow-queries.ts';
export { type GovernanceRow, getGovernance, putGovernance } from './governance.ts';
export type { MigrationReport, MigrationRequest } from './migrate-runs.ts';
export { type FactsNeeds, loadFacts } from './people.ts';
export { planFlow, replanCalendar } from './planner.ts';
export { adjustPoints, entriesOf, type LedgerRow, ledgers, type PointsAdjustment } from './points.ts';
export { type PersonRun, runsOfProfiles } from './profile-runs.ts';
export {
  type FlowReachOut,
  flowReachOut,
  type StaleFlow,
  staleFlows,
  type TriggerReach,
  triggerReach,
} from './review.ts';
export { runnerIssues } from './runnable.ts';
export type { ApiEntry } from './runner.ts';
export { type AutomateStage, createAutomateStage } from './stage.ts';
export {
  type FlowRunCounts,
  type FlowStats,
  flowRunCounts,
  flowStats,
  type NodeStats,
  type SendStats,
} from './stats.ts';
export { listVersions, type VersionSummary, versionOf } from './version-queries.ts';
