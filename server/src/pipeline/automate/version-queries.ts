import type { FlowDefinition } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { RUN_COLUMNS } from './queries.ts';
import { lockPeople } from './runner.ts';
import type { RunRow } from './runs.ts';

// A flow's published versions as the versions API shows them, and the reads and writes of moving runs
// from one version to another (migrate-runs.ts).

/** A published version in a flow's history. */
export interface VersionSummary {
  version: number;
  publishedAt: Date;
  publishedBy: string | null;
  /** Runs on this version that are still going. */
  active: { waiting: number; awaitingEffect: number };
}

/** A flow's versions, newest first, with the runs active on each (null: no such flow has versions). */
export async function listVersions(sql: Tx, flowId: string): Promise<VersionSummary[]> {
  const rows = await sql<{ version: number; publishedAt: Date; publishedBy: string | null }[]>`
    SELECT version, published_at AS "publishedAt", published_by AS "publishedBy"
    FROM flow_versions WHERE flow_id = ${flowId} ORDER BY version DESC`;
  const counts = await sql<{ version: number; status: string; count: number }[]>`
    SELECT version, status, count(*)::int AS count
    FROM flow_runs WHERE flow_id = ${flowId} AND status IN ('waiting', 'awaiting_effect')
    GROUP BY 1, 2`;
  return rows.map((r) => {
    const of = (status: string) => counts.find((c) => c.version === r.version && c.status === status)?.count ?? 0;
    return { ...r, active: { waiting: of('waiting'), awaitingEffect: of('awaiting_effect') } };
  });
}

/** One published version with when and by whom. */
export async function versionOf(
  sql: Tx,
  flowId: string,
  version: number,
): Promise<(Omit<VersionSummary, 'active'> & { definition: FlowDefinition }) | undefined> {
  const [row] = await sql<(Omit<VersionSummary, 'active'> & { definition: FlowDefinition })[]>`
    SELECT version, published_at AS "publishedAt", published_by AS "publishedBy", definition
    FROM flow_versions WHERE flow_id = ${flowId} AND version = ${version}`;
  return row;
}

/** How many active runs of a version are at each node, by status. */
export async function activeByNode(
  sql: Tx,
  flowId: string,
  version: number,
): Promise<{ node: string | null; status: 'waiting' | 'awaiting_effect'; count: number }[]> {
  return sql<{ node: string | null; status: 'waiting' | 'awaiting_effect'; count: number }[]>`
    SELECT node, status, count(*)::int AS count
    FROM flow_runs
    WHERE flow_id = ${flowId} AND version = ${version} AND status IN ('waiting', 'awaiting_effect')
    GROUP BY 1, 2 ORDER BY 1, 2`;
}

/** What {@link waitingAt} asks for. */
export interface WaitingAtQuery {
  flowId: string;
  version: number;
  nodes: readonly string[];
  after: string;
  limit: number;
}

/**
 * The query of {@link waitingAt}, not run (a test EXPLAINs it). A range of flow_runs_version_idx in uuid
 * order (`ORDER BY id` would sort by the selected text, which no index gives, and which the `id > after`
 * paging compares as uuids), the nodes filtered on the way, stopping at the limit.
 *
 * @example
 * await tx`EXPLAIN ${waitingAtQuery(tx, q)}`;
 */
export function waitingAtQuery(tx: Tx, q: WaitingAtQuery) {
  return tx<{ id: string; profileId: string }[]>`
    SELECT r.id::text AS id, r.profile_id::text AS "profileId"
    FROM flow_runs r
    WHERE r.flow_id = ${q.flowId} AND r.version = ${q.version} AND r.status = 'waiting'
      AND r.node = ANY(${q.nodes as string[]}::text[]) AND r.id > ${q.after}::uuid
    ORDER BY r.id
    LIMIT ${q.limit}`;
}

/** The next `limit` waiting runs of a version at these nodes, after `after` in id order (not locked). */
export async function waitingAt(tx: Tx, q: WaitingAtQuery): Promise<{ id: string; profileId: string }[]> {
  return waitingAtQuery(tx, q);
}

/** These runs, locked for the transaction, in id order (waits for a step under way: never skips). */
export async function lockRuns(tx: Tx, ids: readonly string[]): Promise<RunRow[]> {
  if (!ids.length) return [];
  return tx<RunRow[]>`
    SELECT ${RUN_COLUMNS(tx)} FROM flow_runs r WHERE r.id = ANY(${ids as string[]}::uuid[]) ORDER BY r.id FOR UPDATE`;
}

/**
 * Runs `waitingAt` picked, locked as a step locks them: their people first (lockPeople), then the rows
 * (lockRuns). Returns the rows as they are now, for the caller to check they are still where it picked them.
 *
 * @example
 * const rows = (await lockPicked(tx, picked)).filter((x) => x.status === 'waiting');
 */
export async function lockPicked(tx: Tx, picked: readonly { id: string; profileId: string }[]): Promise<RunRow[]> {
  await lockPeople(
    tx,
    picked.map((p) => p.profileId),
  );
  return lockRuns(
    tx,
    picked.map((p) => p.id),
  );
}

/** When each run began waiting at its current node visit: its journal's first `waiting` entry there (epoch ms). */
export async function waitingSince(
  tx: Tx,
  runs: readonly { id: string; node: string; iteration: number }[],
): Promise<Map<string, number>> {
  if (!runs.length) return new Map();
  const rows = await tx<{ id: string; at: number }[]>`
    SELECT DISTINCT ON (s.run_id) s.run_id::text AS id, (extract(epoch FROM s.at) * 1000)::float8 AS at
    FROM flow_steps s
    JOIN unnest(${runs.map((r) => r.id)}::uuid[], ${runs.map((r) => r.node)}::text[],
      ${runs.map((r) => r.iteration)}::int[]) AS k (id, node, iteration)
      ON s.run_id = k.id AND s.node = k.node AND s.iteration = k.iteration
    WHERE s.outcome = 'waiting'
    ORDER BY s.run_id, s.id`;
  return new Map(rows.map((r) => [r.id, r.at]));
}

/** Puts runs on another version of their flow (the rest of their row is written by the step's commit). */
export async function setVersion(tx: Tx, ids: readonly string[], version: number): Promise<void> {
  if (ids.length) await tx`UPDATE flow_runs SET version = ${version} WHERE id = ANY(${ids as string[]}::uuid[])`;
}
