import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';
// The server's own fill (internal to the server, hence the relative import, as rollups.ts does).
import { dropPeriodPeople, keepPeriodPeople } from '../../../server/src/pipeline/measure/rollup-period-people.ts';
import { FUNNEL } from './data.ts';
import { ZONE } from './queries.ts';

// People per local day (migration 0042) on the generated dataset, written in SQL around the pipeline:
// the dashboard's zone and the named events of its people tiles ("buyers per week, funnel entries per
// week") kept as a team would keep them (keepPeriodPeople, what POST /api/analytics/rollups/people runs).

/** What bench:analytics keeps: UTC (kept by default), the dashboard's zone, and its tiles' named events. */
export const KEPT = [{ zone: 'UTC' }, { zone: ZONE }, { event: 'Order Completed' }, { event: FUNNEL[0].name }] as const;

/**
 * Keeps {@link KEPT} and fills what has no rows (a key kept before the events were generated is
 * dropped and filled again). Returns what it did with the seconds each took, or null when the schema has
 * no such rollup.
 *
 * @example
 * for (const line of (await refreshPeriodPeople(sql)) ?? []) console.log(line);
 */
export async function refreshPeriodPeople(sql: postgres.Sql): Promise<string[] | null> {
  const [t] = await sql<{ rel: string | null }[]>`SELECT to_regclass('analytics_rollup_people')::text AS rel`;
  if (!t?.rel) return null;
  const server = sql as unknown as Sql; // the server's Sql is the same client typed without custom types
  const done: string[] = [];
  for (const entry of KEPT) {
    const [kind, value] = 'zone' in entry ? ['zone', entry.zone] : ['event', entry.event];
    const [s] = await sql<{ kept: boolean; rows: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM analytics_rollup_people WHERE kind = ${kind} AND value = ${value}) AS kept,
        EXISTS (
          SELECT 1 FROM analytics_period_people WHERE ${kind === 'zone' ? sql`zone = ${value}` : sql`event = ${value}`}
        ) AS rows`;
    if (s?.kept && s.rows) continue;
    if (s?.kept) await dropPeriodPeople(server, entry);
    const r = await keepPeriodPeople(server, entry);
    done.push(`people per day: ${kind} ${value} filled (${r.rows} presence rows) in ${(r.ms / 1000).toFixed(1)} s`);
  }
  if (done.length) await sql`VACUUM ANALYZE analytics_period_people, analytics_period_counts`;
  return done;
}
