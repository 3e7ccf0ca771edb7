import type { JsonValue } from '@cairn/core';
import type { Tx } from '../../db/index.ts';

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
  const ts = at.toISOString();
  const doc = JSON.stringify(changes.map((c) => ({ p: c.id, f: c.from, t: c.to })));
  const rows = await sql<{ id: string }[]>`
    WITH c AS (SELECT * FROM json_to_recordset(${doc}::text::json) AS x (p uuid, f jsonb, t jsonb)),
    who AS (
      SELECT c.p AS profile_id, c.f, c.t,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'userId' ORDER BY i.created_at, i.key LIMIT 1) AS user_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'anonymousId' ORDER BY i.created_at, i.key LIMIT 1) AS anonymous_id
      FROM c
    )
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, profile_id, processed_at)
    SELECT 'cairn', ${`trait.changed:${key}:`} || w.profile_id::text || ':' || ${ts}, 'track', 'trait.changed', w.user_id,
      w.anonymous_id, ${at}, now(),
      jsonb_strip_nulls(jsonb_build_object(
        'type', 'track', 'event', 'trait.changed',
        'messageId', ${`trait.changed:${key}:`} || w.profile_id::text || ':' || ${ts},
        'userId', w.user_id, 'anonymousId', w.anonymous_id,
        'timestamp', ${ts}::text, 'receivedAt', ${ts}::text,
        'properties', jsonb_build_object('trait', jsonb_build_object('key', ${key}::text, 'computed', true),
          'from', coalesce(w.f, 'null'::jsonb), 'to', coalesce(w.t, 'null'::jsonb), 'reason', ${by}::text),
        'context', jsonb_build_object('library', jsonb_build_object('name', 'cairn')))),
      w.profile_id, now()
    FROM who w
    ON CONFLICT (source_id, message_id) DO NOTHING
    RETURNING id::text`;
  return rows.map((r) => r.id);
}
