// Stage 2's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export { liveProfileId } from './admin.ts';
export type { BackfillRequest } from './backfill-jobs.ts';
export { type BackfillRow, getBackfill, type KeyCounts, listBackfills, type SampleChange } from './backfill-queries.ts';
export { type DuplicateGroup, duplicateGroups } from './duplicates/groups.ts';
export type { CandidateMerge } from './duplicates/merge.ts';
export {
  type DuplicateQuery,
  type DuplicateView,
  dismissDuplicate,
  getDuplicate,
  latestScan,
  listDuplicates,
  type ScanSummary,
} from './duplicates/queries.ts';
export { type ScanResult, scanDuplicates } from './duplicates/scan.ts';
export {
  CATCH_UP_AFTER_MS,
  type DuplicateSchedule,
  getDuplicateSchedule,
  lastScheduleRun,
  missedPeriods,
  periodStart,
  putDuplicateSchedule,
} from './duplicates/schedule.ts';
export { type ImportContext, runImport, upsertProfile } from './import.ts';
export {
  checkImportTags,
  getImport,
  type ImportView,
  importErrors,
  insertImport,
  restartImport,
} from './import-queries.ts';
export { type ImportMapping, parseMapping } from './import-rows.ts';
export {
  consentHistory,
  identitiesOf,
  profileEvents,
  profileIdByIdentity,
  profileMerges,
  profileView,
  subscriptionStates,
} from './profiles.ts';
export { type QualityReport, qualityReport, type TraitQuality } from './quality-report.ts';
export { createIdentifyStage, type IdentifyStage } from './stage.ts';
export {
  profileChain,
  type RecentProfile,
  recentProfiles,
  type TimelineBound,
  type TimelineEvent,
  timelineEvents,
} from './timeline.ts';
export {
  deleteTraitRule,
  getTraitRule,
  listTraitRules,
  putTraitRule,
  type StoredTraitRule,
} from './trait-rules.ts';
