import type { ProfileState } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';

// Plain (identify) traits that a live flow's `trait_changed` trigger watches: their changes are recorded
// as `cairn` track events `trait.changed`, in the transaction that folded them, and handed over with
// `memberships.changed` as stage 3 does for computed traits (compute/trait-changes.ts). Only watched
// traits: recording every change of every trait would add an event per identify nobody reads.

/** A watched trait whose value changed for a profile (`null`: none before, or none now). */
export interface PlainTraitChange {
  profileId: string;
  key: string;
  from: unknown;
  to: unknown;
  /** The event the change comes from (the one that set the new value, else the last folded in). */
  eventId: string;
  /** When that event happened (epoch ms). */
  ts: number;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * The plain traits live flows are triggered by changing (`trait_changed` without `computed`).
 *
 * @example
 * const watched = await watchedPlainTraits(tx); // Set { 'plan' }
 */
export async function watchedPlainTraits(sql: Tx): Promise<Set<string>> {
  const rows = await sql<{ trait: string }[]>`
    SELECT DISTINCT v.definition->'trigger'->>'trait' AS trait
    FROM flows f
    JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.version
    WHERE f.status = 'live'
      AND v.definition->'trigger'->>'type' = 'trait_changed'
      AND (v.definition->'trigger'->>'computed')::boolean IS NOT TRUE`;
  return new Set(rows.map((r) => r.trait));
}

/**
 * What changed in value between the stored and the new states (profiles in `skip`, merged away, are not
 * people any more). A value set again to what it was is no change. Reads the watched traits only when
 * something changed at all (one query per chunk that changed a trait).
 *
 * @example
 * const changes = await plainTraitChanges(tx, before, after, mergedAway);
 */
export async function plainTraitChanges(
  tx: Tx,
  before: ReadonlyMap<string, ProfileState>,
  after: ReadonlyMap<string, ProfileState>,
  skip: ReadonlySet<string>,
): Promise<PlainTraitChange[]> {
  const found: PlainTraitChange[] = [];
  for (const [profileId, next] of after) {
    if (skip.has(profileId)) continue;
    const prev = before.get(profileId);
    const keys = new Set([...next.traits.keys(), ...(prev?.traits.keys() ?? [])]);
    for (const key of keys) {
      const old = prev?.traits.get(key);
      const now = next.traits.get(key);
      if (same(old?.value, now?.value)) continue;
      const eventId = now?.eventId ?? next.through?.id;
      const ts = now?.ts ?? next.through?.ts;
      if (eventId === undefined || ts === undefined) continue;
      found.push({ profileId, key, from: old?.value ?? null, to: now?.value ?? null, eventId, ts });
    }
  }
  if (!found.length) return [];
  const watched = await watchedPlainTraits(tx);
  return found.filter((c) => watched.has(c.key));
}

/**
 * Why stage 2 recorded a plain trait's change: `identify` (an event folded in), or `quality_backfill` (a
 * data-quality backfill rewrote the stored value; `backfill` names it). The `reason` property of the event.
 */
export type PlainTraitChangeReason = { reason: 'identify' } | { reason: 'quality_backfill'; backfill: string };

/**
 * Records the changes as track events `trait.changed` `{ trait: { key, computed: false }, from, to,
 * reason[, backfill] }` of source `cairn`, attached and processed. The messageId names the identify event and the trait: a chunk
 * folded again records nothing twice. A sensitive trait's values never enter the event: `from` and `to`
 * are their blind indexes (different values stay different, so a change is still seen; a trigger may
 * compare them with `exists` / `is_empty` only). Returns the ids recorded.
 *
 * @example
 * const ids = await recordPlainTraitChanges(tx, changes, pii);
 * await recordPlainTraitChanges(tx, changes, pii, { reason: 'quality_backfill', backfill: '3' });
 */
export async function recordPlainTraitChanges(
  tx: Tx,
  changes: readonly PlainTraitChange[],
  pii: Pick<Pii, 'isSensitive' | 'traitIndex'>,
  why: PlainTraitChangeReason = { reason: 'identify' },
): Promise<string[]> {
  if (!changes.length) return [];
  const hidden = (key: string, v: unknown) =>
    v === null || v === undefined || v === ''
      ? null
      : (pii.traitIndex(key, typeof v === 'string' || typeof v === 'number' ? v : JSON.stringify(v)) ?? null);
  const doc = JSON.stringify(
    changes.map((c) => {
      const sensitive = pii.isSensitive(c.key);
      return {
        p: c.profileId,
        k: c.key,
        m: `trait.changed:${c.key}:${c.profileId}:e${c.eventId}`,
        e: c.eventId,
        ts: new Date(c.ts).toISOString(),
        f: sensitive ? hidden(c.key, c.from) : c.from,
        t: sensitive ? hidden(c.key, c.to) : c.to,
      };
    }),
  );
  // The person's first userId / anonymousId, as on stage 3's change events.
  const rows = await tx<{ id: string }[]>`
    WITH c AS (
      SELECT * FROM json_to_recordset(${doc}::text::json) AS x (p uuid, k text, m text, e bigint, ts text, f jsonb, t jsonb)
    ),
    who AS (
      SELECT c.*,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'userId' ORDER BY i.created_at, i.key LIMIT 1) AS user_id,
        (SELECT i.value FROM identities i WHERE i.profile_id = c.p AND i.type = 'anonymousId' ORDER BY i.created_at, i.key LIMIT 1) AS anonymous_id,
        -- A change an imported event made is held back from flows and fan-out as that event is (migration 0033).
        (SELECT e.import_id FROM events e WHERE e.id = c.e) AS import_id
      FROM c
    )
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, profile_id, processed_at, import_id)
    SELECT 'cairn', w.m, 'track', 'trait.changed', w.user_id, w.anonymous_id, w.ts::timestamptz, now(),
      jsonb_strip_nulls(jsonb_build_object(
        'type', 'track', 'event', 'trait.changed', 'messageId', w.m,
        'userId', w.user_id, 'anonymousId', w.anonymous_id,
        'timestamp', w.ts, 'receivedAt', w.ts,
        'properties', jsonb_build_object('trait', jsonb_build_object('key', w.k, 'computed', false),
          'from', coalesce(w.f, 'null'::jsonb), 'to', coalesce(w.t, 'null'::jsonb), 'reason', ${why.reason}::text,
          'backfill', ${'backfill' in why ? why.backfill : null}::text),
        'context', jsonb_build_object('library', jsonb_build_object('name', 'cairn')))),
      w.p, now(), w.import_id
    FROM who w
    ORDER BY w.p, w.k
    -- A (source_id, message_id) already stored is refused by the events_dedup trigger (migration 0034).
    RETURNING id::text`;
  return rows.map((r) => r.id);
}
