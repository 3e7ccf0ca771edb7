import { randomBytes } from 'node:crypto';
import type { FlowDefinition, JournalEntry } from '@cairn/core';
import type { Transaction, Tx } from '../../db/index.ts';
import type { StepRow } from './runs.ts';

// Flows as the admin API reads and writes them, their versions, and runs with their journal.

/**
 * A flow's status: whether its triggers enter people. `draft` (never published), `live`, `paused`
 * (nobody new enters; people in it go on), `archived` (retired: nobody new enters, ever; people in it go on).
 */
export type FlowStatus = 'draft' | 'live' | 'paused' | 'archived';

/**
 * Where a flow's working copy is in review: `draft` (being edited) → `in_review` → `approved` →
 * `published` (it is the live version). Editing the definition makes it a draft again.
 */
export type ReviewState = 'draft' | 'in_review' | 'approved' | 'published';

/** A lifecycle step as the flow keeps its last one (the audit log keeps them all). */
export interface FlowTransition {
  action: 'submit' | 'approve' | 'reject' | 'publish' | 'pause' | 'resume' | 'archive';
  /** The actor (auth/middleware.ts actorOf). */
  by: string;
  /** ISO time on the server's clock. */
  at: string;
  /** Why, as the caller said it. */
  note: string | null;
}

/** A flow as stored. */
export interface FlowRow {
  id: string;
  name: string;
  description: string | null;
  status: FlowStatus;
  /** The working copy (what the next publish snapshots). */
  definition: FlowDefinition;
  /** The published version live runs start on; null before the first publish. */
  version: number | null;
  reviewState: ReviewState;
  /** Who last changed the definition: they cannot approve it. */
  lastEditedBy: string | null;
  submittedBy: string | null;
  approvedBy: string | null;
  lastTransition: FlowTransition | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The fields of a flow an API write sets. */
export interface FlowRecord {
  description: string | null;
  definition: FlowDefinition;
}

const FLOW_COLUMNS = (sql: Tx) => sql`
  id, name, description, status, definition, version, review_state AS "reviewState",
  last_edited_by AS "lastEditedBy", submitted_by AS "submittedBy", approved_by AS "approvedBy",
  last_transition AS "lastTransition", created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Every flow, newest first. */
export async function listFlows(sql: Tx): Promise<FlowRow[]> {
  return sql<FlowRow[]>`SELECT ${FLOW_COLUMNS(sql)} FROM flows ORDER BY created_at DESC, id`;
}

/** One flow, or undefined. */
export async function getFlow(sql: Tx, id: string): Promise<FlowRow | undefined> {
  const [row] = await sql<FlowRow[]>`SELECT ${FLOW_COLUMNS(sql)} FROM flows WHERE id = ${id}`;
  return row;
}

/** Stores a new draft, edited by `by`; returns its id (`flw_…`). */
export async function insertFlow(sql: Tx, record: FlowRecord, by: string | null = null): Promise<string> {
  const id = `flw_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
  await sql`
    INSERT INTO flows (id, name, description, definition, last_edited_by)
    VALUES (${id}, ${record.definition.name}, ${record.description}, ${sql.json(record.definition as never)}, ${by})`;
  return id;
}

/**
 * Replaces a flow's working copy and description (the name is the definition's). A changed definition
 * is a draft again, edited by `by` (its submission and approval are gone); the description is not
 * reviewed. An archived flow is not changed: false.
 */
export async function updateFlow(sql: Tx, id: string, record: FlowRecord, by: string | null = null): Promise<boolean> {
  const definition = sql`${sql.json(record.definition as never)}::jsonb`;
  // In SET, `definition` is the row's value before this update.
  const rows = await sql`
    UPDATE flows SET
      name = ${record.definition.name},
      description = ${record.description},
      review_state = CASE WHEN definition = ${definition} THEN review_state ELSE 'draft' END,
      last_edited_by = CASE WHEN definition = ${definition} THEN last_edited_by ELSE ${by} END,
      submitted_by = CASE WHEN definition = ${definition} THEN submitted_by END,
      approved_by = CASE WHEN definition = ${definition} THEN approved_by END,
      definition = ${definition},
      updated_at = now()
    WHERE id = ${id} AND status <> 'archived'
    RETURNING id`;
  return rows.length > 0;
}

/** A review step: the states it leaves, the one it reaches, and whether the last editor may take it. */
const REVIEW_STEPS = {
  submit: { from: ['draft'], to: 'in_review', editorMay: true },
  approve: { from: ['in_review'], to: 'approved', editorMay: false },
  reject: { from: ['in_review'], to: 'draft', editorMay: true },
} as const satisfies Record<string, { from: ReviewState[]; to: ReviewState; editorMay: boolean }>;

/** The review steps by name. */
export type ReviewStep = keyof typeof REVIEW_STEPS;

/**
 * Takes a review step when the working copy is in a state it leaves (and, for approve, `by` is not its
 * last editor), recording who and why; false when it was not (the flow changed meanwhile, or is archived).
 */
export async function reviewFlow(sql: Tx, id: string, step: ReviewStep, t: FlowTransition): Promise<boolean> {
  const s = REVIEW_STEPS[step];
  const rows = await sql`
    UPDATE flows SET
      review_state = ${s.to},
      submitted_by = ${step === 'submit' ? sql`${t.by}` : step === 'approve' ? sql`submitted_by` : sql`NULL`},
      approved_by = ${step === 'approve' ? sql`${t.by}` : sql`NULL`},
      last_transition = ${sql.json(t as never)},
      updated_at = now()
    WHERE id = ${id}
      AND status <> 'archived'
      AND review_state = ANY(${s.from as unknown as string[]}::text[])
      ${s.editorMay ? sql`` : sql`AND last_edited_by IS DISTINCT FROM ${t.by}`}
    RETURNING id`;
  return rows.length > 0;
}

/** Why a publish did not happen. */
export type PublishRefusal = 'not_approved' | 'changed' | 'archived';

/**
 * Snapshots the working copy as the next version, immutable, and makes the flow live on it, if it is
 * approved and still `expected` (what the caller checked). The flow's row is locked first: an edit at
 * the same moment comes before (and the copy is no longer approved) or after; two publishes at once make
 * one version. Undefined when there is no such flow.
 */
export async function publishFlow(
  tx: Transaction,
  id: string,
  expected: FlowDefinition,
  t: FlowTransition,
): Promise<{ version: number } | { refused: PublishRefusal } | undefined> {
  const [flow] = await tx<{ version: number | null; ok: boolean; reviewState: ReviewState; status: FlowStatus }[]>`
    SELECT version, definition = ${tx.json(expected as never)}::jsonb AS ok, review_state AS "reviewState", status
    FROM flows WHERE id = ${id}
    FOR UPDATE`;
  if (!flow) return undefined;
  if (flow.status === 'archived') return { refused: 'archived' };
  if (flow.reviewState !== 'approved') return { refused: 'not_approved' };
  if (!flow.ok) return { refused: 'changed' };
  const version = (flow.version ?? 0) + 1;
  await tx`
    INSERT INTO flow_versions (flow_id, version, definition, published_by, approved_by)
    SELECT id, ${version}, definition, ${t.by}, approved_by FROM flows WHERE id = ${id}`;
  await tx`
    UPDATE flows SET
      status = 'live', version = ${version}, review_state = 'published',
      last_transition = ${tx.json(t as never)}, updated_at = now()
    WHERE id = ${id}`;
  return { version };
}

/**
 * Moves a flow from one of the statuses `from` to `to` (pausing a live flow, resuming a paused one),
 * recording who and why; false when it was in none of them.
 */
export async function setFlowStatus(
  sql: Tx,
  id: string,
  from: readonly FlowStatus[],
  to: FlowStatus,
  t: FlowTransition,
): Promise<boolean> {
  const rows = await sql`
    UPDATE flows SET status = ${to}, last_transition = ${sql.json(t as never)}, updated_at = now()
    WHERE id = ${id} AND status = ANY(${from as string[]}::text[])
    RETURNING id`;
  return rows.length > 0;
}

/**
 * Archives a flow: nobody enters it again (its planned firings and date entries are dropped with it);
 * people already in it go on to their end. False when it was archived already.
 */
export async function archiveFlow(tx: Transaction, id: string, t: FlowTransition): Promise<boolean> {
  const archived = await setFlowStatus(tx, id, ['draft', 'live', 'paused'], 'archived', t);
  if (!archived) return false;
  await tx`DELETE FROM flow_timers WHERE flow_id = ${id}`;
  await tx`DELETE FROM flow_planned WHERE flow_id = ${id}`;
  return true;
}

/** One published version's definition. */
export async function getFlowVersion(sql: Tx, id: string, version: number): Promise<FlowDefinition | undefined> {
  const [row] = await sql<{ definition: FlowDefinition }[]>`
    SELECT definition FROM flow_versions WHERE flow_id = ${id} AND version = ${version}`;
  return row?.definition;
}

/** A journal entry as stored, with the iteration of the node visit it belongs to. */
export interface StepView extends JournalEntry {
  iteration: number | null;
  /** The event that moved the run in this step. */
  eventId: string | null;
}

/** A run with its journal, as `GET /api/flows/:id/runs` shows it. */
export interface RunView {
  id: string;
  flowId: string;
  version: number;
  profileId: string;
  status: string;
  node: string | null;
  enteredAt: string;
  due: string | null;
  listen: string[] | null;
  endedAt: string | null;
  reason: string | null;
  steps: StepView[];
}

/** One person's runs of a flow, newest first, each with its journal in order (through flow_runs_person_idx). */
export async function flowRuns(sql: Tx, flowId: string, q: { profileId: string; limit: number }): Promise<RunView[]> {
  const runs = await sql<(Omit<RunView, 'steps' | 'endedAt' | 'reason'> & { state: Record<string, unknown> })[]>`
    SELECT id::text, flow_id AS "flowId", version, profile_id::text AS "profileId", status, node,
      entered_at AS "enteredAt", due, listen, state
    FROM flow_runs
    WHERE profile_id = ${q.profileId}::uuid AND flow_id = ${flowId}
    ORDER BY entered_at DESC, id
    LIMIT ${q.limit}`;
  if (!runs.length) return [];
  const steps = await sql<Omit<StepRow, 'decided'>[]>`
    SELECT run_id::text AS "runId", node, iteration, (extract(epoch FROM at) * 1000)::float8 AS at, type, outcome,
      to_node AS to, reason, detail, event_id::text AS "eventId"
    FROM flow_steps
    WHERE run_id = ANY(${runs.map((r) => r.id)}::uuid[])
    ORDER BY run_id, id`;
  const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());
  return runs.map(({ state, ...r }) => ({
    ...r,
    enteredAt: iso(r.enteredAt)!,
    due: iso(r.due),
    endedAt: typeof state.endedAt === 'number' ? new Date(state.endedAt).toISOString() : null,
    reason: typeof state.reason === 'string' ? state.reason : null,
    steps: steps
      .filter((s) => s.runId === r.id)
      .map((s) => ({
        at: s.at,
        ...(s.node === null ? {} : { node: s.node }),
        iteration: s.iteration,
        type: s.type as JournalEntry['type'],
        outcome: s.outcome,
        ...(s.to === null ? {} : { to: s.to }),
        reason: s.reason,
        ...(s.detail === null ? {} : { values: s.detail }),
        eventId: s.eventId,
      })),
  }));
}
