import { DEFAULT_ZONE, type FlowDefinition, nextEntry, resolveZone } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { calendarsFor } from './calendars.ts';
import { type FlowVersion, versionKey } from './catalog.ts';
import { createChanges } from './changes.ts';
import { type FactsNeeds, loadFacts } from './people.ts';
import {
  advanceCursor,
  claimFlowTimer,
  claimPlanned,
  dropFlowTimer,
  type FlowTimerRow,
  flowsUsingCalendar,
  identifiedPeople,
  peoplePage,
  plannedOf,
  setFlowTimer,
  withTraitPage,
  writePlanned,
} from './planner-queries.ts';
import { replanWaits } from './replan.ts';
import { enterPeople, lockPeople, type RunnerDeps, runIdFor } from './runner.ts';

// The planner: flows entered by time. A schedule or calendar flow has one timer row, its next firing,
// which the timer claims (SKIP LOCKED) and works off in batches of people; a date_trait flow has one row
// per person with the date (flow_planned), planned by a sweep when the flow is published and again
// when the person's traits change. docs/design/flows.md, "Time-based triggers".

const TIMED: ReadonlySet<string> = new Set(['schedule', 'calendar', 'date_trait']);
// Planning reads traits and the zone only (resolveZone: the timezone trait, else the latest event's).
const PLAN_NEEDS: FactsNeeds = { events: [], consent: false, zone: true };

/** The next firing of a schedule or calendar flow strictly after `afterMs`, in the flow's zone. */
async function nextFiring(tx: Tx, def: FlowDefinition, afterMs: number) {
  const t = def.trigger;
  const year = new Date(afterMs).getUTCFullYear();
  const calendars =
    t.type === 'calendar' && 'custom' in t.calendar ? await calendarsFor(tx, [t.calendar.custom], year) : undefined;
  return nextEntry(def, { afterMs, zone: def.timezone ?? DEFAULT_ZONE, ...(calendars ? { calendars } : {}) });
}

/**
 * Plans a flow just published, in the publish's transaction: a schedule or calendar flow's first firing
 * (strictly after now), a date_trait flow's sweep over everyone with the date (due now, worked off by the
 * timer in batches); any other trigger has no timer.
 *
 * @example
 * await planFlow(tx, 'flw_1', 2, definition, Date.now());
 */
export async function planFlow(
  tx: Tx,
  flowId: string,
  version: number,
  def: FlowDefinition,
  now: number,
): Promise<void> {
  if (!TIMED.has(def.trigger.type)) return dropFlowTimer(tx, flowId);
  if (def.trigger.type === 'date_trait') return setFlowTimer(tx, flowId, version, now, `plan ${def.trigger.trait}`);
  const next = await nextFiring(tx, def, now);
  await setFlowTimer(tx, flowId, version, next?.at ?? null, next?.why ?? null);
}

/**
 * Plans again the flows whose calendar trigger names a custom calendar whose days changed (from now).
 *
 * @example
 * await replanCalendar(tx, 'shopping_festivals', Date.now());
 */
export async function replanCalendar(tx: Tx, key: string, now: number): Promise<void> {
  for (const f of await flowsUsingCalendar(tx, key)) {
    const [row] = await tx<{ definition: FlowDefinition }[]>`
      SELECT definition FROM flow_versions WHERE flow_id = ${f.id} AND version = ${f.version}`;
    if (row) await planFlow(tx, f.id, f.version, row.definition, now);
  }
}

/**
 * One pass of the planner: a batch of one flow timer (a firing's next people, or a date sweep's) and
 * the planned date entries that came due. Returns the larger of the two counts (the timer goes on while
 * a pass is full).
 *
 * @example
 * const worked = await runPlanner(deps, 500);
 */
export async function runPlanner(r: RunnerDeps, limit: number): Promise<number> {
  const timers = await runFlowTimer(r, limit);
  const dates = await runPlanned(r, limit);
  return Math.max(timers, dates);
}

async function runFlowTimer(r: RunnerDeps, limit: number): Promise<number> {
  const changes = createChanges();
  const worked = (await r.sql.begin(async (tx) => {
    const at = r.clock();
    const now = at.getTime();
    const timer = await claimFlowTimer(tx, at);
    if (!timer) return 0;
    const live = (await r.catalog.live(tx)).find((f) => f.id === timer.flowId);
    const flow =
      live ??
      (await r.catalog.versions(tx, [{ flowId: timer.flowId, version: timer.version }])).get(
        versionKey(timer.flowId, timer.version),
      );
    if (!flow || !TIMED.has(flow.def.trigger.type)) {
      await dropFlowTimer(tx, timer.flowId);
      return 1;
    }
    // Published again since (its publish planned it; this is a row from before): plan the live version.
    if (flow.version !== timer.version) {
      await planFlow(tx, flow.id, flow.version, flow.def, now);
      return 1;
    }
    if (flow.def.trigger.type === 'date_trait') return sweep(r, tx, flow, timer, limit, now);
    // A paused flow's firing enters nobody (and the next one is planned as usual).
    const t = flow.def.trigger;
    const audience = t.type === 'schedule' || t.type === 'calendar' ? t.audience : undefined;
    const people = live ? await peoplePage(tx, audience, timer.cursor, limit) : [];
    const firing = new Date(timer.due).toISOString();
    const entered = await enterPeople(
      r,
      tx,
      flow,
      people.map((p) => ({ profileId: p, runId: runIdFor(flow.id, `fire:${firing}:${p}`) })),
      now,
      changes,
    );
    await changes.commit(tx, r, now);
    if (people.length === limit) {
      await advanceCursor(tx, flow.id, people.at(-1)!);
      return limit;
    }
    // Planned from now when the firing came late (the server was down): one firing for the missed ones.
    const next = await nextFiring(tx, flow.def, Math.max(timer.due, now));
    await setFlowTimer(tx, flow.id, flow.version, next?.at ?? null, next?.why ?? null);
    r.log.info(
      `flow ${flow.id}: fired ${timer.why ?? firing} (due ${firing}), ${entered} entered in the last batch; next ${next ? new Date(next.at).toISOString() : 'never'}`,
    );
    return Math.max(1, people.length);
  })) as number;
  changes.count(r);
  return worked;
}

// A batch of a date_trait flow's sweep: plans the next people with the date.
async function sweep(
  r: RunnerDeps,
  tx: Tx,
  flow: FlowVersion,
  timer: FlowTimerRow,
  limit: number,
  now: number,
): Promise<number> {
  if (flow.def.trigger.type !== 'date_trait') return 0;
  const people = await withTraitPage(tx, flow.def.trigger.trait, timer.cursor, limit);
  await planPeople(r, tx, flow, people, now);
  if (people.length === limit) await advanceCursor(tx, flow.id, people.at(-1)!);
  else await setFlowTimer(tx, flow.id, flow.version, null, `planned ${flow.def.trigger.trait}`);
  return Math.max(1, people.length);
}

/**
 * Plans (or plans again) these people's next entries into a date_trait flow from their traits and zone:
 * the next moment strictly after now, or, when a planned moment came due and was not taken yet, from that
 * moment (so a change at that instant does not skip it). No date, or a `once` moment passed: no entry.
 */
async function planPeople(
  r: RunnerDeps,
  tx: Tx,
  flow: FlowVersion,
  people: readonly string[],
  now: number,
): Promise<void> {
  if (!people.length) return;
  const facts = await loadFacts(tx, r.pii, people, PLAN_NEEDS);
  const existing = new Map((await plannedOf(tx, [flow.id], people)).map((p) => [p.profileId, p]));
  const rows = people.map((p) => {
    const f = facts.get(p)!;
    const old = existing.get(p);
    const afterMs = old && old.due <= now ? Math.min(old.due - 1, now) : now;
    const next = nextEntry(flow.def, { afterMs, zone: resolveZone(flow.def, f).zone, traits: f.traits });
    return { flowId: flow.id, profileId: p, version: flow.version, due: next?.at ?? null };
  });
  await writePlanned(tx, rows);
}

// Planned date entries that came due: entered if the date still gives that moment, then planned on.
async function runPlanned(r: RunnerDeps, limit: number): Promise<number> {
  const changes = createChanges();
  const worked = (await r.sql.begin(async (tx) => {
    const at = r.clock();
    const now = at.getTime();
    const rows = await claimPlanned(tx, at, limit);
    if (!rows.length) return 0;
    // A merged-away person's entries are the survivor's (planned from the identify that merged them).
    // Every person locked at once, in order (enterPeople locks again per flow: held already).
    await lockPeople(
      tx,
      rows.map((x) => x.profileId),
    );
    const live = new Map((await r.catalog.live(tx)).map((f) => [f.id, f]));
    const versions = await r.catalog.versions(
      tx,
      rows.map((x) => ({ flowId: x.flowId, version: x.version })),
    );
    const facts = await loadFacts(
      tx,
      r.pii,
      rows.map((x) => x.profileId),
      PLAN_NEEDS,
    );
    const writes: { flowId: string; profileId: string; version: number; due: number | null }[] = [];
    const entering = new Map<string, { flow: FlowVersion; entries: { profileId: string; runId: string }[] }>();
    for (const row of rows) {
      const flow = live.get(row.flowId) ?? versions.get(versionKey(row.flowId, row.version));
      if (row.gone || flow?.def.trigger.type !== 'date_trait') {
        writes.push({ ...row, due: null });
        continue;
      }
      const f = facts.get(row.profileId)!;
      const where = { zone: resolveZone(flow.def, f).zone, traits: f.traits };
      // Read again at the moment: a date moved later (or removed) since it was planned does not enter now.
      const still = nextEntry(flow.def, { afterMs: row.due - 1, ...where });
      if (still?.at !== row.due) {
        writes.push({ ...row, version: flow.version, due: still?.at ?? null });
        continue;
      }
      if (live.has(flow.id)) {
        const list = entering.get(flow.id) ?? { flow, entries: [] };
        const moment = new Date(row.due).toISOString();
        list.entries.push({ profileId: row.profileId, runId: runIdFor(flow.id, `date:${row.profileId}:${moment}`) });
        entering.set(flow.id, list);
      }
      const next = nextEntry(flow.def, { afterMs: Math.max(row.due, now), ...where });
      writes.push({ ...row, version: flow.version, due: next?.at ?? null });
    }
    for (const { flow, entries } of entering.values()) await enterPeople(r, tx, flow, entries, now, changes);
    await changes.commit(tx, r, now);
    await writePlanned(tx, writes);
    return rows.length;
  })) as number;
  changes.count(r);
  return worked;
}

/**
 * Plans again the date entries of the people identify events of a batch belong to (their date, or
 * their zone, may have changed): one transaction, nothing when no live flow has a date_trait trigger.
 * Then their runs waiting until a date trait are re-planned too (replan.ts): a date moved earlier fires
 * at its new moment.
 *
 * @example
 * await replanIdentified(deps, eventIds);
 */
export async function replanIdentified(r: RunnerDeps, eventIds: readonly string[]): Promise<void> {
  const people = await identifiedPeople(r.sql, eventIds);
  if (!people.length) return;
  const flows = (await r.catalog.live(r.sql)).filter((f) => f.def.trigger.type === 'date_trait');
  if (flows.length)
    await r.sql.begin(async (tx) => {
      const now = r.clock().getTime();
      for (const flow of flows) await planPeople(r, tx, flow, people, now);
    });
  await replanWaits(r, people);
}
