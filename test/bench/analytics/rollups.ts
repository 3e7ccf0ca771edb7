import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';
// The server's own fill (internal to the server, hence the relative import, as rollup-cost.ts does).
import { rollUpProperty } from '../../../server/src/pipeline/measure/rollup-values.ts';

// The tiles' rollups of migration 0037 on the generated dataset (written in SQL, not through the
// pipeline, so nothing kept them): people per hour, and the properties the dashboard's tiles sum and break
// down by, rolled up as a team marks them (rollUpProperty, what PUT /api/analytics/rollups/properties runs).

/** The properties bench:analytics rolls up: the revenue tiles' sum, the category breakdown's values. */
export const ROLLED_UP = [
  { event: 'Order Completed', property: 'total', byValue: false },
  { event: 'Order Completed', property: 'category', byValue: true },
] as const;

/**
 * Fills analytics_hourly_people when it is empty (as migration 0037 does) and rolls up {@link ROLLED_UP}
 * when not yet rolled up, with `rollUpProperty` (server/src/pipeline/measure/rollup-values.ts). Returns
 * what it did with the seconds each took, or null when the schema has no such rollups.
 *
 * @example
 * for (const line of (await refreshTileRollups(sql)) ?? []) console.log(line);
 */
export async function refreshTileRollups(sql: postgres.Sql): Promise<string[] | null> {
  const [t] = await sql<{ rel: string | null }[]>`SELECT to_regclass('analytics_hourly_people')::text AS rel`;
  if (!t?.rel) return null;
  const done: string[] = [];
  const timed = async (what: string, fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    await fn();
    done.push(`${what} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };
  const [p] = await sql<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM analytics_hourly_people) AS any`;
  if (!p?.any)
    await timed('analytics_hourly_people filled from the events', async () => {
      await sql`
        INSERT INTO analytics_hourly_people (hour, profile_id)
        SELECT DISTINCT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', profile_id
        FROM events
        WHERE profile_id IS NOT NULL`;
      await sql`VACUUM ANALYZE analytics_hourly_people`;
    });
  for (const r of ROLLED_UP) {
    const [has] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM analytics_rollup_properties
      WHERE event = ${r.event} AND property = ${r.property} AND by_value = ${r.byValue}`;
    if (has?.n) continue;
    await timed(`${r.event}.${r.property} rolled up${r.byValue ? ' by value' : ''}`, async () => {
      // The server's Sql is the same client typed without custom types.
      await rollUpProperty(sql as unknown as Sql, r);
      await sql`VACUUM ANALYZE analytics_hourly_values`;
    });
  }
  return done;
}
