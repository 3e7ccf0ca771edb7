/**
 * Several flows for one person on one virtual clock, sharing the person's sends: what caps, quiet
 * hours and priority decide between flows, with the same `enter`/`advance` the runner calls. At each
 * moment the flows' work is done in priority order (higher first; equal priorities in the order given):
 * for each flow, its runs take that moment's events and timers, then the flow enters the person when a
 * trigger says so — as the runner steps a person's runs that are due together (`byPriority`).
 */
import type { Duration, FlowDefinition } from './ast.ts';
import { advance, enter, resolveZone } from './engine.ts';
import { admit, nextEntry, type PastRun, type ProfileChange, triggeredByChange, triggeredByEvent } from './entry.ts';
import type { ProfileFacts, StoredEvent } from './facts.ts';
import { noteSends } from './governance.ts';
import { applyEffect, applyItem, type ScriptItem, type SimulatedMessage } from './simulate.ts';
import type { Effect, JournalEntry, RunState, StepInput, StepResult } from './state.ts';
import { durationMs } from './time.ts';

/** A flow in a multi-flow simulation. */
export interface SimulatedFlow {
  id: string;
  def: FlowDefinition;
}

/** What to simulate: the person (with `governance` and past `sends` in the facts), the flows, the script. */
export interface FlowsSimulationOptions {
  profile: ProfileFacts;
  flows: readonly SimulatedFlow[];
  start: number;
  horizon: Duration;
  script?: readonly ScriptItem[];
  /** Webhook and action results (nothing is called): `{ ok: true }` when absent. */
  results?: (
    effect: Effect & { type: 'webhook' | 'action' },
  ) => { ok: true; output?: unknown } | { ok: false; error: string };
  calendars?: Record<string, string[]>;
}

/** A message of a multi-flow simulation. */
export interface FlowsMessage extends SimulatedMessage {
  flowId: string;
  runId: string;
  priority: number;
  /** The destination's channel (when the facts' governance names it). */
  channel?: string;
  transactional: boolean;
}

/** One run of a multi-flow simulation, where it was at the horizon. */
export interface SimulatedRun {
  flowId: string;
  runId: string;
  enteredAt: number;
  state: RunState;
}

/** What happened. */
export interface FlowsSimulation {
  messages: FlowsMessage[];
  /** Every journal entry, with its flow and run. */
  steps: (JournalEntry & { flowId: string; runId: string })[];
  runs: SimulatedRun[];
  refused: { at: number; flowId: string; reason: string }[];
}

/** Passes over one moment before the simulation gives up (each pass steps every run due then). */
const MAX_PASSES_PER_MOMENT = 1000;
const timeOf = (at: number | string) => (typeof at === 'number' ? at : Date.parse(at));
const isActive = (s: RunState) => s.status === 'waiting' || s.status === 'awaiting_effect';

/**
 * Runs several flows for one person from `start` to `start + horizon`, their sends counted by the
 * same caps (`profile.governance`), at each moment in priority order.
 *
 * @example
 * const sim = simulateFlows({
 *   profile: { id: 'p1', traits: {}, audiences: [], tags: [], governance },
 *   flows: [{ id: 'promo', def: promo }, { id: 'vip', def: vip }],
 *   start: Date.parse('2026-03-01T00:00:00Z'),
 *   horizon: { days: 30 },
 *   script: [{ at: '2026-03-02T10:00:00Z', event: { type: 'track', event: 'Viewed' } }],
 * });
 * sim.messages.length;
 */
export function simulateFlows(options: FlowsSimulationOptions): FlowsSimulation {
  const facts: ProfileFacts = structuredClone(options.profile);
  const end = options.start + durationMs(options.horizon);
  const queue = (options.script ?? [])
    .map((item, i) => ({ item, at: timeOf(item.at), i }))
    .sort((a, b) => a.at - b.at || a.i - b.i);
  const flows = options.flows
    .map((f, i) => ({ ...f, i, priority: f.def.priority ?? 0 }))
    .sort((a, b) => b.priority - a.priority || a.i - b.i);
  const sim: FlowsSimulation = { messages: [], steps: [], runs: [], refused: [] };
  const past = new Map<string, PastRun[]>(flows.map((f) => [f.id, []]));
  const plannedAfter = new Map<string, number>(flows.map((f) => [f.id, options.start - 1]));
  const apiDone = new Set<string>();
  // Webhook and action effects as steps asked for them, by key: their results are scripted.
  const awaited = new Map<string, Effect & { type: 'webhook' | 'action' }>();
  const active = new Map<string, PastRun>();
  let running: SimulatedRun[] = [];
  let last = Number.NaN;
  let same = 0;

  const record = (f: (typeof flows)[number], run: SimulatedRun, r: StepResult, at: number) => {
    for (const j of r.journal) sim.steps.push({ ...j, flowId: f.id, runId: run.runId });
    for (const e of r.effects) {
      applyEffect(facts, e);
      if (e.type === 'webhook' || e.type === 'action') awaited.set(e.key, e);
      if (e.type !== 'send') continue;
      const node = f.def.nodes.find((n) => n.id === e.node);
      const channel = facts.governance?.channels[e.destination];
      sim.messages.push({
        at,
        node: e.node,
        destination: e.destination,
        ...e.message,
        key: e.key,
        flowId: f.id,
        runId: run.runId,
        priority: f.priority,
        transactional: node?.type === 'send' && node.transactional === true,
        ...(channel !== undefined ? { channel } : {}),
      });
    }
    noteSends(facts, f.def, r, at, f.id);
    run.state = r.state;
    const p = active.get(run.runId);
    if (p) p.active = isActive(r.state);
  };
  const step = (f: (typeof flows)[number], run: SimulatedRun, input: StepInput, now: number) => {
    record(f, run, advance(f.def, run.state, input, { now, profile: facts }), now);
    while (run.state.status === 'awaiting_effect') {
      const key = run.state.awaiting!.key;
      const result = options.results?.(awaited.get(key)!) ?? { ok: true as const };
      record(
        f,
        run,
        advance(f.def, run.state, { type: 'effect_result', key, ...result }, { now, profile: facts }),
        now,
      );
    }
  };
  const tryEnter = (f: (typeof flows)[number], now: number, why: string, event?: StoredEvent) => {
    const runs = past.get(f.id)!;
    const verdict = admit(f.def, { facts, nowMs: now, runs });
    if (!verdict.ok) {
      sim.refused.push({ at: now, flowId: f.id, reason: `${why}: ${verdict.reason}` });
      return;
    }
    const runId = `${f.id}:${runs.length + 1}`;
    const state = enter(f.def, { runId, flowId: f.id, profileId: facts.id, now, ...(event ? { event } : {}) });
    const run: SimulatedRun = { flowId: f.id, runId, enteredAt: now, state };
    sim.runs.push(run);
    running.push(run);
    const entry: PastRun = { enteredAt: now, active: true };
    runs.push(entry);
    active.set(runId, entry);
    step(f, run, { type: 'due' }, now);
  };
  // Each flow's next planned entry, worked out again when it was used or the traits changed.
  const plans = new Map<string, { at: number; why: string } | undefined>();
  const planned = (f: (typeof flows)[number]) => {
    if (!plans.has(f.id)) plans.set(f.id, plan(f));
    return plans.get(f.id);
  };
  const plan = (f: (typeof flows)[number]) => {
    const t = f.def.trigger;
    if (t.type === 'api') return apiDone.has(f.id) ? undefined : { at: options.start, why: 'entered through the API' };
    const next = nextEntry(f.def, {
      afterMs: plannedAfter.get(f.id)!,
      zone: resolveZone(f.def, facts).zone,
      traits: facts.traits,
      ...(options.calendars ? { calendars: options.calendars } : {}),
    });
    return next && { at: next.at, why: `${t.type}: ${next.why}` };
  };

  for (;;) {
    running = running.filter((r) => isActive(r.state));
    let t = queue[0]?.at ?? Infinity;
    for (const r of running) if (r.state.due !== undefined && r.state.due < t) t = r.state.due;
    for (const f of flows) t = Math.min(t, planned(f)?.at ?? Infinity);
    if (t === Infinity || t > end) break;
    // A run due again at the moment it was stepped would loop here for ever: a bug, said loudly.
    same = t === last ? same + 1 : 0;
    last = t;
    if (same > MAX_PASSES_PER_MOMENT) throw new Error(`simulateFlows: no progress at ${new Date(t).toISOString()}`);
    const events: StoredEvent[] = [];
    const changes: ProfileChange[] = [];
    let traitsChanged = false;
    while (queue[0]?.at === t) {
      const { item } = queue.shift()!;
      changes.push(...applyItem(facts, item, t));
      if (item.traits) {
        traitsChanged = true;
        plans.clear();
      }
      if (item.event) events.push({ timestamp: new Date(t).toISOString(), ...item.event });
    }
    for (const f of flows) {
      for (const run of running.filter((r) => r.flowId === f.id && isActive(r.state))) {
        if (traitsChanged) step(f, run, { type: 'replan' }, t);
        for (const event of events) if (isActive(run.state)) step(f, run, { type: 'event', event }, t);
        if (isActive(run.state) && run.state.due !== undefined && run.state.due <= t) step(f, run, { type: 'due' }, t);
      }
      for (const event of events)
        if (triggeredByEvent(f.def.trigger, event, t)) tryEnter(f, t, `event ${JSON.stringify(event.event)}`, event);
      const change = changes.find((c) => triggeredByChange(f.def.trigger, c, t));
      if (change) tryEnter(f, t, change.type);
      const plan = planned(f);
      if (plan && plan.at === t) {
        if (f.def.trigger.type === 'api') apiDone.add(f.id);
        else plannedAfter.set(f.id, t);
        plans.delete(f.id);
        const trig = f.def.trigger;
        const audience = trig.type === 'schedule' || trig.type === 'calendar' ? trig.audience : undefined;
        if (audience && !facts.audiences.includes(audience))
          sim.refused.push({ at: t, flowId: f.id, reason: `${plan.why}: not in audience ${audience}` });
        else tryEnter(f, t, plan.why);
      }
    }
  }
  return sim;
}
