import type { JsonValue } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { importOf, insertCairnEvents } from './store.ts';

/** A computed trait's value that changed for a profile (`null`: it has none now, or had none). */
export interface TraitChange {
  id: string;
  from: JsonValue | null;
  to: JsonValue | null;
}

/**
 * The computed traits a live flow is triggered by changing (`trait_changed` with `computed`): only their
 * changes are recorded as events. A trait such as a last order date changes with every order; recording
 * every change of every computed trait would add an event per event nobody reads.
 *
 * @example
 * const watched = await watchedComputedTraits(tx); // Set { 'rfm' }
 */
export async function watchedComputedTraits(sql: Tx): Promise<Set<string>> {
  const rows = await sql<{ trait: string }[]>`
    SELECT DISTINCT v.definition->'trigger'->>'trait' AS trait
    FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version
    WHERE f.status = 'live' AND v.definition->'trigger'->>'type' = 'trait_changed'
      AND (v.definition->'trigger'->>'computed')::boolean IS TRUE`;
  return new Set(rows.map((r) => r.trait));
}

/**
 * Records computed-trait changes as track events `trait.changed` on the profiles (source `cairn`,
 * properties `{ trait: { key, computed: true }, from, to, reason }`), as membership changes are, so they
 * reach stage 4 (and fan-out) through `memberships.changed`. The messageId names the change: a retried
 * job records it once. Returns their ids.
 *
 * @example
 * const ids = await recordTraitChanges(tx, 'churn', [{ id, from: 'active', to: 'churn_risk' }], now, 'event');
 */
export async function recordTraitChanges(
  sql: Tx,
  key: string,
  changes: readonly TraitChange[],
  at: Date,
  by: string,
): Promise<string[]> {
  if (!changes.length) return [];
  const doc = JSON.stringify(changes.map((c) => ({ p: c.id, f: c.from, t: c.to })));
  return insertCairnEvents(sql, {
    people: sql`SELECT c.p AS profile_id, c.f, c.t FROM json_to_recordset(${doc}::text::json) AS c (p uuid, f jsonb, t jsonb)`,
    event: 'trait.changed',
    prefix: `trait.changed:${key}:`,
    at,
    importId: importOf(by),
    properties: sql`jsonb_build_object('trait', jsonb_build_object('key', ${key}::text, 'computed', true),
      'from', coalesce(w.f, 'null'::jsonb), 'to', coalesce(w.t, 'null'::jsonb), 'reason', ${by}::text)`,
  });
}
