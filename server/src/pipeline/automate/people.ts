import { type JsonObject, type JsonValue, POINTS_BALANCE, type ProfileFacts, type StoredEvent } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { addGovernance } from './governance.ts';
import { balances, lockPoints } from './points.ts';

// What the engine knows about a person in a step (ProfileFacts), read from the tables stages 2 and 3
// keep: traits (sensitive ones opened), computed traits, current audiences and tags, and what a flow's
// rules need besides (events by name, consent, the zone of the latest event), and the workspace's caps and
// quiet hours with the person's recent sends (governance.ts).

/** What a step needs beyond traits, computed traits, audiences and tags (the union over the flows involved). */
export interface FactsNeeds {
  /** Event names the flows' rules read: the person's events of these names are loaded. */
  events: string[];
  consent: boolean;
  /** A wait until a local time: the zone of the latest event is read (when there is no timezone trait). */
  zone: boolean;
}

/** Nothing beyond the basics. */
export const NO_NEEDS: FactsNeeds = Object.freeze({ events: [], consent: false, zone: false }) as FactsNeeds;

/**
 * The union of what several flows need.
 *
 * @example
 * const needs = unionNeeds([a.needs, b.needs]);
 */
export function unionNeeds(list: readonly FactsNeeds[]): FactsNeeds {
  return {
    events: [...new Set(list.flatMap((n) => n.events))].sort(),
    consent: list.some((n) => n.consent),
    zone: list.some((n) => n.zone),
  };
}

/**
 * The facts of each profile (one statement per kind of fact, for all of them), keyed by profile id.
 * A profile that has none of a kind gets an empty one. The points balance at `now` (the runtime's
 * clock) is the computed trait `points_balance` (points.ts).
 *
 * @example
 * const facts = await loadFacts(tx, pii, profileIds, needs);
 */
export async function loadFacts(
  sql: Tx,
  pii: Pick<Pii, 'openValue' | 'openPayload'>,
  profileIds: readonly string[],
  needs: FactsNeeds,
  now: number = Date.now(),
): Promise<Map<string, ProfileFacts>> {
  const ids = [...new Set(profileIds)];
  const out = new Map<string, ProfileFacts>();
  if (!ids.length) return out;
  for (const id of ids) out.set(id, { id, traits: {}, computed: {}, audiences: [], tags: [] });
  const traits = await sql<{ p: string; key: string; value: unknown }[]>`
    SELECT profile_id::text AS p, key, value FROM profile_traits WHERE profile_id = ANY(${ids}::uuid[])`;
  for (const t of traits) out.get(t.p)!.traits[t.key] = pii.openValue(t.value) as JsonValue;
  const computed = await sql<{ p: string; key: string; value: JsonValue }[]>`
    SELECT profile_id::text AS p, key, value FROM computed_trait_values WHERE profile_id = ANY(${ids}::uuid[])`;
  for (const c of computed) out.get(c.p)!.computed![c.key] = c.value;
  // Read under the people's points lock, held to the commit: a concurrent step's debit is seen (points.ts).
  await lockPoints(sql, ids);
  for (const [p, balance] of await balances(sql, ids, now)) out.get(p)!.computed![POINTS_BALANCE] = balance;
  const memberships = await sql<{ p: string; kind: 'audience' | 'tag'; key: string }[]>`
    SELECT profile_id::text AS p, 'audience' AS kind, audience AS key
    FROM audience_memberships WHERE profile_id = ANY(${ids}::uuid[]) AND exited_at IS NULL
    UNION ALL
    SELECT profile_id::text, 'tag', tag
    FROM tag_assignments WHERE profile_id = ANY(${ids}::uuid[]) AND removed_at IS NULL`;
  for (const m of memberships) {
    const f = out.get(m.p)!;
    if (m.kind === 'audience') (f.audiences as string[]).push(m.key);
    else (f.tags as string[]).push(m.key);
  }
  if (needs.events.length) {
    for (const f of out.values()) f.events = [];
    const events = await sql<{ p: string; timestamp: Date; payload: JsonObject }[]>`
      SELECT profile_id::text AS p, timestamp, payload
      FROM events
      WHERE profile_id = ANY(${ids}::uuid[]) AND event = ANY(${needs.events}::text[])
      ORDER BY timestamp, id`;
    for (const e of events) {
      const event: StoredEvent = { ...pii.openPayload(e.payload), timestamp: new Date(e.timestamp).toISOString() };
      (out.get(e.p)!.events as StoredEvent[]).push(event);
    }
  }
  if (needs.consent) {
    const consent = await sql<{ p: string; purpose: string; granted: boolean }[]>`
      SELECT DISTINCT ON (profile_id, purpose) profile_id::text AS p, purpose, granted
      FROM consent_changes
      WHERE profile_id = ANY(${ids}::uuid[])
      ORDER BY profile_id, purpose, at DESC, id DESC`;
    for (const f of out.values()) f.consent = {};
    for (const c of consent) out.get(c.p)!.consent![c.purpose] = c.granted ? 'granted' : 'denied';
  }
  // Caps and quiet hours, with the sends caps count (governance.ts); quiet hours are on the person's clock.
  const governed = await addGovernance(sql, out, now);
  if (needs.zone || governed.quietHours.length) {
    // The latest event only, through events_profile_idx: one probe per person.
    const zones = await sql<{ p: string; tz: string | null }[]>`
      SELECT c.p::text AS p, z.tz
      FROM unnest(${ids}::uuid[]) AS c (p)
      CROSS JOIN LATERAL (
        SELECT e.payload->'context'->>'timezone' AS tz
        FROM events e
        WHERE e.profile_id = c.p
        ORDER BY e.timestamp DESC, e.id DESC
        LIMIT 1
      ) z`;
    for (const z of zones) if (z.tz) out.get(z.p)!.eventZone = z.tz;
  }
  return out;
}
