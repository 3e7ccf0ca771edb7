import {
  type Effect,
  type JournalEntry,
  type JsonObject,
  NODE_TYPES,
  type ProfileFacts,
  type RunState,
  type RunStatus,
  type StepResult,
} from '@cairn/core';
import { maskValue, type Pii } from '../../pii/index.ts';

// A run as the engine sees it (RunState) and as its row stores it, and the journal rows of a step.

/** A run's row: what the runner queries as columns, the rest of the engine's state in `state`. */
export interface RunRow {
  id: string;
  flowId: string;
  version: number;
  profileId: string;
  status: RunStatus;
  node: string | null;
  iteration: number;
  /** Epoch ms. */
  due: number | null;
  listen: string[] | null;
  exclusive: boolean;
  /** Epoch ms. */
  enteredAt: number;
  sourceId: string | null;
  state: StoredState;
}

/**
 * The part of RunState kept as JSON (`data` only when it holds something). The trigger event's fields are
 * sealed as an event payload is.
 */
export type StoredState = Pick<RunState, 'visits'> &
  Partial<Pick<RunState, 'data' | 'event' | 'since' | 'awaiting' | 'convertedAt' | 'endedAt' | 'reason'>>;

/** What a step wrote to the journal, with the iteration of the node visit each entry belongs to. */
export interface StepRow {
  runId: string;
  node: string | null;
  iteration: number | null;
  at: number;
  type: string;
  outcome: string;
  to: string | null;
  reason: string;
  detail: Record<string, unknown> | null;
  /** The event that moved the run in this step. */
  eventId: string | null;
  /** The entry that decides its node visit (at most one per run, node and iteration). */
  decided: boolean;
}

const ACTIVE: ReadonlySet<RunStatus> = new Set(['waiting', 'awaiting_effect']);

/** Whether a run is still going (waiting or awaiting an effect). */
export const isActive = (status: RunStatus): boolean => ACTIVE.has(status);

type Sealing = Pick<Pii, 'sealPayload' | 'openPayload'>;

/**
 * The engine's state of a stored run.
 *
 * @example
 * const state = stateOf(row, pii);
 */
export function stateOf(row: RunRow, pii: Sealing): RunState {
  const { event, ...rest } = row.state;
  const state: RunState = {
    data: {},
    ...rest,
    runId: row.id,
    flowId: row.flowId,
    profileId: row.profileId,
    status: row.status,
    node: row.node,
    iteration: row.iteration,
    enteredAt: row.enteredAt,
  };
  if (event) state.event = pii.openPayload(event as JsonObject);
  if (row.due !== null) state.due = row.due;
  if (row.listen) state.listen = row.listen.length === 1 && row.listen[0] === '*' ? '*' : row.listen;
  return state;
}

/**
 * The row of a run's state (`listen: '*'` is stored as `{*}`).
 *
 * @example
 * const row = rowOf(state, { version: 3, exclusive: true, sourceId: 'web' }, pii);
 */
export function rowOf(
  s: RunState,
  meta: { version: number; exclusive: boolean; sourceId: string | null },
  pii: Sealing,
): RunRow {
  const state: StoredState = { visits: s.visits };
  if (Object.keys(s.data).length) state.data = s.data;
  if (s.event) state.event = pii.sealPayload(s.event as JsonObject);
  if (s.since !== undefined) state.since = s.since;
  if (s.awaiting) state.awaiting = s.awaiting;
  if (s.convertedAt !== undefined) state.convertedAt = s.convertedAt;
  if (s.endedAt !== undefined) state.endedAt = s.endedAt;
  if (s.reason !== undefined) state.reason = s.reason;
  return {
    id: s.runId,
    flowId: s.flowId,
    version: meta.version,
    profileId: s.profileId,
    status: s.status,
    node: s.node,
    iteration: s.iteration,
    due: s.due ?? null,
    listen: s.listen === undefined ? null : s.listen === '*' ? ['*'] : s.listen,
    exclusive: meta.exclusive,
    enteredAt: s.enteredAt,
    sourceId: meta.sourceId,
    state,
  };
}

const NODE_TYPE_SET: ReadonlySet<string> = new Set(NODE_TYPES);
// Outcomes that leave a node visit open: the run stays at the node.
const OPEN = new Set(['waiting', 'awaiting']);

/**
 * The journal rows of one step, each with the iteration of the node visit it belongs to. The engine
 * enters a node right after an entry whose edge leads to it (`to`), so such an entry starts a new visit
 * (the node's next iteration); any other entry for a node belongs to the visit the run is at (a wait
 * resumed, a goal noticed). Its deciding entry is the one whose outcome leaves the visit.
 *
 * @example
 * const rows = journalRows(before, result.journal, eventId);
 */
export function journalRows(
  before: RunState,
  journal: readonly JournalEntry[],
  eventId: string | null = null,
): StepRow[] {
  const visits = { ...before.visits };
  const rows: StepRow[] = [];
  let prev: JournalEntry | undefined;
  for (const j of journal) {
    let iteration: number | null = null;
    const nodeEntry = j.node !== undefined && NODE_TYPE_SET.has(j.type ?? '');
    if (j.node !== undefined && nodeEntry) {
      if (prev?.to === j.node) {
        iteration = visits[j.node] ?? 0;
        visits[j.node] = iteration + 1;
      } else iteration = Math.max(0, (visits[j.node] ?? 1) - 1);
    } else if (j.node !== undefined && j.type === 'goal') iteration = Math.max(0, (visits[j.node] ?? 1) - 1);
    rows.push({
      runId: before.runId,
      node: j.node ?? null,
      iteration,
      at: j.at,
      type: j.type ?? 'step',
      outcome: j.outcome,
      to: j.to ?? null,
      reason: j.reason,
      detail: j.values ?? null,
      eventId,
      decided: nodeEntry && !OPEN.has(j.outcome),
    });
    prev = j;
  }
  return rows;
}

/**
 * A step that failed in the runner (a definition the engine could not run): the run ends `failed`,
 * with the error as its reason, instead of being retried for ever.
 *
 * @example
 * const result = failedStep(state, err, now);
 */
export function failedStep(state: RunState, err: unknown, now: number): StepResult {
  const reason = `the runner failed: ${(err as Error)?.message ?? String(err)}`;
  const { due: _due, listen: _listen, since: _since, awaiting: _awaiting, ...rest } = state;
  const entry: JournalEntry = { at: now, type: 'end', outcome: 'failed', reason };
  if (state.node) entry.node = state.node;
  return { state: { ...rest, status: 'failed', endedAt: now, reason }, effects: [], journal: [entry] };
}

/** The effects this runner performs; the others are refused when a flow is published (see runnable.ts). */
export type RunnableEffect = Extract<Effect, { type: 'send' }>;

/**
 * A step's journal without the person's sensitive trait values in clear: a decision on an email (its
 * reason and the values it read) keeps the masked form (`a***@example.com`), as the journal is stored
 * as it is and sensitive traits are only ever stored sealed.
 *
 * @example
 * const safe = maskJournal(result, profile, pii);
 */
export function maskJournal(result: StepResult, profile: ProfileFacts, pii: Pick<Pii, 'isSensitive'>): StepResult {
  const secrets = Object.entries(profile.traits)
    .filter(([k, v]) => pii.isSensitive(k) && (typeof v === 'string' || typeof v === 'number') && String(v).length >= 3)
    .map(([, v]) => String(v))
    .sort((a, b) => b.length - a.length);
  if (!secrets.length) return result;
  const mask = (text: string) => secrets.reduce((t, secret) => t.replaceAll(secret, String(maskValue(secret))), text);
  const journal = result.journal.map((j) => {
    const out: JournalEntry = { ...j, reason: mask(j.reason) };
    if (j.values) out.values = JSON.parse(mask(JSON.stringify(j.values))) as Record<string, unknown>;
    return out;
  });
  return { ...result, journal };
}
