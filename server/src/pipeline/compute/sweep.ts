import { randomUUID } from 'node:crypto';
import { computedTraitEdges, ruleEdges } from '@cairn/core';
import type { Sql } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { type ApplyResult, applyDefinitions, emptyResult, mergeResults } from './apply.ts';
import { loadDefinitions, nodeName } from './definitions.ts';
import { runFragment } from './evaluate.ts';
import { lockProfiles } from './locks.ts';

const CHUNK = 250;
const LEASE_SECONDS = 120;
const KEY = 'compute.sweep';

/**
 * One sweep for time-driven changes ("added to cart in the last 24 h" ends when the 24 h pass, with
 * no new event): for each time-bound definition, the SQL of its rule's edges finds only the profiles
 * whose window edge or date boundary passed since the last sweep, and those are re-evaluated.
 *
 * One process sweeps at a time: it takes a lease on the `compute.sweep` setting; the interval it
 * covers (last sweep → now) is committed only when the sweep is done, so a crash leaves it to the
 * next sweeper (after the lease lapses), which covers it again — re-evaluating is idempotent.
 *
 * @example
 * const result = await sweepOnce({ sql, now: () => new Date() }, new Date());
 */
export async function sweepOnce(deps: { sql: Sql; handOff?: HandOff }, now: Date): Promise<ApplyResult> {
  const result = emptyResult();
  const owner = randomUUID();
  const [claim] = await deps.sql<{ since: string | null }[]>`
    INSERT INTO settings (key, value) VALUES (${KEY}, ${deps.sql.json({ sweptAt: now.toISOString(), owner, leaseUntil: new Date(Date.now() + LEASE_SECONDS * 1000).toISOString() })})
    ON CONFLICT (key) DO UPDATE SET
      value = settings.value || jsonb_build_object('owner', ${owner}::text, 'leaseUntil', ${new Date(Date.now() + LEASE_SECONDS * 1000).toISOString()}::text),
      updated_at = now()
    WHERE coalesce((settings.value ->> 'leaseUntil')::timestamptz, '-infinity') < now()
    RETURNING CASE WHEN value ->> 'owner' = ${owner} AND xmax <> 0 THEN value ->> 'sweptAt' END AS since`;
  // No row: another process holds the lease. A fresh row: the first sweep, which starts the clock.
  if (!claim) return result;
  const since = claim.since ? new Date(claim.since) : null;
  if (since && since < now) {
    const defs = await loadDefinitions(deps.sql);
    const candidates = new Map<string, Set<string>>();
    for (const def of defs) {
      const edges = !def.deps.timeBound
        ? null
        : def.kind === 'computed'
          ? computedTraitEdges(def.computed, since, now)
          : ruleEdges(def.rule, since, now);
      if (!edges) continue;
      const rows = await runFragment<{ id: string }>(deps.sql, edges);
      if (rows.length) candidates.set(nodeName(def.kind, def.key), new Set(rows.map((r) => r.id)));
    }
    const all = [...new Set([...candidates.values()].flatMap((s) => [...s]))];
    for (let i = 0; i < all.length; i += CHUNK) {
      const chunk = all.slice(i, i + CHUNK);
      const r = (await deps.sql.begin(async (tx) => {
        await lockProfiles(tx, chunk);
        return applyDefinitions(tx, defs, {
          now,
          by: 'time',
          share: true,
          handOff: deps.handOff,
          initial: (d) => {
            const c = candidates.get(nodeName(d.kind, d.key));
            const mine = c ? chunk.filter((id) => c.has(id)) : [];
            return mine.length ? mine : null;
          },
        });
      })) as ApplyResult;
      mergeResults(result, r);
    }
  }
  // Member counts over time: a point per audience per hour (full recomputes add their own).
  await deps.sql`
    INSERT INTO audience_counts (audience, at, members)
    SELECT a.key, ${now}, (SELECT count(*)::int FROM audience_memberships m WHERE m.audience = a.key AND m.exited_at IS NULL)
    FROM audiences a
    WHERE a.enabled AND a.computed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM audience_counts c WHERE c.audience = a.key AND c.at > ${new Date(now.getTime() - 3_600_000)})
    ON CONFLICT DO NOTHING`;
  await deps.sql`
    UPDATE settings SET value = jsonb_build_object('sweptAt', ${now.toISOString()}::text), updated_at = now()
    WHERE key = ${KEY} AND value ->> 'owner' = ${owner}`;
  return result;
}
