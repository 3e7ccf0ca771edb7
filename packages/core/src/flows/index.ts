export type * from './ast.ts';
export { type Finished, FlowBuilder, FlowError, flow, type NodeOptions, PathBuilder } from './builder.ts';
export {
  type ApartReason,
  type ConflictOptions,
  type ConflictReason,
  DEFAULT_CONFLICT_WINDOW_MS,
  earliestSends,
  type FlowOverlap,
  flowOverlap,
  type SendTiming,
  spanWords,
} from './conflicts.ts';
export {
  balanceOf,
  COUPON_NODE_SCHEMAS,
  couponField,
  DEFAULT_COUPON_FIELD,
  type IssueCouponEffect,
  MAX_POINTS,
  type PointsEffect,
} from './coupons.ts';
export { diffFlows, type FieldChange, type FlowDiff } from './diff.ts';
export {
  type AssignOwnerEffect,
  DEFAULT_EMPLOYEE_PATH,
  employeeReferences,
  eventEmployeeOf,
  type NoticeParts,
  type NotifyEmployeesEffect,
  noticeFor,
  noticeParts,
  readsEmployee,
} from './employees.ts';
export {
  advance,
  effectKey,
  enter,
  eventPathsUsed,
  MAX_NODES_PER_STEP,
  moveRun,
  resolveZone,
  WAIT_TYPES,
} from './engine.ts';
export { admit, nextEntry, type PastRun, type ProfileChange, triggeredByChange, triggeredByEvent } from './entry.ts';
export {
  type Arm,
  type Assignment,
  armOutcome,
  type ExperimentStatus,
  experimentAssignment,
  type ScriptedDecision,
} from './experiment.ts';
export {
  type ArmComparison,
  type ArmCount,
  type ArmResult,
  decideExperiment,
  type ExperimentCounts,
  type ExperimentResult,
} from './experiment-decide.ts';
export { experimentFields, MAX_DEADLINE_DAYS, MAX_VARIANTS } from './experiment-schema.ts';
export {
  type DecidedLeaf,
  type Decision,
  decideData,
  decideRule,
  decisionWords,
  type FactsNeeded,
  factsNeeded,
  flowRules,
  type ProfileFacts,
  type StoredEvent,
} from './facts.ts';
export {
  ANY_CHANNEL,
  byPriority,
  capsFor,
  counted,
  type FrequencyCap,
  type GovernanceFacts,
  type GovernanceSettings,
  governanceSchema,
  governSend,
  inQuietHours,
  NO_GOVERNANCE,
  noteSends,
  type QuietHours,
  type SendVerdict,
  type SentMessage,
} from './governance.ts';
export {
  type FlowsMessage,
  type FlowsSimulation,
  type FlowsSimulationOptions,
  type SimulatedFlow,
  type SimulatedRun,
  simulateFlows,
} from './governance-sim.ts';
export { outcomesOf } from './graph.ts';
export { POINTS_BALANCE, type PointsBalance, type PointsEntry, pointsBalance } from './points.ts';
export {
  edgeSchema,
  FLOW_LIMITS,
  type FlowJsonSchema,
  flowJsonSchema,
  flowSchema,
  NODE_SCHEMAS,
  NODE_TYPES,
  nodeSchema,
  TRIGGER_SCHEMAS,
  TRIGGER_TYPES,
  triggerSchema,
} from './schema.ts';
export {
  type ScriptItem,
  type SimulatedMessage,
  type Simulation,
  type SimulationOptions,
  simulate,
} from './simulate.ts';
export { SPLIT_BUCKETS, splitBucket, splitPath } from './split.ts';
export type { Effect, JournalEntry, RunState, RunStatus, StepContext, StepInput, StepResult } from './state.ts';
export {
  EMPLOYEE_TEMPLATE_FIELDS,
  finishTemplate,
  parseTemplate,
  renderJson,
  renderTemplate,
  renderTemplateParts,
  TEMPLATE_ROOTS,
  type TemplateEmployee,
  type TemplatePart,
  type TemplateScope,
} from './template.ts';
export {
  cronError,
  DEFAULT_ZONE,
  dateTraitTime,
  durationMs,
  isTimeZone,
  localIso,
  nextAnniversary,
  nextCalendarDay,
  nextCron,
  nextLocalTime,
  publicHolidays,
} from './time.ts';
export { type FlowContext, type FlowIssue, type FlowValidation, validateFlow } from './validate.ts';
