import type { Tx } from '../../db/index.ts';
import { RUN_COLUMNS } from './queries.ts';
import type { RunRow } from './runs.ts';

// The reads of the effects queue's jobs: whether a run still awaits a call, and the run itself, locked.

/**
 * Whether the run still awaits the call with this key (a cheap read before performing it: a job
 * delivered again after its result was fed back calls nobody).
 */
export async function stillAwaits(sql: Tx, runId: string, key: string): Promise<boolean> {
  const [row] = await sql<{ id: string }[]>`
    SELECT id::text FROM flow_runs
    WHERE id = ${runId} AND status = 'awaiting_effect' AND state->'awaiting'->>'key' = ${key}`;
  return row !== undefined;
}

/** The run, locked for the transaction, if it still awaits the call with this key. */
export async function awaitingRun(tx: Tx, runId: string, key: string): Promise<RunRow | undefined> {
  const [row] = await tx<RunRow[]>`
    SELECT ${RUN_COLUMNS(tx)}
    FROM flow_runs r
    WHERE r.id = ${runId} AND r.status = 'awaiting_effect' AND r.state->'awaiting'->>'key' = ${key}
    FOR UPDATE`;
  return row;
}
