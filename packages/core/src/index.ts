export * from './analytics/index.ts';
export { type Campaign, campaignFromUrl } from './campaign.ts';
export { type CorrectedTime, correctTime } from './clock.ts';
export * from './clustering/index.ts';
export {
  type Issue,
  type JsonObject,
  parseTimestamp,
  type TrackingEvent,
  type Validation,
  validateEvent,
} from './event.ts';
export * from './flows/index.ts';
export * from './identity/index.ts';
export { describeIssues, type IssueText, issueMessage } from './issues.ts';
export { EVENT_TYPES, type EventType, isEventType, LIMITS } from './limits.ts';
export * from './profile/index.ts';
export * from './quality/index.ts';
export * from './rules/index.ts';
export { type ScanProblem, scanJson, storableText } from './scan.ts';
export * from './stats/index.ts';
