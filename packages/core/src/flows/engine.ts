/**
 * The flow engine's core: a pure step function. `enter()` makes a run's first state, `advance()`
 * moves it on an input (a timer, an event, an effect's result) until it waits or ends, returning the
 * effects to commit with the new state and the journal of its decisions. No clock, no I/O: the
 * durable runner and the simulation call the same function.
 */
import { matchEvent } from '../rules/evaluate.ts';
import { dateOf, valueAt } from '../rules/values.ts';
import type { FlowDefinition, FlowNode, JsonValue } from './ast.ts';
import { couponNodeTexts } from './coupons.ts';
import { employeeNodeReads } from './employees.ts';
import { experimentHandler } from './experiment.ts';
import type { ProfileFacts, StoredEvent } from './facts.ts';
import { handlerOf, untilTrait } from './nodes.ts';
import type { Outcome, RunState, Step, StepContext, StepInput, StepResult } from './state.ts';
import { parseTemplate, templateStrings } from './template.ts';
import { DEFAULT_ZONE, isTimeZone } from './time.ts';

/** A run stops after this many nodes in one step: only a cycle whose waits all pass at once gets here. */
export const MAX_NODES_PER_STEP = 100;

/**
 * The idempotency key of a node's effect in a run: stable for the same (run, node, iteration), so
 * a step replayed after a crash produces the key the first attempt did.
 *
 * @example
 * effectKey('run-1', 'coupon_email', 0); // 'flow:run-1:coupon_email:0'
 */
export function effectKey(runId: string, nodeId: string, iteration: number): string {
  return `flow:${runId}:${nodeId}:${iteration}`;
}

/**
 * The person's time zone: their `timezone` trait, else the zone of their latest events' context,
 * else the flow's default (else UTC). Names that are not IANA zones are passed over.
 *
 * @example
 * resolveZone(def, { ...facts, traits: { timezone: 'Asia/Tokyo' } }); // { zone: 'Asia/Tokyo', source: 'trait' }
 */
export function resolveZone(def: FlowDefinition, facts: ProfileFacts): Step['zone'] {
  const trait = facts.traits.timezone;
  if (typeof trait === 'string' && isTimeZone(trait)) return { zone: trait, source: 'trait' };
  const fromEvents = facts.eventZone ?? latestEventZone(facts.events ?? []);
  if (fromEvents && isTimeZone(fromEvents)) return { zone: fromEvents, source: 'events' };
  return { zone: def.timezone ?? DEFAULT_ZONE, source: 'flow' };
}

function latestEventZone(events: readonly StoredEvent[]): string | undefined {
  let best: { us: bigint; zone: string } | undefined;
  for (const e of events) {
    const zone = valueAt(e, ['context', 'timezone']);
    const us = dateOf(e.timestamp);
    if (typeof zone === 'string' && us !== undefined && (!best || us > best.us)) best = { us, zone };
  }
  return best?.zone;
}

/**
 * The paths of the trigger event a flow reads (templates' `event.*`, branch conditions on
 * `event.*`); `[[]]` when it reads the whole event.
 *
 * @example
 * eventPathsUsed(def); // [['properties', 'coupon']]
 */
export function eventPathsUsed(def: FlowDefinition): string[][] {
  const texts: string[] = [];
  const paths: string[][] = [];
  for (const n of def.nodes) {
    if (n.type === 'send') texts.push(n.message.body, ...(n.message.subject ? [n.message.subject] : []));
    if (n.type === 'update_profile') texts.push(...templateStrings(n.set as JsonValue));
    if (n.type === 'action') texts.push(...templateStrings(n.input as JsonValue));
    if (n.type === 'webhook') texts.push(n.url, ...Object.values(n.headers ?? {}), ...(n.body ? [n.body] : []));
    if (n.type === 'points') texts.push(...couponNodeTexts(n));
    if (n.type === 'assign_owner' || n.type === 'notify_employees') {
      const reads = employeeNodeReads(n);
      texts.push(...reads.texts);
      paths.push(...reads.eventPaths);
    }
    if (n.type === 'branch')
      for (const c of n.cases)
        for (const d of c.data ?? []) {
          const f = 'not' in d ? d.not : d;
          if ('field' in f && f.field.split('.')[0] === 'event') paths.push(f.field.split('.').slice(1));
        }
  }
  for (const t of texts) for (const v of parseTemplate(t).variables) if (v.root === 'event') paths.push(v.path);
  return paths;
}

// The event cut down to the paths the flow reads: a waiting run's row stays small.
function trimEvent(event: StoredEvent, paths: string[][]): Record<string, unknown> | undefined {
  if (!paths.length) return undefined;
  if (paths.some((p) => p.length === 0)) return event;
  const out: Record<string, unknown> = {};
  for (const path of paths) {
    const v = valueAt(event, path);
    if (v === undefined) continue;
    let at = out;
    for (const step of path.slice(0, -1)) {
      if (typeof at[step] !== 'object' || at[step] === null) at[step] = {};
      at = at[step] as Record<string, unknown>;
    }
    at[path.at(-1)!] = v;
  }
  return out;
}

/**
 * A new run's state: not started, due at once (its first `advance` with `{ type: 'due' }` runs the
 * first nodes). The triggering event is kept only in the fields the flow reads; `data` is the API's
 * entry data.
 *
 * @example
 * const state = enter(def, { runId, flowId, profileId, now: Date.now(), event });
 * const step = advance(def, state, { type: 'due' }, { now: Date.now(), profile });
 */
export function enter(
  def: FlowDefinition,
  run: {
    runId: string;
    flowId: string;
    profileId: string;
    now: number;
    event?: StoredEvent;
    data?: Record<string, JsonValue>;
  },
): RunState {
  const state: RunState = {
    runId: run.runId,
    flowId: run.flowId,
    profileId: run.profileId,
    status: 'waiting',
    node: null,
    iteration: 0,
    visits: {},
    data: { ...(run.data ?? {}) },
    enteredAt: run.now,
    due: run.now,
  };
  const event = run.event && trimEvent(run.event, eventPathsUsed(def));
  if (event) state.event = event;
  state.listen = listening(def, state, run.now);
  return state;
}

const listOf = <T>(x: T | T[] | undefined): T[] | undefined =>
  x === undefined ? undefined : Array.isArray(x) ? x : [x];

// The event names a run listens for: its wait for an event, and its goal while the window is open.
function listening(def: FlowDefinition, state: RunState, now: number): RunState['listen'] {
  if (state.status !== 'waiting' && state.status !== 'awaiting_effect') return undefined;
  const names = new Set<string>();
  let any = false;
  const add = (filter: { event?: string | string[] }) => {
    const list = listOf(filter.event);
    if (list) for (const n of list) names.add(n);
    else any = true;
  };
  const node = state.node === null ? undefined : nodeById(def, state.node);
  if (state.status === 'waiting' && node?.type === 'wait_for_event') add(node.event);
  if (def.goal && state.convertedAt === undefined && now <= state.enteredAt + def.goal.withinSeconds * 1000)
    add(def.goal.event);
  if (any) return '*';
  return names.size ? [...names].sort() : undefined;
}

function nodeById(def: FlowDefinition, id: string): FlowNode {
  const node = def.nodes.find((n) => n.id === id);
  if (!node) throw new Error(`flow has no node ${id}`);
  return node;
}

function end(step: Step, status: 'completed' | 'exited' | 'failed', reason: string) {
  const s = step.state;
  s.status = status;
  s.endedAt = step.now;
  s.reason = reason;
  delete s.due;
  delete s.since;
  delete s.awaiting;
}

// Follows outcomes from `node` until the run waits, awaits an effect or ends.
function follow(step: Step, from: FlowNode, first: Outcome): void {
  let node = from;
  let outcome = first;
  for (let entered = 0; ; ) {
    const entry = { at: step.now, node: node.id, type: node.type };
    if ('wait' in outcome) {
      const s = step.state;
      s.status = 'waiting';
      if (outcome.wait.due === undefined) delete s.due;
      else s.due = outcome.wait.due;
      if (!outcome.wait.listen) delete s.since;
      step.journal.push({
        ...entry,
        outcome: 'waiting',
        reason: outcome.reason,
        ...(outcome.values ? { values: outcome.values } : {}),
      });
      return;
    }
    if ('await' in outcome) {
      const s = step.state;
      step.effects.push(outcome.await);
      s.status = 'awaiting_effect';
      s.awaiting = { key: outcome.await.key, type: outcome.await.type };
      delete s.due;
      delete s.since;
      step.journal.push({ ...entry, outcome: 'awaiting', reason: outcome.reason, values: { key: outcome.await.key } });
      return;
    }
    if ('end' in outcome) {
      step.journal.push({
        ...entry,
        outcome: outcome.end,
        reason: outcome.reason,
        ...(outcome.values ? { values: outcome.values } : {}),
      });
      end(step, outcome.end, outcome.reason);
      return;
    }
    const go = outcome.go;
    const edge = step.def.edges.find((e) => e.from === node.id && e.on === go);
    step.journal.push({
      ...entry,
      outcome: outcome.as ?? outcome.go,
      ...(edge ? { to: edge.to } : {}),
      reason: outcome.reason,
      ...(outcome.values ? { values: outcome.values } : {}),
    });
    delete step.state.due;
    delete step.state.since;
    delete step.state.awaiting;
    if (!edge) {
      const [status, reason] =
        outcome.go === 'next'
          ? (['completed', 'reached the end of the path'] as const)
          : outcome.go === 'missing'
            ? (['exited', `${node.id}: ${outcome.reason}`] as const)
            : ([
                'failed',
                `${node.id}: ${outcome.go === 'failed' ? outcome.reason : `no edge for ${outcome.go}`}`,
              ] as const);
      end(step, status, reason);
      return;
    }
    if (++entered > MAX_NODES_PER_STEP) {
      end(step, 'failed', `more than ${MAX_NODES_PER_STEP} nodes in one step without waiting (at ${edge.to})`);
      step.journal.push({ at: step.now, node: edge.to, type: 'end', outcome: 'failed', reason: step.state.reason! });
      return;
    }
    node = nodeById(step.def, edge.to);
    outcome = visit(step, node);
  }
}

// Enters a node: counts the visit (its iteration, part of the effect key) and runs it.
function visit(step: Step, node: FlowNode): Outcome {
  const s = step.state;
  const iteration = s.visits[node.id] ?? 0;
  s.visits[node.id] = iteration + 1;
  s.node = node.id;
  s.iteration = iteration;
  return handlerOf(node).run(node, step, effectKey(s.runId, node.id, iteration));
}

// The run's due came: start it, or resume the node it waits at.
function fireDue(step: Step): void {
  const s = step.state;
  if (s.node === null) {
    const first = step.def.nodes[0]!;
    step.journal.push({ at: step.now, type: 'enter', outcome: 'entered', to: first.id, reason: 'entered the flow' });
    delete s.due;
    follow(step, first, visit(step, first));
    return;
  }
  const node = nodeById(step.def, s.node);
  const due = handlerOf(node).due;
  if (due) follow(step, node, due(node, step, effectKey(s.runId, node.id, s.iteration)));
}

const isFinal = (s: RunState) => s.status === 'completed' || s.status === 'exited' || s.status === 'failed';

function goal(step: Step, event: StoredEvent): boolean {
  const g = step.def.goal;
  const s = step.state;
  if (!g || s.convertedAt !== undefined || !matchEvent(g.event, event, step.now)) return false;
  const us = dateOf(event.timestamp);
  const at = us === undefined ? step.now : Number(us / 1000n);
  if (at < s.enteredAt || at > s.enteredAt + g.withinSeconds * 1000) return false;
  s.convertedAt = at;
  const reason = `conversion: ${JSON.stringify(event.event ?? event.name ?? event.type)} within ${g.withinSeconds} s of entry`;
  step.journal.push({ at: step.now, type: 'goal', outcome: 'converted', reason, ...(s.node ? { node: s.node } : {}) });
  if (!g.exit) return false;
  end(step, 'exited', 'goal reached');
  step.journal.push({ at: step.now, type: 'end', outcome: 'exited', reason: 'goal reached: the goal ends the run' });
  return true;
}

// A step over a copy of `state` (the caller's is left as it was), with no effects or journal yet.
function newStep(def: FlowDefinition, state: RunState, ctx: StepContext): Step {
  return {
    def,
    state: structuredClone(state),
    facts: ctx.profile,
    now: ctx.now,
    zone: resolveZone(def, ctx.profile),
    effects: [],
    journal: [],
  };
}

/**
 * Moves a run on one input, at `ctx.now`, on the person's facts: runs nodes until the run waits
 * (for `state.due` and/or events in `state.listen`), awaits an effect's result, or ends. Returns the
 * new state, the effects to commit with it in one transaction (each with its idempotency key
 * `flow:<runId>:<nodeId>:<iteration>`), and the journal of decisions. Pure: the same arguments give
 * the same result, so a step replayed after a crash repeats exactly the effects it had.
 *
 * Inputs that do not apply (an early or repeated `due`, a result for another key, anything for an
 * ended run) return the state unchanged with no effects. An event that comes when a wait's `due`
 * has passed first lets the wait end (the timeout won), then applies to where the run is.
 *
 * @example
 * const { state, effects, journal } = advance(def, run, { type: 'due' }, { now: clock.now(), profile });
 */
export function advance(def: FlowDefinition, state: RunState, input: StepInput, ctx: StepContext): StepResult {
  if (isFinal(state)) return { state, effects: [], journal: [] };
  const step = newStep(def, state, ctx);
  if (ctx.experiments) step.experiments = ctx.experiments;
  const s = step.state;
  const dueNow = () => s.status === 'waiting' && s.due !== undefined && s.due <= step.now;
  if (input.type === 'due') {
    if (!dueNow()) return { state, effects: [], journal: [] };
    fireDue(step);
  } else if (input.type === 'replan') {
    const node = s.status === 'waiting' && s.node !== null ? nodeById(def, s.node) : undefined;
    // At an experiment: the runner decided, and the people held there follow the winner.
    const decided = node?.type === 'experiment' ? experimentHandler.replan(node, step) : undefined;
    if (node?.type === 'experiment') {
      if (!decided) return { state, effects: [], journal: [] };
      follow(step, node, decided);
    } else {
      if (node?.type !== 'wait_until' || !('trait' in node.until)) return { state, effects: [], journal: [] };
      const outcome = untilTrait(node.until, step);
      if ('wait' in outcome && outcome.wait.due === s.due) return { state, effects: [], journal: [] };
      follow(step, node, outcome);
    }
  } else if (input.type === 'event') {
    if (!goal(step, input.event)) {
      if (dueNow()) fireDue(step);
      const node = s.status === 'waiting' && s.node !== null ? nodeById(def, s.node) : undefined;
      const outcome = node && handlerOf(node).event?.(node, step, input.event);
      if (node && outcome) follow(step, node, outcome);
    }
  } else {
    if (s.status !== 'awaiting_effect' || s.awaiting?.key !== input.key) return { state, effects: [], journal: [] };
    const node = nodeById(def, s.node!);
    const result = input.ok ? { ok: true as const, output: input.output } : { ok: false as const, error: input.error };
    follow(step, node, handlerOf(node).result!(node, step, result));
  }
  const listen = listening(def, s, step.now);
  if (listen) s.listen = listen;
  else delete s.listen;
  return { state: s, effects: step.effects, journal: step.journal };
}

/** Node types a run waits at for time or an event (a run moved onto one is planned, not run on). */
export const WAIT_TYPES: ReadonlySet<FlowNode['type']> = new Set(['wait', 'wait_until', 'wait_for_event']);

/**
 * Moves a waiting run onto node `to` of `def` — another version of its flow (a publisher's node map, or
 * a rollback) — as if it had entered `to` when it began waiting (`since`): a wait is planned from
 * `since` with the new node's duration (a wait that would be over is due now), a `wait_for_event`
 * listens from `since`, a `wait_until` is planned from `since` too; onto a node that does not wait the
 * run goes on at once (its effects are in the result). Visits of nodes `def` has are kept and `to` is
 * entered as a new visit (iteration = its visits so far), so effect keys stay unique. The journal starts
 * with a `migrated` entry from the old node to `to`. A run that is not waiting is returned unchanged.
 *
 * @example
 * const moved = moveRun(v2, state, 'wait_1d', { now: Date.now(), since: startedWaiting, profile });
 * moved.state.due; // since + 1 day (now if that has passed)
 */
export function moveRun(
  def: FlowDefinition,
  state: RunState,
  to: string,
  ctx: StepContext & { since: number },
): StepResult {
  if (state.status !== 'waiting' || state.node === null) return { state, effects: [], journal: [] };
  const node = nodeById(def, to);
  const step = newStep(def, state, ctx);
  const s = step.state;
  const kept = new Set(def.nodes.map((n) => n.id));
  s.visits = Object.fromEntries(Object.entries(s.visits).filter(([id]) => kept.has(id)));
  delete s.due;
  delete s.since;
  step.journal.push({
    at: ctx.now,
    node: state.node,
    type: 'migrated',
    outcome: 'migrated',
    to,
    reason: `moved from ${state.node} to ${to}`,
    values: { since: ctx.since },
  });
  if (!WAIT_TYPES.has(node.type)) {
    follow(step, node, visit(step, node));
  } else {
    // Planned as if entered at `since`; a moment already passed leaves the run due now.
    step.now = ctx.since;
    const planned = visit(step, node);
    step.now = ctx.now;
    if ('wait' in planned && planned.wait.due !== undefined && planned.wait.due < ctx.now) planned.wait.due = ctx.now;
    follow(step, node, planned);
    if (s.status === 'waiting') s.since = ctx.since;
  }
  const listen = listening(def, s, step.now);
  if (listen) s.listen = listen;
  else delete s.listen;
  return { state: s, effects: step.effects, journal: step.journal };
}
