import { createHash, randomUUID } from 'node:crypto';
import {
  admit,
  advance,
  byPriority,
  enter,
  type JsonObject,
  type JsonValue,
  noteSends,
  type ProfileChange,
  type ProfileFacts,
  type RunState,
  type StepResult,
  type StoredEvent,
  type Trigger,
  triggeredByChange,
  triggeredByEvent,
} from '@cairn/core';
import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { DomainError } from '../../infra/errors.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Pii } from '../../pii/index.ts';
import { type FlowCatalog, type FlowVersion, versionKey } from './catalog.ts';
import { type Changes, type CommitDeps, createChanges } from './changes.ts';
import { withMaskedNotices } from './employees.ts';
import { experimentsFor } from './experiments.ts';
import { loadFacts, unionNeeds } from './people.ts';
import { notePoints } from './points.ts';
import {
  appliedEvents,
  claimDue,
  type EventRow,
  eventsByIds,
  listeningRuns,
  type PastRunRow,
  pastRuns,
  profilesListening,
} from './queries.ts';
import { failedStep, isActive, maskJournal, stateOf } from './runs.ts';

// The durable runner: the engine's enter()/advance() applied to stored runs, each transaction writing
// the runs' new states, their journal and their messages together (changes.ts).

/** What the runner needs. */
export interface RunnerDeps extends CommitDeps {
  sql: Sql;
  metrics?: CommitDeps['metrics'] & Pick<Metrics, 'flowDueLag'>;
  pii: CommitDeps['pii'] & Pick<Pii, 'openValue' | 'isSensitive'>;
  clock: () => Date;
  catalog: FlowCatalog;
}

// People per transaction: locks and the facts read stay small; a retried job redoes little.
const PEOPLE_PER_TX = 100;
// Advisory lock class of stage 4 (identify 1 and 2, delivery order 3, compute 4, 5 and 6): one person's
// entries and event-driven steps are decided by one transaction at a time.
const AUTOMATE = 7;

/** Membership changes are recorded as track events of source `cairn` (stage 3's store.ts). */
const CHANGES: Record<string, (p: Record<string, unknown>) => ProfileChange | undefined> = {
  'audience.entered': (p) => keyOf(p.audience, (audience) => ({ type: 'audience_entered', audience })),
  'audience.exited': (p) => keyOf(p.audience, (audience) => ({ type: 'audience_exited', audience })),
  'tag.added': (p) => keyOf(p.tag, (tag) => ({ type: 'tag_added', tag })),
  'tag.removed': (p) => keyOf(p.tag, (tag) => ({ type: 'tag_removed', tag })),
  // Traits watched by a live flow: computed (stage 3's trait-changes.ts) or plain (stage 2's); `from`/`to`
  // absent: none.
  'trait.changed': (p) =>
    keyOf(p.trait, (trait) => ({
      type: 'trait_changed',
      trait,
      computed: (p.trait as { computed?: unknown }).computed !== false,
      from: p.from,
      to: p.to,
    })),
};
const CHANGE_NAME: Record<string, string> = {
  audience_entered: 'audience.entered',
  audience_exited: 'audience.exited',
  tag_added: 'tag.added',
  tag_removed: 'tag.removed',
  trait_changed: 'trait.changed',
};

function keyOf(v: unknown, f: (key: string) => ProfileChange): ProfileChange | undefined {
  const key = (v as { key?: unknown } | undefined)?.key;
  return typeof key === 'string' ? f(key) : undefined;
}

/** The event name that can start a flow with this trigger, if an event can. */
function triggerName(t: Trigger): string | undefined {
  return t.type === 'event' ? t.event : CHANGE_NAME[t.type];
}

/**
 * The id of the run an event starts in a flow: the same every time that event is handed over, so a
 * second hand-off finds the run and enters nobody again.
 *
 * @example
 * runIdFor('flw_1', '42'); // a UUID, always the same for this pair
 */
export function runIdFor(flowId: string, eventId: string): string {
  const h = createHash('sha256').update(`cairn.flow-run:${flowId}:${eventId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * Locks people for stage 4 for the rest of the transaction (sorted: no deadlock between workers): one
 * person's entries, event-driven steps and effect results are decided by one transaction at a time.
 *
 * @example
 * await lockPeople(tx, [profileId]);
 */
export async function lockPeople(tx: Tx, ids: readonly string[]): Promise<void> {
  const keys = [...new Set(ids.map((id) => createHash('sha1').update(`automate:${id}`).digest().readInt32BE(0)))].sort(
    (a, b) => a - b,
  );
  if (keys.length) await tx`SELECT pg_advisory_xact_lock(${AUTOMATE}::int, k) FROM unnest(${keys}::int[]) AS k`;
}

const listensFor = (s: RunState, name: string | null) =>
  s.listen === '*' || (name !== null && !!s.listen?.includes(name));

/**
 * Stage 4's work on attached events and recorded membership changes: each event is first given to the
 * runs of its person that listen for it (a wait for an event, a goal), then starts the live flows it
 * triggers (admit → enter → the first step, up to the first wait). Events nothing listens for and no
 * flow is triggered by cost one read of their names. Per person in time order, one transaction per
 * group of people.
 *
 * @example
 * await handleEvents(deps, eventIds);
 */
export async function handleEvents(r: RunnerDeps, ids: readonly string[]): Promise<void> {
  // Imported history neither starts flows nor moves waiting runs, unless its import asked (triggerFlows).
  const light = await eventsByIds(r.sql, ids, false, true);
  if (!light.length) return;
  const live = await r.catalog.live(r.sql);
  const starting = new Map<string, FlowVersion[]>();
  for (const f of live) {
    const name = triggerName(f.def.trigger);
    if (name) starting.set(name, [...(starting.get(name) ?? []), f]);
  }
  // An event entering a person into several flows: higher priority first (a capped slot goes to it).
  for (const list of starting.values()) list.sort((a, b) => (b.def.priority ?? 0) - (a.def.priority ?? 0));
  const names = [...new Set(light.map((e) => e.name).filter((n): n is string => n !== null))];
  const listening = await profilesListening(r.sql, [...new Set(light.map((e) => e.profileId))], names);
  const wanted = light.filter((e) => listening.has(e.profileId) || (e.name !== null && starting.has(e.name)));
  if (!wanted.length) return;
  const events = await eventsByIds(
    r.sql,
    wanted.map((e) => e.id),
    true,
  );
  const people = [...new Set(events.map((e) => e.profileId))];
  for (let i = 0; i < people.length; i += PEOPLE_PER_TX) {
    const chunk = new Set(people.slice(i, i + PEOPLE_PER_TX));
    const changes = (await r.sql.begin((tx) =>
      eventsOfPeople(
        r,
        tx,
        events.filter((e) => chunk.has(e.profileId)),
        starting,
      ),
    )) as Changes;
    changes.count(r);
  }
}

async function eventsOfPeople(
  r: RunnerDeps,
  tx: Transaction,
  events: readonly EventRow[],
  starting: ReadonlyMap<string, FlowVersion[]>,
): Promise<Changes> {
  const people = [...new Set(events.map((e) => e.profileId))];
  await lockPeople(tx, people);
  const names = [...new Set(events.map((e) => e.name).filter((n): n is string => n !== null))];
  const runs = await listeningRuns(tx, people, names);
  const versions = await r.catalog.versions(
    tx,
    runs.map((x) => ({ flowId: x.flowId, version: x.version })),
  );
  const entering = [...new Set(names.flatMap((n) => starting.get(n) ?? []))];
  const past = await pastRuns(
    tx,
    people,
    entering.map((f) => f.id),
  );
  const applied = await appliedEvents(
    tx,
    runs.map((x) => x.id),
    events.map((e) => e.id),
  );
  const needs = unionNeeds([...versions.values(), ...entering].map((v) => v.needs));
  const facts = await loadFacts(tx, r.pii, people, needs, r.clock().getTime());
  const now = r.clock().getTime();
  const ex = await experimentsFor(r, tx, [...versions.values(), ...entering], now);
  const changes = createChanges();
  const history = new Map<string, PastRunRow[]>();
  for (const p of past)
    history.set(`${p.flowId}:${p.profileId}`, [...(history.get(`${p.flowId}:${p.profileId}`) ?? []), p]);
  const active = new Map<string, { version: FlowVersion; state: RunState; sourceId: string | null }[]>();
  for (const row of runs) {
    const version = versions.get(versionKey(row.flowId, row.version));
    if (!version) continue;
    const list = active.get(row.profileId) ?? [];
    list.push({ version, state: stateOf(row, r.pii), sourceId: row.sourceId });
    active.set(row.profileId, list);
  }
  for (const list of active.values())
    list.sort((a, b) => (b.version.def.priority ?? 0) - (a.version.def.priority ?? 0));

  for (const e of events) {
    const profile = facts.get(e.profileId)!;
    const event: StoredEvent = {
      ...r.pii.openPayload(e.payload as JsonObject),
      timestamp: new Date(e.timestamp).toISOString(),
    };
    const mine = active.get(e.profileId) ?? [];
    for (const run of mine) {
      if (!isActive(run.state.status) || !listensFor(run.state, e.name) || applied.has(`${run.state.runId}:${e.id}`))
        continue;
      const result = step(r, run.version, run.state, profile, () =>
        advance(run.version.def, run.state, { type: 'event', event }, { now, profile, ...ex.ctx(run.version) }),
      );
      changes.record(run.version, run.state, result, {
        isNew: false,
        sourceId: run.sourceId,
        eventId: e.id,
        input: 'event',
      });
      run.state = result.state;
    }
    const change = e.sourceId === 'cairn' && e.name ? CHANGES[e.name]?.((event.properties ?? {}) as never) : undefined;
    for (const f of e.name ? (starting.get(e.name) ?? []) : []) {
      const hit =
        f.def.trigger.type === 'event'
          ? triggeredByEvent(f.def.trigger, event, now)
          : change !== undefined && triggeredByChange(f.def.trigger, change, now);
      if (!hit) continue;
      const runId = runIdFor(f.id, e.id);
      const key = `${f.id}:${e.profileId}`;
      const before = history.get(key) ?? [];
      // This event entered the person before (its hand-off came again): nothing to do.
      if (before.some((p) => p.id === runId)) continue;
      const verdict = admit(f.def, { facts: profile, nowMs: now, runs: before });
      if (!verdict.ok) {
        r.log.debug(`flow ${f.id}: ${e.profileId} not entered: ${verdict.reason}`);
        continue;
      }
      const state = enter(f.def, { runId, flowId: f.id, profileId: e.profileId, now, event });
      const result = step(r, f, state, profile, () =>
        advance(f.def, state, { type: 'due' }, { now, profile, ...ex.ctx(f) }),
      );
      changes.record(f, state, result, { isNew: true, sourceId: e.sourceId, input: 'entry' });
      history.set(key, [
        ...before,
        { id: runId, flowId: f.id, profileId: e.profileId, enteredAt: now, active: isActive(result.state.status) },
      ]);
      mine.push({ version: f, state: result.state, sourceId: e.sourceId });
      active.set(e.profileId, mine);
    }
  }
  await changes.commit(tx, r, now);
  return changes;
}

/**
 * One step of the engine, its journal masked; a definition it cannot run fails the run (with the
 * reason) instead of the batch.
 *
 * @example
 * const result = step(deps, version, state, profile, () => advance(version.def, state, input, { now, profile }));
 */
export function step(
  r: RunnerDeps,
  version: FlowVersion,
  state: RunState,
  profile: ProfileFacts,
  run: () => StepResult,
): StepResult {
  try {
    const result = maskJournal(withMaskedNotices(run(), profile, r.pii), profile, r.pii);
    // The person's next run stepped in this transaction counts these sends against caps (governance.ts).
    noteSends(profile, version.def, result, result.journal[0]?.at ?? r.clock().getTime(), version.id);
    // ... and decides with the balance its points entries left.
    notePoints(profile, result);
    return result;
  } catch (err) {
    r.log.error(`flow ${version.id}: run ${state.runId} failed`, err);
    return failedStep(state, err, r.clock().getTime());
  }
}

/**
 * The timer's work: claims up to `limit` runs whose due time has come (FOR UPDATE SKIP LOCKED, so
 * workers on several servers share them), advances each, and commits their new states, journal and
 * messages in one transaction. Returns how many runs it claimed. `only`: of these runs (isolate.ts).
 *
 * @example
 * while ((await runDue(deps, 500)) === 500);
 */
export async function runDue(r: RunnerDeps, limit: number, only?: readonly string[]): Promise<number> {
  const changes = createChanges();
  const lags: number[] = [];
  const claimed = (await r.sql.begin(async (tx) => {
    const at = r.clock();
    const now = at.getTime();
    const rows = await claimDue(tx, at, limit, only);
    if (!rows.length) return 0;
    const versions = await r.catalog.versions(
      tx,
      rows.map((x) => ({ flowId: x.flowId, version: x.version })),
    );
    const facts = await loadFacts(
      tx,
      r.pii,
      rows.map((x) => x.profileId),
      unionNeeds([...versions.values()].map((v) => v.needs)),
      now,
    );
    // Held runs at an experiment's deadline: it is decided first, in this transaction (experiments.ts).
    const ex = await experimentsFor(
      r,
      tx,
      versions.values(),
      now,
      rows.filter((x) => x.node !== null).map((x) => ({ flowId: x.flowId, version: x.version, node: x.node! })),
    );
    // Runs of a person due at the same moment go higher flow priority first: it takes a capped slot first.
    const ordered = [...rows].sort(
      byPriority(
        (x) => x.due,
        (x) => versions.get(versionKey(x.flowId, x.version))?.def.priority,
      ),
    );
    for (const row of ordered) {
      const state = stateOf(row, r.pii);
      const version = versions.get(versionKey(row.flowId, row.version));
      const meta = { id: row.flowId, version: row.version, exclusive: row.exclusive };
      const profile = facts.get(row.profileId)!;
      const result = version
        ? step(r, version, state, profile, () =>
            advance(version.def, state, { type: 'due' }, { now, profile, ...ex.ctx(version) }),
          )
        : failedStep(state, new Error(`flow ${row.flowId} has no version ${row.version}`), now);
      changes.record(version ?? meta, state, result, { isNew: false, sourceId: row.sourceId, input: 'due' });
      if (row.due !== null) lags.push(Math.max(0, now - row.due) / 1000);
    }
    await changes.commit(tx, r, now);
    return rows.length;
  })) as number;
  changes.count(r);
  for (const lag of lags) r.metrics?.flowDueLag.observe(lag);
  return claimed;
}

/**
 * Enters people into a flow at a time its trigger chose (a schedule's or a calendar's firing, a date
 * trait's moment), in the caller's transaction: locks them, applies `admit()`, `enter()` and the first step,
 * and records it all in `changes` (the caller commits them, then counts). Each entry's `runId` is derived
 * by the caller from what it is an entry of, so an entry replayed after a crash finds its run and enters
 * nobody again. Returns how many entered.
 *
 * @example
 * const entered = await enterPeople(deps, tx, flow, [{ profileId, runId: runIdFor(flow.id, 'fire:…') }], now, changes);
 */
export async function enterPeople(
  r: RunnerDeps,
  tx: Tx,
  flow: FlowVersion,
  entries: readonly { profileId: string; runId: string }[],
  now: number,
  changes: Changes,
): Promise<number> {
  if (!entries.length) return 0;
  const people = [...new Set(entries.map((e) => e.profileId))];
  await lockPeople(tx, people);
  const past = await pastRuns(tx, people, [flow.id]);
  const facts = await loadFacts(tx, r.pii, people, flow.needs, now);
  const ex = await experimentsFor(r, tx, [flow], now);
  let entered = 0;
  for (const { profileId, runId } of entries) {
    const before = past.filter((p) => p.profileId === profileId);
    if (before.some((p) => p.id === runId)) continue;
    const profile = facts.get(profileId)!;
    const verdict = admit(flow.def, { facts: profile, nowMs: now, runs: before });
    if (!verdict.ok) {
      r.log.debug(`flow ${flow.id}: ${profileId} not entered: ${verdict.reason}`);
      continue;
    }
    const state = enter(flow.def, { runId, flowId: flow.id, profileId, now });
    const result = step(r, flow, state, profile, () =>
      advance(flow.def, state, { type: 'due' }, { now, profile, ...ex.ctx(flow) }),
    );
    changes.record(flow, state, result, { isNew: true, sourceId: null, input: 'entry' });
    past.push({ id: runId, flowId: flow.id, profileId, enteredAt: now, active: isActive(result.state.status) });
    entered++;
  }
  return entered;
}

/** What an entry through the API did. */
export interface ApiEntry {
  entered: boolean;
  /** The run (also when the key entered the person before). */
  runId?: string;
  reason: string;
}

/**
 * Enters a person into a live flow whose trigger is `api`, with entry data (only the fields the trigger
 * declares), and takes the first step — in one transaction, as an event's entry. With `key`, the run's id
 * is derived from it: the same call repeated enters the person once.
 *
 * @example
 * await enterByApi(deps, 'flw_1', profileId, { coupon: 'SPRING' }, 'order-42');
 */
export async function enterByApi(
  r: RunnerDeps,
  flowId: string,
  profileId: string,
  data: Record<string, JsonValue>,
  key?: string,
): Promise<ApiEntry> {
  const changes = createChanges();
  const entry = (await r.sql.begin(async (tx) => {
    const flow = (await r.catalog.live(tx)).find((f) => f.id === flowId);
    if (!flow) throw new DomainError(409, 'conflict', `flow ${flowId} is not live`);
    const trigger = flow.def.trigger;
    if (trigger.type !== 'api')
      throw new DomainError(409, 'conflict', `flow ${flowId} is entered by its ${trigger.type} trigger, not the API`);
    const unknown = Object.keys(data).filter((k) => !(trigger.data ?? []).includes(k));
    if (unknown.length)
      throw new DomainError(
        400,
        'invalid_request',
        `data: ${unknown.join(', ')} not declared by the trigger (it takes ${(trigger.data ?? []).join(', ') || 'none'})`,
      );
    await lockPeople(tx, [profileId]);
    const past = await pastRuns(tx, [profileId], [flowId]);
    const runId = key === undefined ? randomUUID() : runIdFor(flowId, `api:${key}`);
    if (past.some((p) => p.id === runId)) return { entered: false, runId, reason: 'entered before with this key' };
    const profile = (await loadFacts(tx, r.pii, [profileId], flow.needs, r.clock().getTime())).get(profileId)!;
    const now = r.clock().getTime();
    const verdict = admit(flow.def, { facts: profile, nowMs: now, runs: past });
    if (!verdict.ok) return { entered: false, reason: verdict.reason };
    const state = enter(flow.def, { runId, flowId, profileId, now, data });
    const ex = await experimentsFor(r, tx, [flow], now);
    const result = step(r, flow, state, profile, () =>
      advance(flow.def, state, { type: 'due' }, { now, profile, ...ex.ctx(flow) }),
    );
    changes.record(flow, state, result, { isNew: true, sourceId: null, input: 'entry' });
    await changes.commit(tx, r, now);
    return { entered: true, runId, reason: verdict.reason };
  })) as ApiEntry;
  changes.count(r);
  return entry;
}
