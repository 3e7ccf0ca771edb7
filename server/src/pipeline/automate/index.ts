// Stage 4's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export {
  type CalendarDay,
  type CalendarRecord,
  type CalendarRow,
  calendarKeys,
  deleteCalendar,
  flowNamingCalendar,
  getCalendar,
  insertCalendar,
  listCalendars,
  updateCalendar,
} from './calendars.ts';
export { needsOf } from './catalog.ts';
export {
  type FlowRecord,
  type FlowRow,
  type FlowStatus,
  flowRuns,
  getFlow,
  getFlowVersion,
  insertFlow,
  listFlows,
  publishFlow,
  type RunView,
  type StepView,
  setFlowStatus,
  updateFlow,
} from './flow-queries.ts';
export type { MigrationReport, MigrationRequest } from './migrate-runs.ts';
export { type FactsNeeds, loadFacts } from './people.ts';
export { planFlow, replanCalendar } from './planner.ts';
export { runnerIssues } from './runnable.ts';
export { type FlowStats, flowStats, type NodeStats, type SendStats } from './stats.ts';
export type { ApiEntry } from './runner.ts';
export { type AutomateStage, createAutomateStage } from './stage.ts';
export { listVersions, type VersionSummary, versionOf } from './version-queries.ts';
