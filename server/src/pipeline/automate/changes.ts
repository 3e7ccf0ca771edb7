import type { RunState, StepResult } from '@cairn/core';
import type { Transaction } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Pii } from '../../pii/index.ts';
import type { RequestedMessage } from '../topics.ts';
import type { FlowVersion } from './catalog.ts';
import { type Call, callOf, requestCalls } from './effect-calls.ts';
import { type EmployeeWork, employeeEffects } from './employees.ts';
import { recordAssignments } from './experiments.ts';
import { type PointsWrite, writePoints } from './points.ts';
import { type ProfileUpdate, writeProfileUpdates } from './profile-writes.ts';
import { flowCampaigns, insertRuns, insertSteps, notifyDue, updateRuns } from './queries.ts';
import { isActive, journalRows, type RunRow, rowOf, type StepRow } from './runs.ts';

/** The channel servers' timers listen on: a run came due sooner than their next sweep. */
export const DUE_CHANNEL = 'cairn_flow_due';

/** What committing needs. */
export interface CommitDeps {
  /** Counted once the transaction has committed (a rolled-back step counts nothing). */
  metrics?: Pick<Metrics, 'flowSteps' | 'flowRunsEnded' | 'flowMessages'>;
  handOff: HandOff;
  pii: Pick<Pii, 'sealPayload' | 'openPayload' | 'sealBytes' | 'openValue'>;
  log: Logger;
  dbKind: 'postgres' | 'embedded';
  /** How far ahead a run's due time must be for the next sweep to find it in time (no wake-up needed). */
  sweepMs: number;
}

/** A message as the step rendered it; sealed when committed. */
type Outgoing = Omit<RequestedMessage, 'sealed'> & { message: { subject?: string; body: string; track?: boolean } };

/** Which flow version a run runs on, as its row records it. */
export type RunMeta = Pick<FlowVersion, 'id' | 'version' | 'exclusive'>;

interface Pending {
  version: RunMeta;
  inputs: StepKind[];
  /** The run ended in this transaction. */
  ended: boolean;
  /** A run new in this transaction (inserted), or one read locked (updated). */
  isNew: boolean;
  state: RunState;
  sourceId: string | null;
  steps: StepRow[];
  messages: Outgoing[];
  /** Profile updates, written with the step (profile-writes.ts). */
  updates: ProfileUpdate[];
  /** Webhook and action calls the run now awaits, handed to the `effects` queue (effects.ts). */
  calls: Call[];
  /** Points ledger entries, written with the step (points.ts). */
  points: PointsWrite[];
  /** Owner assignments and employee notices, performed at commit (employees.ts). */
  employees: EmployeeWork[];
}

/** The steps of one transaction, gathered per run, then written together. */
export interface Changes {
  /**
   * A step of a run: `before` is the state it started from (a new run's, from `enter()`), `eventId` the
   * event that moved it, if one did. Steps with nothing to record (an input that did not apply) are dropped.
   */
  record(
    version: RunMeta,
    before: RunState,
    result: StepResult,
    options: { isNew: boolean; sourceId: string | null; eventId?: string; input: StepKind },
  ): void;
  /** How many runs changed. */
  readonly size: number;
  /**
   * Writes every run's last state, the journal, and hands the messages over to stage 5 — in the caller's
   * transaction, so a crash before the commit leaves nothing and a replay gets the same keys.
   */
  commit(tx: Transaction, deps: CommitDeps, now: number): Promise<void>;
  /** Counts what was committed (call after the transaction committed). */
  count(deps: CommitDeps): void;
}

/** What moved a run in a step (`replan`: a date trait it waits until changed). */
export type StepKind = 'entry' | 'due' | 'event' | 'effect' | 'replan' | 'migrate';

/**
 * Creates an empty set of changes.
 *
 * @example
 * const changes = createChanges();
 * changes.record(version, state, advance(def, state, { type: 'due' }, ctx), { isNew: false, sourceId: null });
 * await changes.commit(tx, deps, now);
 */
export function createChanges(): Changes {
  const runs = new Map<string, Pending>();
  let committed: Pending[] = [];
  return {
    get size() {
      return runs.size;
    },
    record(version, before, result, options) {
      const idle = !result.journal.length && !result.effects.length;
      if (
        !options.isNew &&
        idle &&
        (result.state === before || JSON.stringify(result.state) === JSON.stringify(before))
      )
        return;
      const pending = runs.get(before.runId) ?? {
        version,
        isNew: options.isNew,
        state: before,
        sourceId: options.sourceId,
        steps: [],
        messages: [],
        updates: [],
        calls: [],
        points: [],
        employees: [],
        inputs: [],
        ended: false,
      };
      const messages: Outgoing[] = [];
      const flow = { id: version.id, version: version.version, runId: before.runId };
      const profileId = result.state.profileId;
      for (const e of result.effects) {
        if (e.type === 'send')
          messages.push({
            key: e.key,
            destinationId: e.destination,
            profileId,
            sourceId: pending.sourceId,
            flow: { ...flow, node: e.node },
            message: e.message,
          });
        else if (e.type === 'update_profile') pending.updates.push({ ...e, profileId, flow });
        else if (e.type === 'points') pending.points.push({ ...e, profileId });
        else if (e.type === 'assign_owner' || e.type === 'notify_employees')
          pending.employees.push({ effect: e, profileId, sourceId: pending.sourceId, flow });
        else pending.calls.push(callOf(e, profileId, flow));
      }
      pending.state = result.state;
      pending.steps.push(...journalRows(before, result.journal, options.eventId ?? null));
      pending.messages.push(...messages);
      pending.inputs.push(options.input);
      pending.ended = !isActive(result.state.status);
      runs.set(before.runId, pending);
    },
    async commit(tx, deps, now) {
      if (!runs.size) return;
      const rows = (p: Pending): RunRow =>
        rowOf(p.state, { version: p.version.version, exclusive: p.version.exclusive, sourceId: p.sourceId }, deps.pii);
      const fresh = [...runs.values()].filter((p) => p.isNew);
      const inserted = await insertRuns(tx, fresh.map(rows));
      const kept = [...runs.values()].filter((p) => !p.isNew || inserted.has(p.state.runId));
      committed = kept;
      for (const p of fresh)
        if (!inserted.has(p.state.runId))
          deps.log.info(`flow ${p.version.id}: run ${p.state.runId} exists or ${p.state.profileId} is in the flow`);
      await updateRuns(tx, kept.filter((p) => !p.isNew).map(rows));
      await insertSteps(
        tx,
        kept.flatMap((p) => p.steps),
      );
      // Experiment nodes' test assignments, from the journal just written (experiments.ts).
      await recordAssignments(
        tx,
        kept.map((p) => ({ version: p.version, profileId: p.state.profileId, steps: p.steps })),
      );
      // A message carries the campaign its flow belongs to now (tracked links and opens report it).
      const outgoing = kept.flatMap((p) => p.messages);
      const flowIds = outgoing.map((m) => m.flow.id);
      const campaigns = flowIds.length ? await flowCampaigns(tx, flowIds) : new Map<string, string>();
      const messages: RequestedMessage[] = outgoing.map(({ message, ...rest }) => {
        const campaign = campaigns.get(rest.flow.id);
        const sealed = campaign ? { ...message, campaign } : message;
        return { ...rest, sealed: deps.pii.sealBytes(Buffer.from(JSON.stringify(sealed))) };
      });
      messages.push(
        ...(await employeeEffects(
          tx,
          deps,
          kept.flatMap((p) => p.employees),
        )),
      );
      if (messages.length) await deps.handOff(tx, 'messages.requested', { messages });
      await writeProfileUpdates(
        tx,
        deps,
        kept.flatMap((p) => p.updates),
        now,
      );
      await writePoints(
        tx,
        kept.flatMap((p) => p.points),
        now,
      );
      await requestCalls(
        tx,
        deps,
        kept.flatMap((p) => p.calls),
      );
      // A run due before the timers' next sweep wakes them (Postgres; the embedded database has one timer,
      // whose sleep is already bounded by the next due time it read).
      if (deps.dbKind === 'postgres' && kept.some((p) => p.state.due !== undefined && p.state.due < now + deps.sweepMs))
        await notifyDue(tx, DUE_CHANNEL);
    },
    count(deps) {
      const m = deps.metrics;
      if (!m) return;
      for (const p of committed) {
        for (const input of p.inputs) m.flowSteps.inc({ input });
        if (p.ended) m.flowRunsEnded.inc({ status: p.state.status });
        if (p.messages.length) m.flowMessages.inc(p.messages.length);
      }
    },
  };
}
