import type { Sql } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { type ApplyResult, applyDefinitions, emptyResult, mergeResults } from './apply.ts';
import { type Definition, loadDefinitions } from './definitions.ts';
import { lockProfiles } from './locks.ts';

const CHUNK = 250;

/**
 * Re-evaluates, for every definition, the profiles incremental work postponed while a recompute held a
 * definition they needed (`compute_postponed`), one chunk per transaction under the profiles' locks.
 * Stops when the table is empty, or as soon as a chunk is postponed again (the recompute still runs;
 * the next call picks them up). Returns what changed, for fan-out.
 *
 * @example
 * const r = await retryPostponed({ sql, now: () => new Date() });
 */
export async function retryPostponed(
  deps: { sql: Sql; now: () => Date; handOff?: HandOff },
  defs?: readonly Definition[],
): Promise<ApplyResult> {
  const total = emptyResult();
  const [any] = await deps.sql<
    { n: number }[]
  >`SELECT count(*)::int AS n FROM (SELECT 1 FROM compute_postponed LIMIT 1) x`;
  if (!any?.n) return total;
  const definitions = defs ?? (await loadDefinitions(deps.sql));
  for (;;) {
    const r = (await deps.sql.begin(async (tx) => {
      const rows = await tx<{ id: string; by: string }[]>`
        SELECT profile_id::text AS id, min(by) AS by FROM compute_postponed
        GROUP BY profile_id ORDER BY min(id) LIMIT ${CHUNK}`;
      if (!rows.length) return null;
      const ids = rows.map((x) => x.id);
      await lockProfiles(tx, ids);
      await tx`DELETE FROM compute_postponed WHERE profile_id = ANY(${ids}::uuid[])`;
      // `event` unless every row came from a sweep: the reason recorded on the memberships that change.
      const by = rows.every((x) => x.by === 'time') ? 'time' : 'event';
      return applyDefinitions(tx, definitions, {
        now: deps.now(),
        by,
        initial: () => ids,
        share: true,
        handOff: deps.handOff,
      });
    })) as ApplyResult | null;
    if (!r) break;
    mergeResults(total, r);
    if (r.postponed) break;
  }
  return total;
}
