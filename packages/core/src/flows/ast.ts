/**
 * A flow: a JSON graph of nodes joined by typed edges. Conditions are the rule language's (profile
 * rules, event filters), messages go out through destinations. The shapes here are what the API
 * stores and what `advance()` runs; `flowSchema` (schema.ts) validates them.
 */
import type { Comparison, EventCondition, EventFilter, Rule } from '../rules/ast.ts';
import type { IssueCouponNode, PointsNode } from './coupon-types.ts';
import type { AssignOwnerNode, NotifyEmployeesNode } from './employee-types.ts';

export type { IssueCouponNode, PointsNode } from './coupon-types.ts';
export type { AssignOwnerNode, NotifyEmployeesNode, NotifyWho } from './employee-types.ts';

/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** An elapsed time. A day is 24 hours (as in the rule language); local calendar days are `wait_until`'s. */
export interface Duration {
  days?: number;
  hours?: number;
  minutes?: number;
  seconds?: number;
}

/** `HH:MM`, 24-hour, in the person's zone. */
export type LocalTime = string;

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

// ---- Triggers: who enters, when ------------------------------------------------------------------

/** An event of that name, optionally with conditions (the conditions of an event filter). */
export interface EventTrigger {
  type: 'event';
  event: string;
  where?: EventCondition[];
}
export interface AudienceTrigger {
  type: 'audience_entered' | 'audience_exited';
  audience: string;
}
export interface TagTrigger {
  type: 'tag_added' | 'tag_removed';
  tag: string;
}
/** A trait (or a computed trait, `rfm.segment`) changed, optionally to a value matching `to`. */
export interface TraitChangedTrigger {
  type: 'trait_changed';
  trait: string;
  computed?: boolean;
  to?: Comparison;
}
/** A date trait ± days at a local time of day: every year (birthdays) or once (an expiry). */
export interface DateTraitTrigger {
  type: 'date_trait';
  trait: string;
  offsetDays: number;
  time: LocalTime;
  repeat: 'yearly' | 'once';
}
/** A cron expression in a time zone entering the members of an audience. */
export interface ScheduleTrigger {
  type: 'schedule';
  cron: string;
  timezone: string;
  audience: string;
}
/** Public holidays of a country, or the days of a custom calendar, ± days at a local time. */
export interface CalendarTrigger {
  type: 'calendar';
  calendar: { country: string; region?: string } | { custom: string };
  offsetDays: number;
  time: LocalTime;
  /** Who enters; every profile when absent. */
  audience?: string;
  /** The zone of `time`; the flow's default when absent. */
  timezone?: string;
}
/** `POST /api/flows/:id/enter`; `data` names the run data fields the caller passes. */
export interface ApiTrigger {
  type: 'api';
  data?: string[];
}

export type Trigger =
  | EventTrigger
  | AudienceTrigger
  | TagTrigger
  | TraitChangedTrigger
  | DateTraitTrigger
  | ScheduleTrigger
  | CalendarTrigger
  | ApiTrigger;

// ---- Nodes -----------------------------------------------------------------------------------------

interface NodeBase {
  id: string;
  /** A name for people reading the flow. */
  name?: string;
}

/** A condition on run data or the trigger event: an event filter's field condition with `run.` / `event.` paths. */
export type DataCondition = EventCondition;

/** One case of a branch: a profile rule and/or run-data conditions, all of which must hold. */
export interface BranchCase {
  name?: string;
  rule?: Rule;
  data?: DataCondition[];
}

export interface WaitNode extends NodeBase {
  type: 'wait';
  duration: Duration;
}
/** Until a local time of day (on given weekdays), or until a date trait ± days (at a local time). */
export interface WaitUntilNode extends NodeBase {
  type: 'wait_until';
  until: { time: LocalTime; weekdays?: Weekday[] } | { trait: string; offsetDays?: number; time?: LocalTime };
}
/** Until an event matching `event` arrives (`matched`), or `timeout` passes (`timeout`). */
export interface WaitForEventNode extends NodeBase {
  type: 'wait_for_event';
  event: EventFilter;
  /** The event's value at `field` (a dot path from its root) must equal run data `run`. */
  match?: { field: string; run: string }[];
  timeout: Duration;
  /** Run data field → dot path in the matched event. */
  keep?: Record<string, string>;
}
export interface BranchNode extends NodeBase {
  type: 'branch';
  cases: BranchCase[];
}
export interface SplitNode extends NodeBase {
  type: 'split';
  paths: { percent: number; name?: string }[];
}
/**
 * Test on a sample, then send the winner (experiment.ts): `sample` percent of entrants are split
 * over the `variants` (and a `control` holdout that gets no message) while the runner measures the
 * `goal`; the others wait here until the runner decides (`decideExperiment`) and then follow the
 * winner, or at the deadline the `default` variant (marked inconclusive). Outcomes `variant:<i>`,
 * `control`.
 */
export interface ExperimentNode extends NodeBase {
  type: 'experiment';
  /** Shares of the sample; with `control` they add up to 100. */
  variants: { name: string; percent: number }[];
  /** A holdout share of the sample that gets no message. */
  control?: { percent: number };
  /** The percentage of entrants tested while undecided (the rest wait here). */
  sample: number;
  /** A conversion: an event matching `event` within `withinSeconds` of assignment; with `value`, its numeric property (dot path) summed per person (revenue). */
  goal: { event: EventFilter; withinSeconds: number; value?: string };
  /** `alpha` (default 0.05) under any number of looks; `default` (a variant index, default 0) when undecided at the deadline. */
  decide: { alpha?: number; deadlineDays: number; default?: number; minPerArm?: number; tuning?: number };
}
export interface SendNode extends NodeBase {
  type: 'send';
  destination: string;
  /** `track: false`: no tracked links or open pixel in this message (email destinations track by default). */
  message: { subject?: string; body: string; track?: boolean };
  /** When a frequency cap is full: wait for the first allowed moment (default) or go on without sending. */
  onCap?: 'defer' | 'skip';
  /** Exempt from frequency caps and quiet hours, and not counted by caps (a receipt, a password reset). */
  transactional?: boolean;
}
export interface UpdateProfileNode extends NodeBase {
  type: 'update_profile';
  /** Trait → value; strings are templates. */
  set?: Record<string, JsonValue>;
  unset?: string[];
  addTags?: string[];
  removeTags?: string[];
}
export interface WebhookNode extends NodeBase {
  type: 'webhook';
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  /** A template; the rendered text is sent as is. */
  body?: string;
  /** Run data field → dot path in the response's JSON body. */
  keep?: Record<string, string>;
}
export interface ActionNode extends NodeBase {
  type: 'action';
  destination: string;
  action: string;
  /** Strings are templates. */
  input?: Record<string, JsonValue>;
  /** Run data field → dot path in the action's output. */
  keep?: Record<string, string>;
}
export interface ExitNode extends NodeBase {
  type: 'exit';
}

export type FlowNode =
  | WaitNode
  | WaitUntilNode
  | WaitForEventNode
  | BranchNode
  | SplitNode
  | ExperimentNode
  | SendNode
  | UpdateProfileNode
  | WebhookNode
  | ActionNode
  | AssignOwnerNode
  | NotifyEmployeesNode
  | IssueCouponNode
  | PointsNode
  | ExitNode;

export type NodeType = FlowNode['type'];

/**
 * An edge taken when `from` ends with outcome `on`: `next`, `matched`, `timeout`, `missing` (a date
 * trait a wait needs is not there), `failed` (a webhook or action), `else`, `case:<i>`, `path:<i>`,
 * `variant:<i>` and `control` (an experiment).
 */
export interface Edge {
  from: string;
  to: string;
  on: string;
}

export type Reentry = 'once' | 'every_time' | { afterDays: number };

/** A flow definition. A run starts at the first node of `nodes`. */
export interface FlowDefinition {
  version: 1;
  name: string;
  /** The IANA zone for people whose own zone is unknown (default UTC). */
  timezone?: string;
  /** Higher goes first when runs of one person compete for a capped slot at the same moment (default 0). */
  priority?: number;
  trigger: Trigger;
  entry: { rule?: Rule; reentry: Reentry; concurrent?: boolean };
  /** A conversion: an event matching `event` within `withinSeconds` of entry; `exit` ends the run. */
  goal?: { event: EventFilter; withinSeconds: number; exit: boolean };
  /** Re-checked before every send: when it holds, the run ends instead. */
  exit?: { rule: Rule };
  nodes: FlowNode[];
  edges: Edge[];
}
