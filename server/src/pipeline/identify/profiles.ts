import type { JsonObject } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { PiiView } from '../../pii/view.ts';

/** A profile as the admin API shows it. */
export interface ProfileView {
  id: string;
  createdAt: string;
  updatedAt: string;
  identities: { type: string; value: string; createdAt: string }[];
  traits: Record<string, { value: unknown; updatedAt: string; source: string; eventId: string }>;
  accounts: { id: string; traits: Record<string, unknown>; firstSeenAt: string; lastSeenAt: string }[];
  consent: Record<string, { granted: boolean; at: string; source: string; actor: string | null }>;
  /** Profiles merged into this one (their ids redirect here). */
  mergedFrom: string[];
}

const LOOKUP_TYPES = { userId: 'userId', anonymousId: 'anonymousId', email: 'email', phone: 'phone' } as const;

/**
 * The profile holding an identity, or undefined. `key` is the stored key (`Pii.identityKey`: sensitive
 * types by blind index) of an identity normalised the way events are (see extractIdentities).
 *
 * @example
 * await profileIdByIdentity(sql, pii.identityKey({ type: 'email', value: 'ann@example.com' }));
 */
export async function profileIdByIdentity(tx: Tx, key: string): Promise<string | undefined> {
  const [row] = await tx<{ profile_id: string }[]>`SELECT profile_id FROM identities WHERE key = ${key}`;
  return row?.profile_id;
}

export { LOOKUP_TYPES };

/**
 * Everything the API shows of one live profile, sensitive values as `pii` shows them to the caller.
 *
 * @example
 * const view = await profileView(sql, id, piiView(pii, principal));
 */
export async function profileView(tx: Tx, id: string, pii: PiiView): Promise<ProfileView | undefined> {
  const [profile] = await tx<{ id: string; created_at: Date; updated_at: Date }[]>`
    SELECT id, created_at, updated_at FROM profiles WHERE id = ${id} AND merged_into IS NULL AND erased_at IS NULL`;
  if (!profile) return undefined;
  const [identities, traits, accounts, consent, merged] = await Promise.all([
    tx<{ type: string; value: string; created_at: Date }[]>`
      SELECT type, value, created_at FROM identities WHERE profile_id = ${id} ORDER BY created_at, key`,
    tx<{ key: string; value: unknown; updated_at: Date; source: string; event_id: string }[]>`
      SELECT key, value, updated_at, source, event_id FROM profile_traits WHERE profile_id = ${id} ORDER BY key`,
    tx<{ account_id: string; first_seen_at: Date; last_seen_at: Date; traits: Record<string, unknown> | null }[]>`
      SELECT pa.account_id, pa.first_seen_at, pa.last_seen_at,
        (SELECT jsonb_object_agg(key, value) FROM account_traits t WHERE t.account_id = pa.account_id) AS traits
      FROM profile_accounts pa WHERE pa.profile_id = ${id} ORDER BY pa.account_id`,
    tx<{ purpose: string; granted: boolean; at: Date; source: string; actor: string | null }[]>`
      SELECT DISTINCT ON (purpose) purpose, granted, at, source, actor FROM consent_changes
      WHERE profile_id = ${id} ORDER BY purpose, at DESC, id DESC`,
    tx<{ id: string }[]>`SELECT id FROM profiles WHERE merged_into = ${id} ORDER BY id`,
  ]);
  return {
    id: profile.id,
    createdAt: profile.created_at.toISOString(),
    updatedAt: profile.updated_at.toISOString(),
    identities: identities.map((i) => ({
      type: i.type,
      value: pii.identity(i.type, i.value),
      createdAt: i.created_at.toISOString(),
    })),
    traits: Object.fromEntries(
      traits.map((t) => [
        t.key,
        {
          value: pii.value(t.key, t.value),
          updatedAt: t.updated_at.toISOString(),
          source: t.source,
          eventId: String(t.event_id),
        },
      ]),
    ),
    accounts: accounts.map((a) => ({
      id: a.account_id,
      traits: Object.fromEntries(Object.entries(a.traits ?? {}).map(([k, v]) => [k, pii.value(k, v)])),
      firstSeenAt: a.first_seen_at.toISOString(),
      lastSeenAt: a.last_seen_at.toISOString(),
    })),
    consent: Object.fromEntries(
      consent.map((c) => [c.purpose, { granted: c.granted, at: c.at.toISOString(), source: c.source, actor: c.actor }]),
    ),
    mergedFrom: merged.map((m) => m.id),
  };
}

/**
 * A page of a profile's events, newest first (by event time, then id). `before` is the cursor the
 * previous page returned.
 *
 * @example
 * const page = await profileEvents(sql, id, { limit: 50 }, piiView(pii, principal));
 */
export async function profileEvents(
  tx: Tx,
  id: string,
  page: { before?: string; limit: number },
  pii: PiiView,
): Promise<{ data: Record<string, unknown>[]; next: string | null }> {
  const [beforeTs, beforeId] = page.before ? page.before.split('_') : [];
  const rows = await tx<
    {
      id: string;
      type: string;
      event: string | null;
      timestamp: Date;
      message_id: string;
      source_id: string;
      payload: unknown;
    }[]
  >`
    SELECT id, type, event, timestamp, message_id, source_id, payload FROM events
    WHERE profile_id = ${id}
      ${beforeTs && beforeId ? tx`AND (timestamp, id) < (${new Date(Number(beforeTs))}, ${beforeId})` : tx``}
    ORDER BY timestamp DESC, id DESC
    LIMIT ${page.limit}`;
  const data = rows.map((r) => ({
    id: String(r.id),
    type: r.type,
    event: r.event,
    timestamp: r.timestamp.toISOString(),
    messageId: r.message_id,
    sourceId: r.source_id,
    payload: pii.payload(r.payload as JsonObject),
  }));
  const last = rows.at(-1);
  return { data, next: rows.length === page.limit && last ? `${last.timestamp.getTime()}_${last.id}` : null };
}

/**
 * The merge log of a profile: merges into it (also into profiles since merged into it), splits and
 * unmerges, newest first.
 *
 * @example
 * const merges = await profileMerges(sql, id);
 */
export async function profileMerges(tx: Tx, id: string) {
  const rows = await tx<
    {
      id: string;
      kind: string;
      survivor_id: string;
      merged_id: string;
      reason: string;
      event_id: string | null;
      actor: string | null;
      before: unknown;
      created_at: Date;
      undone_at: Date | null;
      undone_by: string | null;
    }[]
  >`
    WITH RECURSIVE chain AS (
      SELECT id FROM profiles WHERE id = ${id}
      UNION SELECT p.id FROM profiles p JOIN chain c ON p.merged_into = c.id)
    SELECT * FROM merges
    WHERE survivor_id IN (SELECT id FROM chain) OR merged_id IN (SELECT id FROM chain)
    ORDER BY id DESC`;
  return rows.map((m) => ({
    id: String(m.id),
    kind: m.kind,
    survivorId: m.survivor_id,
    mergedId: m.merged_id,
    reason: m.reason,
    eventId: m.event_id === null ? null : String(m.event_id),
    actor: m.actor,
    before: m.before,
    at: m.created_at.toISOString(),
    undoneAt: m.undone_at?.toISOString() ?? null,
    undoneBy: m.undone_by === null ? null : String(m.undone_by),
  }));
}

/**
 * The consent history of a profile (proof of consent), newest first.
 *
 * @example
 * const history = await consentHistory(sql, id);
 */
export async function consentHistory(tx: Tx, id: string) {
  const rows = await tx<
    {
      purpose: string;
      granted: boolean;
      at: Date;
      source: string;
      event_id: string | null;
      actor: string | null;
      recorded_at: Date;
    }[]
  >`
    SELECT purpose, granted, at, source, event_id, actor, recorded_at FROM consent_changes
    WHERE profile_id = ${id} ORDER BY at DESC, id DESC`;
  return rows.map((r) => ({
    purpose: r.purpose,
    granted: r.granted,
    at: r.at.toISOString(),
    source: r.source,
    eventId: r.event_id === null ? null : String(r.event_id),
    actor: r.actor,
    recordedAt: r.recorded_at.toISOString(),
  }));
}

/**
 * A profile's identities as stored: `key` is `type:value` with the value in its stored form (blind
 * index for sensitive types), which is also how subscriptions key a contact point.
 *
 * @example
 * const ids = await identitiesOf(sql, profileId); // [{ key: 'userId:u1', type: 'userId', value: 'u1' }]
 */
export function identitiesOf(tx: Tx, profileId: string): Promise<{ key: string; type: string; value: string }[]> {
  return tx<{ key: string; type: string; value: string }[]>`
    SELECT key, type, value
    FROM identities
    WHERE profile_id = ${profileId}`;
}

/** A recorded subscription state of one contact point, channel and topic ('' = every topic). */
export interface SubscriptionState {
  contact: string;
  channel: string;
  topic: string;
  subscribed: boolean;
  source: string;
  actor: string | null;
  updated_at: Date;
}

/**
 * The recorded subscription states of contact points (keyed as `identitiesOf` keys them), by channel,
 * topic and contact. Written by the deliver stage (one-click unsubscribe, `setSubscription`).
 *
 * @example
 * const states = await subscriptionStates(sql, ['userId:u1']);
 */
export function subscriptionStates(tx: Tx, contacts: readonly string[]): Promise<SubscriptionState[]> {
  return tx<SubscriptionState[]>`
    SELECT contact, channel, topic, subscribed, source, actor, updated_at
    FROM subscriptions
    WHERE contact = ANY(${contacts as string[]}::text[])
    ORDER BY channel, topic, contact`;
}
