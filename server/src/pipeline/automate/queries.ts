import type { FlowDefinition } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { RunRow, StepRow } from './runs.ts';

// Stage 4's runs: the timer's claim, the runs an event reaches, a person's past runs, and the writes of
// a step (runs, journal). Times cross as ISO text in and epoch ms out (exact: extract() is numeric).

/** The columns of a run row (RunRow), for queries that read runs. */
export const RUN_COLUMNS = (sql: Tx) => sql`
  r.id::text, r.flow_id AS "flowId", r.version, r.profile_id::text AS "profileId", r.status, r.node, r.iteration,
  (extract(epoch FROM r.due) * 1000)::float8 AS due, r.listen, r.exclusive,
  (extract(epoch FROM r.entered_at) * 1000)::float8 AS "enteredAt", r.source_id AS "sourceId", r.state`;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The flows that are live, with the version triggers enter people into. */
export async function liveFlows(sql: Tx): Promise<{ id: string; version: number }[]> {
  return sql<{ id: string; version: number }[]>`
    SELECT id, version FROM flows WHERE status = 'live' AND version IS NOT NULL ORDER BY id`;
}

/** Published versions by (flow, version). */
export async function flowVersions(
  sql: Tx,
  pairs: readonly { id: string; version: number }[],
): Promise<{ id: string; version: number; definition: FlowDefinition }[]> {
  if (!pairs.length) return [];
  return sql<{ id: string; version: number; definition: FlowDefinition }[]>`
    SELECT v.flow_id AS id, v.version, v.definition
    FROM flow_versions v
    JOIN unnest(${pairs.map((p) => p.id)}::text[], ${pairs.map((p) => p.version)}::int[]) AS k (id, version)
      ON v.flow_id = k.id AND v.version = k.version`;
}

/**
 * Claims up to `limit` waiting runs whose due time has come on the runtime's clock, oldest due first,
 * locked until the transaction ends; rows another transaction holds are skipped (another worker, or an
 * event moving the run), never waited for.
 */
export async function claimDue(tx: Tx, now: Date, limit: number, only?: readonly string[]): Promise<RunRow[]> {
  return tx<RunRow[]>`
    SELECT ${RUN_COLUMNS(tx)}
    FROM flow_runs r
    WHERE r.status = 'waiting' AND r.due IS NOT NULL AND r.due <= ${now}
      ${only ? tx`AND r.id = ANY(${only}::uuid[])` : tx``}
    ORDER BY r.due
    LIMIT ${limit}
    FOR UPDATE SKIP LOCKED`;
}

/** When the next waiting run comes due (epoch ms on the runtime's clock), or null when none waits for time. */
export async function nextDue(sql: Tx): Promise<number | null> {
  const [row] = await sql<{ due: number | null }[]>`
    SELECT (extract(epoch FROM min(due)) * 1000)::float8 AS due
    FROM flow_runs
    WHERE status = 'waiting' AND due IS NOT NULL`;
  return row?.due ?? null;
}

/** Of these profiles, those with runs listening for one of `names` (or for any event). */
export async function profilesListening(
  sql: Tx,
  profileIds: readonly string[],
  names: readonly string[],
): Promise<Set<string>> {
  if (!profileIds.length) return new Set();
  const rows = await sql<{ p: string }[]>`
    SELECT DISTINCT profile_id::text AS p
    FROM flow_runs
    WHERE profile_id = ANY(${profileIds as string[]}::uuid[]) AND listen IS NOT NULL
      AND (listen && ${names as string[]}::text[] OR listen && '{*}'::text[])`;
  return new Set(rows.map((r) => r.p));
}

/**
 * The runs of these profiles listening for one of `names` (or any event), locked for the transaction
 * (the timer skips them meanwhile), in a fixed order. Read through flow_runs_listening_idx.
 */
export async function listeningRuns(
  tx: Tx,
  profileIds: readonly string[],
  names: readonly string[],
): Promise<RunRow[]> {
  if (!profileIds.length) return [];
  return tx<RunRow[]>`
    SELECT ${RUN_COLUMNS(tx)}
    FROM flow_runs r
    WHERE r.profile_id = ANY(${profileIds as string[]}::uuid[]) AND r.listen IS NOT NULL
      AND (r.listen && ${names as string[]}::text[] OR r.listen && '{*}'::text[])
    ORDER BY r.id
    FOR UPDATE`;
}

/** A person's earlier run of a flow, for the re-entry policy. */
export interface PastRunRow {
  id: string;
  flowId: string;
  profileId: string;
  enteredAt: number;
  active: boolean;
}

/** The runs these profiles had in these flows. */
export async function pastRuns(
  tx: Tx,
  profileIds: readonly string[],
  flowIds: readonly string[],
): Promise<PastRunRow[]> {
  if (!profileIds.length || !flowIds.length) return [];
  return tx<PastRunRow[]>`
    SELECT id::text, flow_id AS "flowId", profile_id::text AS "profileId",
      (extract(epoch FROM entered_at) * 1000)::float8 AS "enteredAt",
      status IN ('waiting', 'awaiting_effect') AS active
    FROM flow_runs
    WHERE profile_id = ANY(${profileIds as string[]}::uuid[]) AND flow_id = ANY(${flowIds as string[]}::text[])`;
}

/** Which (run, event) pairs already moved a run: `<run>:<event>` (an event handed over twice moves it once). */
export async function appliedEvents(
  tx: Tx,
  runIds: readonly string[],
  eventIds: readonly string[],
): Promise<Set<string>> {
  if (!runIds.length || !eventIds.length) return new Set();
  const rows = await tx<{ k: string }[]>`
    SELECT DISTINCT run_id::text || ':' || event_id::text AS k
    FROM flow_steps
    WHERE run_id = ANY(${runIds as string[]}::uuid[]) AND event_id = ANY(${eventIds as string[]}::bigint[])`;
  return new Set(rows.map((r) => r.k));
}

function runDoc(rows: readonly RunRow[]): string {
  return JSON.stringify(
    rows.map((r) => ({
      id: r.id,
      f: r.flowId,
      v: r.version,
      p: r.profileId,
      s: r.status,
      n: r.node,
      i: r.iteration,
      d: iso(r.due),
      l: r.listen,
      x: r.exclusive,
      e: iso(r.enteredAt),
      src: r.sourceId,
      st: r.state,
    })),
  );
}

/**
 * Inserts new runs; returns the ids inserted. A run whose id exists (its trigger event handed over
 * again) or that would be a second active run of an exclusive flow is not inserted.
 */
export async function insertRuns(tx: Tx, rows: readonly RunRow[]): Promise<Set<string>> {
  if (!rows.length) return new Set();
  const inserted = await tx<{ id: string }[]>`
    INSERT INTO flow_runs (id, flow_id, version, profile_id, status, node, iteration, due, listen, exclusive,
      entered_at, source_id, state)
    SELECT id, f, v, p, s, n, i, d, l, x, e, src, st
    FROM json_to_recordset(${runDoc(rows)}::text::json) AS r (
      id uuid, f text, v integer, p uuid, s text, n text, i integer, d timestamptz, l text[], x boolean,
      e timestamptz, src text, st jsonb)
    ON CONFLICT DO NOTHING
    RETURNING id::text`;
  return new Set(inserted.map((r) => r.id));
}

/** Writes runs' new states (the rows are locked by the caller: claimed, or read FOR UPDATE). */
export async function updateRuns(tx: Tx, rows: readonly RunRow[]): Promise<void> {
  if (!rows.length) return;
  await tx`
    UPDATE flow_runs r SET
      status = x.s, node = x.n, iteration = x.i, due = x.d, listen = x.l, state = x.st
    FROM json_to_recordset(${runDoc(rows)}::text::json) AS x (
      id uuid, f text, v integer, p uuid, s text, n text, i integer, d timestamptz, l text[], x boolean,
      e timestamptz, src text, st jsonb)
    WHERE r.id = x.id`;
}

/** Appends journal rows, in the order given. */
export async function insertSteps(tx: Tx, rows: readonly StepRow[]): Promise<void> {
  if (!rows.length) return;
  const doc = JSON.stringify(
    rows.map((r, q) => ({
      q,
      r: r.runId,
      n: r.node,
      i: r.iteration,
      a: iso(r.at),
      t: r.type,
      o: r.outcome,
      to: r.to,
      why: r.reason,
      d: r.detail,
      e: r.eventId,
      dec: r.decided,
    })),
  );
  await tx`
    INSERT INTO flow_steps (run_id, node, iteration, at, type, outcome, to_node, reason, detail, event_id, decided)
    SELECT r, n, i, a, t, o, "to", why, d, e, dec
    FROM json_to_recordset(${doc}::text::json) AS x (
      q integer, r uuid, n text, i integer, a timestamptz, t text, o text, "to" text, why text, d jsonb, e bigint,
      dec boolean)
    ORDER BY q`;
}

/**
 * The campaign each of these flows belongs to (campaign_flows, migration 0026): a flow's messages carry it,
 * and the tracking events of their links and opens with them.
 *
 * @example
 * const campaigns = await flowCampaigns(tx, ['flw_1']); // Map { 'flw_1' => 'cmp_x' }
 */
export async function flowCampaigns(tx: Tx, flowIds: readonly string[]): Promise<Map<string, string>> {
  const rows = await tx<{ flow_id: string; campaign_id: string }[]>`
    SELECT flow_id, campaign_id FROM campaign_flows WHERE flow_id = ANY(${[...new Set(flowIds)]}::text[])`;
  return new Map(rows.map((r) => [r.flow_id, r.campaign_id]));
}

/** Wakes the timers of every server (Postgres; delivered when the transaction commits). */
export async function notifyDue(tx: Tx, channel: string): Promise<void> {
  await tx`SELECT pg_notify(${channel}, '')`;
}

/** An event as the runner reads it: who, what, when, from where; the payload when asked for. */
export interface EventRow {
  id: string;
  profileId: string;
  sourceId: string;
  type: string;
  /** The track event's name, or the page's or screen's (what flows' filters call the event). */
  name: string | null;
  timestamp: Date;
  payload?: Record<string, unknown>;
}

/** Events attached to a profile, by id, in time order (without `payload`, only what routing reads). */
export async function eventsByIds(
  sql: Tx,
  ids: readonly string[],
  withPayload: boolean,
  /** Leave out imported events whose import did not ask to trigger flows (migration 0033). */
  forFlows = false,
): Promise<EventRow[]> {
  if (!ids.length) return [];
  return sql<EventRow[]>`
    SELECT id::text, profile_id::text AS "profileId", source_id AS "sourceId", type,
      CASE WHEN type = 'track' THEN event WHEN type IN ('page', 'screen') THEN payload->>'name' END AS name,
      timestamp ${withPayload ? sql`, payload` : sql``}
    FROM events
    WHERE id = ANY(${ids as string[]}::bigint[]) AND profile_id IS NOT NULL
      ${
        forFlows
          ? sql`AND (import_id IS NULL OR EXISTS (SELECT 1 FROM imports i WHERE i.id = events.import_id AND i.trigger_flows))`
          : sql``
      }
    ORDER BY timestamp, id`;
}
