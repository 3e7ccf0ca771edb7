import { randomBytes } from 'node:crypto';
import type { ConsentPolicy } from '@cairn/core';
import type { DeliveryProfile } from '@cairn/plugin-api';
import type { PendingQuery } from 'postgres';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import type { Filter } from './filter.ts';

/** A configured destination. */
export interface Destination {
  id: string;
  name: string;
  plugin: string;
  settings: Record<string, unknown>;
  filter: Filter;
  purposes: string[];
  channel: string | null;
  topic: string;
  enabled: boolean;
  concurrency: number;
  rateLimit: number | null;
  retryWindowSeconds: number;
  failures: number;
  circuitOpenUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = (sql: Tx) => sql`
  id, name, plugin, settings, filter, purposes, channel, topic, enabled, concurrency,
  rate_limit AS "rateLimit",
  retry_window_seconds AS "retryWindowSeconds",
  failures,
  circuit_open_until AS "circuitOpenUntil",
  created_at AS "createdAt",
  updated_at AS "updatedAt"
`;

/** The fields an admin sets. */
export type DestinationInput = Pick<
  Destination,
  | 'name'
  | 'plugin'
  | 'settings'
  | 'filter'
  | 'purposes'
  | 'channel'
  | 'topic'
  | 'enabled'
  | 'concurrency'
  | 'rateLimit'
  | 'retryWindowSeconds'
>;

export async function insertDestination(sql: Tx, input: DestinationInput): Promise<Destination> {
  const id = `dst_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
  const [row] = await sql<Destination[]>`
    INSERT INTO destinations (id, name, plugin, settings, filter, purposes, channel, topic, enabled, concurrency,
      rate_limit, retry_window_seconds)
    VALUES (${id}, ${input.name}, ${input.plugin}, ${sql.json(input.settings as never)}, ${sql.json(input.filter as never)},
      ${input.purposes}, ${input.channel}, ${input.topic}, ${input.enabled}, ${input.concurrency}, ${input.rateLimit},
      ${input.retryWindowSeconds})
    RETURNING ${COLUMNS(sql)}`;
  return row!;
}

export async function updateDestination(
  sql: Tx,
  id: string,
  input: DestinationInput,
): Promise<Destination | undefined> {
  const [row] = await sql<Destination[]>`
    UPDATE destinations SET
      name = ${input.name}, settings = ${sql.json(input.settings as never)}, filter = ${sql.json(input.filter as never)},
      purposes = ${input.purposes}, channel = ${input.channel}, topic = ${input.topic}, enabled = ${input.enabled},
      concurrency = ${input.concurrency}, rate_limit = ${input.rateLimit},
      retry_window_seconds = ${input.retryWindowSeconds},
      -- New settings deserve a fresh chance: close the circuit.
      failures = 0, circuit_open_until = NULL, updated_at = now()
    WHERE id = ${id} AND deleted_at IS NULL
    RETURNING ${COLUMNS(sql)}`;
  return row;
}

export async function listDestinations(sql: Tx): Promise<Destination[]> {
  return sql<Destination[]>`SELECT ${COLUMNS(sql)} FROM destinations WHERE deleted_at IS NULL ORDER BY created_at, id`;
}

export async function getDestination(sql: Tx, id: string): Promise<Destination | undefined> {
  const [row] = await sql<
    Destination[]
  >`SELECT ${COLUMNS(sql)} FROM destinations WHERE id = ${id} AND deleted_at IS NULL`;
  return row;
}

export async function deleteDestination(sql: Tx, id: string): Promise<boolean> {
  const r =
    await sql`UPDATE destinations SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = ${id} AND deleted_at IS NULL`;
  return r.count > 0;
}

/** Changes whenever a destination is created, changed or deleted, so caches reload only then. */
export async function destinationsFingerprint(sql: Tx): Promise<string> {
  const [row] = await sql<{ f: string }[]>`
    SELECT count(*)::text || ':' || coalesce(max(updated_at)::text, '') AS f FROM destinations`;
  return row?.f ?? '';
}

/** An event as fan-out and delivery need it. */
export interface EventForDelivery {
  id: string;
  sourceId: string;
  messageId: string;
  type: string;
  profileId: string | null;
  timestamp: Date;
  payload: Record<string, unknown>;
}

/**
 * Processed events by id (events erased or suppressed meanwhile are simply absent). Without `full`
 * the payload holds only what type and name filters read (type, event, name): the whole payload is
 * read only when a destination filters on its contents.
 */
export async function eventsForFanout(sql: Tx, ids: readonly string[], full = true): Promise<EventForDelivery[]> {
  return sql<EventForDelivery[]>`
    SELECT id, source_id AS "sourceId", message_id AS "messageId", type, profile_id AS "profileId", timestamp,
      ${
        full
          ? sql`payload`
          : sql`jsonb_build_object('type', type, 'event', payload->'event', 'name', payload->'name') AS payload`
      }
    FROM events
    WHERE id = ANY(${ids}::bigint[]) AND processed_at IS NOT NULL
    ORDER BY timestamp, id`;
}

/** One new ledger row. */
export interface NewDelivery {
  destinationId: string;
  eventId: string;
  profileId: string | null;
  idempotencyKey: string;
  status: 'pending' | 'skipped';
  reason: string | null;
  /** The destination keeps each profile's events in order: the row waits behind unfinished ones. */
  ordered: boolean;
}

/** A ledger row fan-out inserted, to be delivered. */
export interface InsertedDelivery {
  id: string;
  destinationId: string;
  eventId: string;
  profileId: string | null;
  status: 'pending' | 'waiting';
}

/**
 * Inserts ledger rows once per (destination, event); returns those actually inserted that are to be
 * delivered. A pending row of an ordered destination whose profile already has unfinished rows there
 * is inserted `waiting` (the caller holds those profiles' line locks, see order.ts).
 */
export async function insertDeliveries(sql: Tx, rows: readonly NewDelivery[]): Promise<InsertedDelivery[]> {
  return rows.length ? insertedOf(await deliveriesInsert(sql, rows)) : [];
}

/** The rows insertDeliveries returns, from its statement's. */
export function insertedOf(rows: readonly (InsertedDelivery | { status: 'skipped' })[]): InsertedDelivery[] {
  return rows.filter((x): x is InsertedDelivery => x.status !== 'skipped');
}

/** The statement of insertDeliveries, not sent yet (for a caller that sends several at once). */
export function deliveriesInsert(
  sql: Tx,
  rows: readonly NewDelivery[],
): PendingQuery<(InsertedDelivery | { status: 'skipped' })[]> {
  const doc = JSON.stringify(
    rows.map((r) => ({
      d: r.destinationId,
      e: r.eventId,
      p: r.profileId,
      k: r.idempotencyKey,
      s: r.status,
      r: r.reason,
      o: r.ordered,
    })),
  );
  // EXISTS reads the ledger as it was before this statement: rows of one profile inserted together
  // are all pending (one job holds them, in order), or all waiting. OFFSET 0 keeps it one probe of
  // deliveries_unfinished_idx per row; without it a generic plan hashed every unfinished row of the
  // ledger on each insert.
  return sql<(InsertedDelivery | { status: 'skipped' })[]>`
    INSERT INTO deliveries (destination_id, event_id, profile_id, idempotency_key, status, reason)
    SELECT d, e, p, k,
      CASE WHEN s = 'pending' AND o AND EXISTS (
          SELECT 1 FROM deliveries b
          WHERE b.destination_id = x.d AND b.profile_id = x.p AND b.status IN ('pending', 'retrying', 'waiting')
          OFFSET 0)
        THEN 'waiting' ELSE s END,
      r
    FROM json_to_recordset(${doc}::text::json) AS x (d text, e bigint, p uuid, k text, s text, r text, o boolean)
    ON CONFLICT (event_id, destination_id) DO NOTHING
    RETURNING id::text, destination_id AS "destinationId", event_id::text AS "eventId", profile_id AS "profileId",
      status`;
}

/** A ledger row with its event, as the sender needs it. */
export interface DeliveryRow {
  id: string;
  eventId: string;
  /** The profile the event belongs to now (events follow merges): what the plugin is told. */
  profileId: string | null;
  /** The profile the row was fanned out for: the line it keeps its order in (order.ts). */
  lineProfileId: string | null;
  idempotencyKey: string;
  status: string;
  attempts: number;
  firstAttemptAt: Date | null;
  sourceId: string;
  timestamp: Date;
  payload: Record<string, unknown>;
  consentPolicy: ConsentPolicy;
}

/**
 * Deliveries still to do, with their events, in event order (timestamp, then arrival). For an ordered
 * destination a job holds all of a profile's pending rows: the rows fanned out before them are
 * finished and those fanned out after them wait (order.ts), so this orders what a profile has in
 * flight, which fan-outs running in parallel may have inserted out of event order.
 */
export async function deliveriesToSend(sql: Tx, ids: readonly string[]): Promise<DeliveryRow[]> {
  return sql<DeliveryRow[]>`
    SELECT d.id::text, d.event_id::text AS "eventId", coalesce(e.profile_id, d.profile_id) AS "profileId",
      d.profile_id AS "lineProfileId",
      d.idempotency_key AS "idempotencyKey", d.status, d.attempts, d.first_attempt_at AS "firstAttemptAt",
      e.source_id AS "sourceId", e.timestamp, e.payload, s.consent_policy AS "consentPolicy"
    FROM deliveries d
    JOIN events e ON e.id = d.event_id
    JOIN sources s ON s.id = e.source_id
    -- IS TRUE hides the status test from the planner's partial-index matching: otherwise it may read
    -- these ids through deliveries_unfinished_idx, i.e. every unfinished row of the ledger.
    WHERE d.id = ANY(${ids}::bigint[]) AND (d.status IN ('pending', 'retrying')) IS TRUE
    ORDER BY e.timestamp, e.id`;
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
  attempted: boolean;
  /** What the receiver answered to a failed attempt: kept as the row's last error until the next failure. */
  error?: { statusCode: number | null; message: string };
}

/** Records attempts' outcomes in the ledger, by primary key. */
export async function recordOutcomes(sql: Tx, outcomes: readonly Outcome[]): Promise<void> {
  if (!outcomes.length) return;
  const doc = JSON.stringify(
    outcomes.map((o) => ({
      i: o.id,
      s: o.status,
      r: o.reason,
      a: o.attempted,
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
      attempts = d.attempts + CASE WHEN x.a THEN 1 ELSE 0 END,
      first_attempt_at = CASE WHEN x.a THEN coalesce(d.first_attempt_at, now()) ELSE d.first_attempt_at END,
      last_attempt_at = CASE WHEN x.a THEN now() ELSE d.last_attempt_at END,
      delivered_at = CASE WHEN x.s = 'delivered' THEN now() ELSE d.delivered_at END,
      updated_at = now()
    FROM json_to_recordset(${doc}::text::json) AS x (i bigint, s text, r text, a boolean, c integer, e text)
    -- The id list keeps the plan on the primary key whatever the statistics say (a plan cached while
    -- the ledger was small kept scanning it whole: 46M rows read in one bench:deliver phase).
    WHERE d.id = x.i AND d.id = ANY(${outcomes.map((o) => o.id)}::bigint[])`;
}

/** Circuit breaker: the state a sender reads before sending. */
export async function circuitOf(sql: Tx, id: string): Promise<{ failures: number; openUntil: Date | null }> {
  const [row] = await sql<{ failures: number; open_until: Date | null }[]>`
    SELECT failures, circuit_open_until AS open_until FROM destinations WHERE id = ${id}`;
  return { failures: row?.failures ?? 0, openUntil: row?.open_until ?? null };
}

/**
 * Claims the single probe of an open circuit whose pause is over: the winner's batch decides; the
 * others see the circuit open for `probeSeconds` more.
 */
export async function claimProbe(sql: Tx, id: string, probeSeconds: number): Promise<boolean> {
  const r = await sql`
    UPDATE destinations SET circuit_open_until = now() + make_interval(secs => ${probeSeconds})
    WHERE id = ${id} AND circuit_open_until IS NOT NULL AND circuit_open_until <= now()`;
  return r.count > 0;
}

/** After a batch: any delivery closes the circuit; a batch that delivered nothing counts a failure. */
export async function recordBatchHealth(
  sql: Tx,
  id: string,
  ok: boolean,
  policy: { threshold: number; pauseSeconds: number; maxPauseSeconds: number },
): Promise<void> {
  if (ok) {
    await sql`UPDATE destinations SET failures = 0, circuit_open_until = NULL WHERE id = ${id} AND (failures > 0 OR circuit_open_until IS NOT NULL)`;
    return;
  }
  // Pause doubles with every failed probe past the threshold, up to the maximum.
  await sql`
    UPDATE destinations SET
      failures = failures + 1,
      circuit_open_until = CASE WHEN failures + 1 >= ${policy.threshold}
        THEN now() + make_interval(secs => least(${policy.maxPauseSeconds}::float8,
          ${policy.pauseSeconds}::float8 * power(2, failures + 1 - ${policy.threshold})))
        ELSE circuit_open_until END
    WHERE id = ${id}`;
}

export async function kvGet(sql: Tx, destination: string, key: string): Promise<unknown> {
  const [row] = await sql<{ value: unknown }[]>`
    SELECT value FROM destination_kv
    WHERE destination_id = ${destination} AND key = ${key} AND (expires_at IS NULL OR expires_at > now())`;
  return row?.value;
}

export async function kvSet(
  sql: Tx,
  destination: string,
  key: string,
  value: unknown,
  ttlSeconds?: number,
): Promise<void> {
  await sql`
    INSERT INTO destination_kv (destination_id, key, value, expires_at)
    VALUES (${destination}, ${key}, ${sql.json(value as never)},
      ${ttlSeconds ? sql`now() + make_interval(secs => ${ttlSeconds})` : null})
    ON CONFLICT (destination_id, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`;
}

export async function kvDelete(sql: Tx, destination: string, key: string): Promise<void> {
  await sql`DELETE FROM destination_kv WHERE destination_id = ${destination} AND key = ${key}`;
}
