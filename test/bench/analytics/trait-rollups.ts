import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';
// The server's own fill (internal to the server, hence the relative import, as rollups.ts does).
import { keepTraitRollup } from '../../../server/src/pipeline/measure/rollup-traits.ts';
import { ZONE } from './queries.ts';

// Trait breakdowns (migration 0044) on the generated dataset, written in SQL around the pipeline: the
// dashboard's "average order by plan (trait) per week" kept as a team would keep it (keepTraitRollup, what
// PUT /api/analytics/rollups/traits runs).

/** What bench:analytics keeps: the order total by plan, in the dashboard's zone. */
export const KEPT_TRAITS = [{ trait: 'plan', event: 'Order Completed', property: 'total', zone: ZONE }] as const;

/**
 * Keeps {@link KEPT_TRAITS} when not kept yet (a fresh dataset starts without). Returns what it did with
 * the seconds each took, or null when the schema has no such rollup.
 *
 * @example
 * for (const line of (await refreshTraitRollups(sql)) ?? []) console.log(line);
 */
export async function refreshTraitRollups(sql: postgres.Sql): Promise<string[] | null> {
  const [t] = await sql<{ rel: string | null }[]>`SELECT to_regclass('analytics_rollup_traits')::text AS rel`;
  if (!t?.rel) return null;
  const done: string[] = [];
  for (const entry of KEPT_TRAITS) {
    const r = await keepTraitRollup(sql as unknown as Sql, entry);
    if (r.added)
      done.push(
        `trait breakdown: ${entry.event}.${entry.property} by ${entry.trait} in ${entry.zone} filled (${r.rows} cells) in ${(r.ms / 1000).toFixed(1)} s`,
      );
  }
  if (done.length) await sql`VACUUM ANALYZE analytics_trait_cells, analytics_trait_counts`;
  return done;
}
