import type { ConsentPolicy } from '@cairn/core';
import type { DeliveryProfile } from '@cairn/plugin-api';
import type { Tx } from '../../../db/index.ts';
import type { Pii } from '../../../pii/index.ts';

// Sending: the rows a sender takes, the people and consent they need, and the outcomes it records.

/** What a flow asked to send, as the ledger keeps it (a row without an event). */
export interface LedgerMessage {
  /** The rendered `{ subject?, body }` as JSON, sealed (opened for the plugin only). */
  sealed: string;
  flow: { id: string; version: number; node: string; runId: string };
  /** The source of the event that started the run, whose consent policy applies. */
  source: string | null;
  /** A notice to this employee about the person (its `to` is sealed with the message). */
  employee?: string;
}

/** A ledger row with its event (or a flow's message), as the sender needs it. */
export interface DeliveryRow {
  id: string;
  /** Null for a flow's message. */
  eventId: string | null;
  /** The profile the event belongs to now (events follow merges): what the plugin is told. */
  profileId: string | null;
  /** The profile the row was fanned out for: the line it keeps its order in (order.ts). */
  lineProfileId: string | null;
  idempotencyKey: string;
  status: string;
  attempts: number;
  firstAttemptAt: Date | null;
  sourceId: string | null;
  /** The event's time, or when the flow's message was asked for. */
  timestamp: Date;
  /** Null for a flow's message. */
  payload: Record<string, unknown> | null;
  message: LedgerMessage | null;
  /** Null when the row names no source (the default policy applies). */
  consentPolicy: ConsentPolicy | null;
}

/**
 * Deliveries still to do, with their events, in event order (timestamp, then arrival). For an ordered
 * destination a job holds all of a profile's pending rows: the rows fanned out before them are
 * finished and those fanned out after them wait (order.ts), so this orders what a profile has in
 * flight, which fan-outs running in parallel may have inserted out of event order. A flow's message
 * has no event: it is ordered by when it was asked for, and its consent policy is that of the source
 * of the event that started the run (the message names it).
 */
export async function deliveriesToSend(sql: Tx, ids: readonly string[]): Promise<DeliveryRow[]> {
  return sql<DeliveryRow[]>`
    SELECT d.id::text, d.event_id::text AS "eventId", coalesce(e.profile_id, d.profile_id) AS "profileId",
      d.profile_id AS "lineProfileId",
      d.idempotency_key AS "idempotencyKey", d.status, d.attempts, d.first_attempt_at AS "firstAttemptAt",
      e.source_id AS "sourceId", coalesce(e.timestamp, d.created_at) AS timestamp, e.payload, d.message,
      s.consent_policy AS "consentPolicy"
    FROM deliveries d
    LEFT JOIN events e ON e.id = d.event_id
    LEFT JOIN sources s ON s.id = coalesce(e.source_id, d.message->>'source')
    -- IS TRUE hides the status test from the planner's partial-index matching: otherwise it may read
    -- these ids through deliveries_unfinished_idx, i.e. every unfinished row of the ledger.
    WHERE d.id = ANY(${ids}::bigint[]) AND (d.status IN ('pending', 'retrying')) IS TRUE
    ORDER BY coalesce(e.timestamp, d.created_at), e.id, d.id`;
}

/** The profiles of a batch as destinations see them (live ids: events follow merges; PII opened). */
export async function profilesForDelivery(
  sql: Tx,
  ids: readonly string[],
  pii: Pick<Pii, 'openValue'>,
): Promise<Map<string, DeliveryProfile>> {
  const out = new Map<string, DeliveryProfile>();
  if (!ids.length) return out;
  // One row per profile, identities and traits aggregated as JSON: a row per profile instead of one per
  // identity and per trait (about 8 per profile in bench:deliver), each of which postgres.js decodes.
  const rows = await sql<{ id: string; ids: [string, string][] | null; traits: Record<string, unknown> | null }[]>`
    SELECT c.id::text,
      (SELECT json_agg(json_build_array(i.type, i.value) ORDER BY i.created_at, i.key)
        FROM identities i WHERE i.profile_id = c.id) AS ids,
      (SELECT json_object_agg(t.key, t.value) FROM profile_traits t WHERE t.profile_id = c.id) AS traits
    FROM unnest(${[...new Set(ids)]}::uuid[]) AS c (id)`;
  for (const row of rows) {
    const p: DeliveryProfile = { id: row.id, userId: null, email: null, phone: null, anonymousIds: [], traits: {} };
    for (const [type, sealed] of row.ids ?? []) {
      const value = String(pii.openValue(sealed));
      if (type === 'userId') p.userId ??= value;
      else if (type === 'email') p.email ??= value;
      else if (type === 'phone') p.phone ??= value;
      else if (type === 'anonymousId') p.anonymousIds.push(value);
    }
    for (const [key, sealed] of Object.entries(row.traits ?? {})) {
      const value = pii.openValue(sealed);
      p.traits[key] = value;
      // The person's own latest address wins over the first identity seen.
      if (key === 'email' && typeof value === 'string') p.email = value;
      if (key === 'phone' && typeof value === 'string') p.phone = value;
    }
    out.set(row.id, p);
  }
  return out;
}

/** Current consent choices per profile (latest per purpose). */
export async function consentOf(sql: Tx, ids: readonly string[]): Promise<Map<string, Map<string, boolean>>> {
  const out = new Map<string, Map<string, boolean>>();
  if (!ids.length) return out;
  const rows = await sql<{ profile_id: string; purpose: string; granted: boolean }[]>`
    SELECT DISTINCT ON (profile_id, purpose) profile_id, purpose, granted
    FROM consent_changes
    WHERE profile_id = ANY(${ids}::uuid[])
    ORDER BY profile_id, purpose, at DESC, id DESC`;
  for (const r of rows) {
    if (!out.has(r.profile_id)) out.set(r.profile_id, new Map());
    out.get(r.profile_id)!.set(r.purpose, r.granted);
  }
  return out;
}

/** Contact points (from `contacts`) unsubscribed from a channel, for every topic or this one. */
export async function unsubscribed(
  sql: Tx,
  contacts: readonly string[],
  channel: string,
  topic: string,
): Promise<Set<string>> {
  if (!contacts.length) return new Set();
  const rows = await sql<{ contact: string }[]>`
    SELECT DISTINCT contact FROM subscriptions
    WHERE contact = ANY(${contacts}::text[]) AND channel = ${channel} AND topic IN ('', ${topic}) AND NOT subscribed`;
  return new Set(rows.map((r) => r.contact));
}

/** One attempt's result for the ledger. */
export interface Outcome {
  id: string;
  status: 'delivered' | 'retrying' | 'dead' | 'skipped';
  reason: string | null;
  /** The item was sent (its attempt was counted before the send, see markAttempts). */
  attempted: boolean;
  /** What the receiver answered to a failed attempt: kept as the row's last error until the next failure. */
  error?: { statusCode: number | null; message: string };
}

/**
 * Counts an attempt of these rows before they are sent, and returns each row's attempt number. Counted
 * before, not with the outcome: a process killed between the send and the outcome write re-sends the
 * batch, and the send the receiver got but nobody recorded must count too (a re-send then says 2).
 */
export async function markAttempts(sql: Tx, ids: readonly string[]): Promise<Map<string, number>> {
  if (!ids.length) return new Map();
  const rows = await sql<{ id: string; attempts: number }[]>`
    UPDATE deliveries SET
      attempts = attempts + 1,
      first_attempt_at = coalesce(first_attempt_at, now()),
      last_attempt_at = now(),
      updated_at = now()
    WHERE id = ANY(${ids}::bigint[])
    RETURNING id::text, attempts`;
  return new Map(rows.map((r) => [r.id, r.attempts]));
}

/** Records attempts' outcomes in the ledger, by primary key (the attempts were counted by markAttempts). */
export async function recordOutcomes(sql: Tx, outcomes: readonly Outcome[]): Promise<void> {
  if (!outcomes.length) return;
  const doc = JSON.stringify(
    outcomes.map((o) => ({
      i: o.id,
      s: o.status,
      r: o.reason,
      c: o.error?.statusCode ?? null,
      e: o.error?.message ?? null,
    })),
  );
  await sql`
    UPDATE deliveries d SET
      status = x.s,
      reason = x.r,
      -- A verdict without an answer (retry window exhausted, skipped, waiting) keeps the last one.
      last_status = CASE WHEN x.e IS NULL THEN d.last_status ELSE x.c END,
      last_error = coalesce(x.e, d.last_error),
      delivered_at = CASE WHEN x.s = 'delivered' THEN now() ELSE d.delivered_at END,
      updated_at = now()
    FROM json_to_recordset(${doc}::text::json) AS x (i bigint, s text, r text, c integer, e text)
    -- The id list keeps the plan on the primary key whatever the statistics say (a plan cached while
    -- the ledger was small kept scanning it whole: 46M rows read in one bench:deliver phase).
    WHERE d.id = x.i AND d.id = ANY(${outcomes.map((o) => o.id)}::bigint[])`;
}
