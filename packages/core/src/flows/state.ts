/**
 * The step function's contract (see README.md, "The step function"): a run's state, the inputs that
 * move it, the context it reads, and what a step returns.
 */
import type { FlowDefinition, JsonValue, NodeType } from './ast.ts';
import type { IssueCouponEffect, PointsEffect } from './coupon-types.ts';
import type { AssignOwnerEffect, NotifyEmployeesEffect } from './employee-types.ts';
import type { ExperimentStatus } from './experiment-types.ts';
import type { ProfileFacts, StoredEvent } from './facts.ts';

/**
 * Where a run is. `waiting`: for `due` (a timer) and, at a `wait_for_event` node or while a goal
 * listens, for events. `awaiting_effect`: for the result of a webhook or action. The other three
 * are final.
 */
export type RunStatus = 'waiting' | 'awaiting_effect' | 'completed' | 'exited' | 'failed';

/** A run's state: what the runner stores in its one row per run (small: no profile, no definition). */
export interface RunState {
  runId: string;
  flowId: string;
  profileId: string;
  status: RunStatus;
  /** The node the run waits at, awaits, or ended at; null before its first step. */
  node: string | null;
  /** How many times the run entered `node` before (0 the first time): part of every effect's key. */
  iteration: number;
  /** Times each node was entered (the iteration of the next visit). */
  visits: Record<string, number>;
  /** The run's data: the API's entry data, webhook and action outputs, fields of awaited events. */
  data: Record<string, JsonValue>;
  /** The fields of the triggering event the flow reads (templates, conditions), not the whole event. */
  event?: Record<string, unknown>;
  enteredAt: number;
  /** When the runner must feed `{ type: 'due' }` (a wait's end, a timeout); none while only events can move it. */
  due?: number;
  /** The event names the run listens for (a wait for an event, a goal), `*` for any; none: no events. */
  listen?: string[] | '*';
  /** When the current `wait_for_event` began listening; for a run moved to another version, when its wait began. */
  since?: number;
  /** The effect whose result the run awaits (`awaiting_effect`). */
  awaiting?: { key: string; type: 'webhook' | 'action' | 'issue_coupon' };
  convertedAt?: number;
  endedAt?: number;
  /** Why the run ended, in words. */
  reason?: string;
}

/** What moves a run. */
export type StepInput =
  /** A timer: the run's `due` came (an early tick does nothing). Also the first step of a new run. */
  | { type: 'due' }
  /** A date trait a `wait_until` waits for changed: plan the wait again (sooner, later, or `missing`). */
  | { type: 'replan' }
  /** An event of the run's profile arrived (checked against the goal and a `wait_for_event`). */
  | { type: 'event'; event: StoredEvent }
  /** The result of the webhook or action the run awaits, by its idempotency key. */
  | { type: 'effect_result'; key: string; ok: true; output?: unknown }
  | { type: 'effect_result'; key: string; ok: false; error: string };

/** What a step reads besides the state: the time and the person. */
export interface StepContext {
  /** The clock's now (the real clock in the runner, a virtual one in simulation), epoch ms. */
  now: number;
  profile: ProfileFacts;
  /** The runner's status of the flow's experiment nodes, by node id (none: undecided). */
  experiments?: Record<string, ExperimentStatus>;
}

interface EffectBase {
  /** `flow:<runId>:<nodeId>:<iteration>`: stable across retries of the same step. */
  key: string;
  node: string;
}

/** Something a step asks the runner to do, committed with the run's new state. */
export type Effect =
  | (EffectBase & { type: 'send'; destination: string; message: { subject?: string; body: string; track?: boolean } })
  | (EffectBase & {
      type: 'update_profile';
      set: Record<string, JsonValue>;
      unset: string[];
      addTags: string[];
      removeTags: string[];
    })
  | (EffectBase & {
      type: 'webhook';
      url: string;
      method: string;
      headers: Record<string, string>;
      body?: string;
    })
  | (EffectBase & { type: 'action'; destination: string; action: string; input: Record<string, JsonValue> })
  | AssignOwnerEffect
  | NotifyEmployeesEffect
  | IssueCouponEffect
  | PointsEffect;

/** One decision of a run, for its journey (`GET /api/flows/:id/runs?profile=`). */
export interface JournalEntry {
  at: number;
  /** The node decided on; none for the run's own events (entered, converted). */
  node?: string;
  type?: NodeType | 'enter' | 'goal' | 'end' | 'migrated';
  /** The outcome (`next`, `case:1`, `timeout`, `waiting`, `skipped`, ...). */
  outcome: string;
  /** The node the run went to. */
  to?: string;
  /** Why, in words, with the values that decided it. */
  reason: string;
  values?: Record<string, unknown>;
}

/** What a step returns: the state to store, the effects to commit with it, the journal to append. */
export interface StepResult {
  state: RunState;
  effects: Effect[];
  journal: JournalEntry[];
}

/** The mutable working copy a step's node handlers share. */
export interface Step {
  def: FlowDefinition;
  state: RunState;
  /** The profile as this step sees it: its own `update_profile` changes are applied for later nodes. */
  facts: ProfileFacts;
  now: number;
  zone: { zone: string; source: 'trait' | 'events' | 'flow' };
  effects: Effect[];
  journal: JournalEntry[];
  /** `StepContext.experiments`. */
  experiments?: Record<string, ExperimentStatus>;
}

/** What a node handler decided. */
export type Outcome =
  /** `as`: the outcome the journal records when it is not the edge taken (a send skipped: `capped`, edge `next`). */
  | { go: string; as?: string; reason: string; values?: Record<string, unknown> }
  | { wait: { due?: number; listen?: boolean }; reason: string; values?: Record<string, unknown> }
  | { await: Effect & { type: 'webhook' | 'action' | 'issue_coupon' }; reason: string }
  | { end: 'completed' | 'exited' | 'failed'; reason: string; values?: Record<string, unknown> };
