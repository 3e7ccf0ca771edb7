import { randomBytes } from 'node:crypto';
import type { FlowDefinition, JournalEntry } from '@cairn/core';
import type { Transaction, Tx } from '../../db/index.ts';
import type { StepRow } from './runs.ts';

// Flows as the admin API reads and writes them, their versions, and runs with their journal.

/** A flow's status: `draft` (never published), `live`, `paused` (nobody new enters; people in it go on). */
export type FlowStatus = 'draft' | 'live' | 'paused';

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
  createdAt: Date;
  updatedAt: Date;
}

/** The fields of a flow an API write sets. */
export interface FlowRecord {
  description: string | null;
  definition: FlowDefinition;
}

const FLOW_COLUMNS = (sql: Tx) => sql`
  id, name, description, status, definition, version, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Every flow, newest first. */
export async function listFlows(sql: Tx): Promise<FlowRow[]> {
  return sql<FlowRow[]>`SELECT ${FLOW_COLUMNS(sql)} FROM flows ORDER BY created_at DESC, id`;
}

/** One flow, or undefined. */
export async function getFlow(sql: Tx, id: string): Promise<FlowRow | undefined> {
  const [row] = await sql<FlowRow[]>`SELECT ${FLOW_COLUMNS(sql)} FROM flows WHERE id = ${id}`;
  return row;
}

/** Stores a new draft; returns its id (`flw_…`). */
export async function insertFlow(sql: Tx, record: FlowRecord): Promise<string> {
  const id = `flw_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
  await sql`
    INSERT INTO flows (id, name, description, definition)
    VALUES (${id}, ${record.definition.name}, ${record.description}, ${sql.json(record.definition as never)})`;
  return id;
}

/** Replaces a flow's working copy and description (the name is the definition's). */
export async function updateFlow(sql: Tx, id: string, record: FlowRecord): Promise<void> {
  await sql`
    UPDATE flows SET
      name = ${record.definition.name}, description = ${record.description},
      definition = ${sql.json(record.definition as never)}, updated_at = now()
    WHERE id = ${id}`;
}

/**
 * Snapshots the working copy as the next version, immutable, and makes the flow live on it. The flow's
 * row is locked first: two publishes at once make two versions one after the other.
 */
export async function publishFlow(tx: Transaction, id: string, by: string | null): Promise<number | undefined> {
  const [flow] = await tx<{ version: number | null }[]>`SELECT version FROM flows WHERE id = ${id} FOR UPDATE`;
  if (!flow) return undefined;
  const version = (flow.version ?? 0) + 1;
  await tx`
    INSERT INTO flow_versions (flow_id, version, definition, published_by)
    SELECT id, ${version}, definition, ${by} FROM flows WHERE id = ${id}`;
  await tx`UPDATE flows SET status = 'live', version = ${version}, updated_at = now() WHERE id = ${id}`;
  return version;
}

/** Sets a flow's status (pausing a live flow, resuming a paused one). */
export async function setFlowStatus(sql: Tx, id: string, status: FlowStatus): Promise<void> {
  await sql`UPDATE flows SET status = ${status}, updated_at = now() WHERE id = ${id}`;
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
