import type { Tx } from '../../db/index.ts';

// A person's flow runs as the console's timeline shows them: one line per run (its journal is
// GET /api/flows/:id/runs?profile=…), through flow_runs_person_idx.

/** A run as a timeline item. */
export interface PersonRun {
  id: string;
  flowId: string;
  /** The flow's name (null when the flow is gone). */
  flowName: string | null;
  version: number;
  status: string;
  /** The node it waits at (or ended at). */
  node: string | null;
  enteredAt: Date;
  /** `enteredAt` in microseconds since the epoch (a cursor's instant). */
  enteredUs: string;
  /** When it ended (completed, exited, failed), else null. */
  endedAt: Date | null;
  /** Why it ended, when it said. */
  reason: string | null;
}

/**
 * The newest runs of these profiles that started before `before` (`us`: microseconds since the epoch;
 * `id` given: at that instant with a lower id too; `inclusive`: at that instant too), newest first, at
 * most `limit`.
 *
 * @example
 * const runs = await runsOfProfiles(sql, [profileId], undefined, 50);
 */
export async function runsOfProfiles(
  sql: Tx,
  profileIds: readonly string[],
  before: { us: string; id?: string; inclusive?: boolean } | undefined,
  limit: number,
): Promise<PersonRun[]> {
  const t = before && sql`(timestamptz 'epoch' + ${before.us}::bigint * interval '1 microsecond')`;
  const bound = !before
    ? sql``
    : before.id !== undefined
      ? sql`AND (r.entered_at, r.id) < (${t!}, ${before.id}::uuid)`
      : before.inclusive
        ? sql`AND r.entered_at <= ${t!}`
        : sql`AND r.entered_at < ${t!}`;
  const rows = await sql<(Omit<PersonRun, 'endedAt' | 'reason'> & { state: Record<string, unknown> })[]>`
    SELECT r.id::text, r.flow_id AS "flowId", f.name AS "flowName", r.version, r.status, r.node,
      r.entered_at AS "enteredAt",
      (extract(epoch FROM r.entered_at) * 1000000)::bigint::text AS "enteredUs", r.state
    FROM flow_runs r
    LEFT JOIN flows f ON f.id = r.flow_id
    WHERE r.profile_id = ANY(${profileIds as string[]}::uuid[])
      ${bound}
    ORDER BY r.entered_at DESC, r.id DESC
    LIMIT ${limit}`;
  return rows.map(({ state, ...r }) => ({
    ...r,
    endedAt: typeof state.endedAt === 'number' ? new Date(state.endedAt) : null,
    reason: typeof state.reason === 'string' ? state.reason : null,
  }));
}
