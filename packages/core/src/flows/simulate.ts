/**
 * A flow run on a virtual clock, for one person: the same `enter`/`advance` the runner calls, fed
 * with a script of future events and profile changes instead of the world. Nothing is sent and
 * nothing stored; every message is rendered and every decision kept with its reason.
 */
import type { Duration, FlowDefinition, JsonValue } from './ast.ts';
import { advance, enter, resolveZone } from './engine.ts';
import { admit, nextEntry, type ProfileChange, triggeredByChange, triggeredByEvent } from './entry.ts';
import { type ScriptedDecision, scriptedExperiments } from './experiment.ts';
import type { ProfileFacts, StoredEvent } from './facts.ts';
import { noteSends } from './governance.ts';
import type { Effect, JournalEntry, RunState, StepInput, StepResult } from './state.ts';
import { durationMs } from './time.ts';

/** One thing that happens to the person during a simulation, at a time (epoch ms or ISO-8601). */
export interface ScriptItem {
  at: number | string;
  /** An event of the person (its `timestamp` defaults to `at`). */
  event?: StoredEvent;
  /** Traits set (null unsets). */
  traits?: Record<string, JsonValue>;
  /** The audiences and tags the person is in from then on. */
  audiences?: string[];
  tags?: string[];
}

/** What to simulate. */
export interface SimulationOptions {
  profile: ProfileFacts;
  /** When the simulation starts (epoch ms): the clock's now. */
  start: number;
  /** How far it looks ahead. */
  horizon: Duration;
  script?: readonly ScriptItem[];
  flowId?: string;
  runId?: string;
  /** Entry data of an `api` trigger. */
  data?: Record<string, JsonValue>;
  /** The result of a webhook or action (nothing is called): `{ ok: true }` with no output when absent. */
  results?: (
    effect: Effect & { type: 'webhook' | 'action' },
  ) => { ok: true; output?: unknown } | { ok: false; error: string };
  /** Custom calendars' days by name. */
  calendars?: Record<string, string[]>;
  /**
   * Experiment decisions by node id, as the runner would make them from everyone's outcomes (one
   * person cannot): undecided before `at` (held people wait until then), `winner` from `at` on.
   * Without one, held people wait for the deadline and take the default variant.
   */
  experiments?: Record<string, ScriptedDecision>;
}

/** A rendered message of a simulation. */
export interface SimulatedMessage {
  at: number;
  node: string;
  destination: string;
  subject?: string;
  body: string;
  key: string;
}

/** What happened in a simulation. */
export interface Simulation {
  /** When and why the person entered; absent when they never did within the horizon. */
  entered?: { at: number; reason: string };
  /** Triggers that came but did not let the person in, with why. */
  refused: { at: number; reason: string }[];
  /** The nodes in the order the run went through them. */
  path: string[];
  /** Every decision, in order, with its time and reason. */
  steps: JournalEntry[];
  messages: SimulatedMessage[];
  effects: { at: number; effect: Effect }[];
  /** Where the run was at the horizon (waiting at a node, due when), or how it ended. */
  end: { status: RunState['status'] | 'not_entered'; at?: number; node?: string | null; due?: number; reason?: string };
  /** The person's zone as the engine resolved it at the end. */
  zone: string;
}

const timeOf = (at: number | string) => (typeof at === 'number' ? at : Date.parse(at));

/**
 * Applies a script item to the simulated person's facts; returns the changes a trigger may match.
 *
 * @example
 * const changes = applyItem(facts, { at: now, tags: ['vip'] }, now);
 */
export function applyItem(facts: ProfileFacts, item: ScriptItem, at: number): ProfileChange[] {
  const changes: ProfileChange[] = [];
  if (item.traits) {
    const traits = { ...facts.traits };
    for (const [k, v] of Object.entries(item.traits)) {
      const from = traits[k];
      if (v === null) delete traits[k];
      else traits[k] = v;
      changes.push({ type: 'trait_changed', trait: k, from, to: v ?? undefined });
    }
    facts.traits = traits;
  }
  const diff = (
    before: readonly string[],
    after: string[],
    added: 'audience_entered' | 'tag_added',
    removed: 'audience_exited' | 'tag_removed',
  ) => {
    const key = added === 'audience_entered' ? 'audience' : 'tag';
    for (const x of after) if (!before.includes(x)) changes.push({ type: added, [key]: x } as ProfileChange);
    for (const x of before) if (!after.includes(x)) changes.push({ type: removed, [key]: x } as ProfileChange);
  };
  if (item.audiences) {
    diff(facts.audiences, item.audiences, 'audience_entered', 'audience_exited');
    facts.audiences = [...item.audiences];
  }
  if (item.tags) {
    diff(facts.tags, item.tags, 'tag_added', 'tag_removed');
    facts.tags = [...item.tags];
  }
  if (item.event) facts.events = [...(facts.events ?? []), { timestamp: new Date(at).toISOString(), ...item.event }];
  return changes;
}

/**
 * Applies a profile update a step asked for to the simulated person's facts.
 *
 * @example
 * for (const e of result.effects) applyEffect(facts, e);
 */
export function applyEffect(facts: ProfileFacts, e: Effect): void {
  if (e.type !== 'update_profile') return;
  const traits = { ...facts.traits, ...e.set };
  for (const t of e.unset) delete traits[t];
  facts.traits = traits;
  facts.tags = [...new Set([...facts.tags, ...e.addTags])].filter((t) => !e.removeTags.includes(t));
}

/**
 * Runs a flow for one person on a virtual clock from `start` to `start + horizon`: the trigger
 * (from the script's events and changes, a date trait, a schedule or calendar, or at once for the
 * API), the entry policy, then `advance()` on every timer and scripted event, with webhook and
 * action results from `results`. One run is simulated: the first the person is admitted to.
 *
 * @example
 * const sim = simulate(def, {
 *   profile: { id: 'p1', traits: { first_name: 'Ada' }, audiences: [], tags: [] },
 *   start: Date.parse('2026-03-01T09:00:00Z'),
 *   horizon: { days: 30 },
 *   script: [{ at: '2026-03-01T10:00:00Z', event: { type: 'track', event: 'Added To Cart' } }],
 * });
 * sim.messages; // [{ at: ..., destination: 'email', subject: 'Still thinking, Ada?', ... }]
 */
export function simulate(def: FlowDefinition, options: SimulationOptions): Simulation {
  const facts: ProfileFacts = structuredClone(options.profile);
  const end = options.start + durationMs(options.horizon);
  const queue = (options.script ?? [])
    .map((item, i) => ({ item, at: timeOf(item.at), i }))
    .sort((a, b) => a.at - b.at || a.i - b.i);
  const sim: Simulation = {
    refused: [],
    path: [],
    steps: [],
    messages: [],
    effects: [],
    end: { status: 'not_entered' },
    zone: '',
  };
  const runId = options.runId ?? 'simulation';
  const flowId = options.flowId ?? 'simulation';
  let state: RunState | undefined;
  let plannedAfter = options.start - 1;

  const record = (r: StepResult, at: number) => {
    for (const j of r.journal) {
      sim.steps.push(j);
      if (j.node && sim.path.at(-1) !== j.node) sim.path.push(j.node);
    }
    for (const e of r.effects) {
      sim.effects.push({ at, effect: e });
      if (e.type === 'send')
        sim.messages.push({ at, node: e.node, destination: e.destination, ...e.message, key: e.key });
      applyEffect(facts, e);
    }
    // Caps count this run's own sends too (facts.governance, governance.ts).
    noteSends(facts, def, r, at, flowId);
    state = r.state;
  };
  const step = (input: StepInput, now: number) => {
    const experiments = scriptedExperiments(options.experiments, now);
    record(advance(def, state!, input, { now, profile: facts, ...experiments }), now);
    // Nothing is called: each awaited webhook or action gets its scripted result at once.
    while (state!.status === 'awaiting_effect') {
      const effect = sim.effects.at(-1)!.effect as Effect & { type: 'webhook' | 'action' };
      const result = options.results?.(effect) ?? { ok: true as const };
      const ctx = { now, profile: facts, ...experiments };
      record(advance(def, state!, { type: 'effect_result', key: effect.key, ...result }, ctx), now);
    }
  };
  const tryEnter = (now: number, why: string, event?: StoredEvent) => {
    const verdict = admit(def, { facts, nowMs: now, runs: [] });
    if (!verdict.ok) {
      sim.refused.push({ at: now, reason: `${why}: ${verdict.reason}` });
      return;
    }
    sim.entered = { at: now, reason: `${why}; ${verdict.reason}` };
    state = enter(def, {
      runId,
      flowId,
      profileId: facts.id,
      now,
      ...(event ? { event } : {}),
      ...(options.data ? { data: options.data } : {}),
    });
    step({ type: 'due' }, now);
  };
  const planned = () => {
    if (state) return undefined;
    const t = def.trigger;
    if (t.type === 'api') return { at: options.start, why: 'entered through the API' };
    const zone = resolveZone(def, facts).zone;
    const next = nextEntry(def, {
      afterMs: plannedAfter,
      zone,
      traits: facts.traits,
      ...(options.calendars ? { calendars: options.calendars } : {}),
    });
    if (!next) return undefined;
    return { at: next.at, why: `${t.type}: ${next.why}` };
  };

  for (;;) {
    const item = queue[0];
    const active = state && (state.status === 'waiting' || state.status === 'awaiting_effect');
    const due = active && state!.due !== undefined ? state!.due : undefined;
    const entry = planned();
    const next = Math.min(item?.at ?? Infinity, due ?? Infinity, entry?.at ?? Infinity);
    if (next === Infinity || next > end) break;
    if (item && item.at === next) {
      queue.shift();
      const changes = applyItem(facts, item.item, next);
      const event: StoredEvent | undefined = item.item.event && {
        timestamp: new Date(next).toISOString(),
        ...item.item.event,
      };
      // A changed trait may move a date the run waits for, as the runner re-plans on trait changes.
      if (active && item.item.traits) step({ type: 'replan' }, next);
      if (active && event) step({ type: 'event', event }, next);
      else if (!state) {
        if (event && triggeredByEvent(def.trigger, event, next))
          tryEnter(next, `event ${JSON.stringify(event.event)}`, event);
        else {
          const change = changes.find((c) => triggeredByChange(def.trigger, c, next));
          if (change) tryEnter(next, change.type);
        }
      }
    } else if (due !== undefined && due === next) step({ type: 'due' }, next);
    else if (entry) {
      plannedAfter = entry.at;
      const t = def.trigger;
      if (t.type === 'schedule' && !facts.audiences.includes(t.audience))
        sim.refused.push({ at: entry.at, reason: `${entry.why}: not in audience ${t.audience}` });
      else if (t.type === 'calendar' && t.audience && !facts.audiences.includes(t.audience))
        sim.refused.push({ at: entry.at, reason: `${entry.why}: not in audience ${t.audience}` });
      else tryEnter(entry.at, entry.why);
      if (def.trigger.type === 'api' && !state) break;
    }
  }
  sim.zone = resolveZone(def, facts).zone;
  const s = state as RunState | undefined;
  if (s) {
    sim.end = { status: s.status, node: s.node };
    if (s.endedAt !== undefined) sim.end.at = s.endedAt;
    if (s.reason !== undefined) sim.end.reason = s.reason;
    if (s.due !== undefined) sim.end.due = s.due;
  }
  return sim;
}
