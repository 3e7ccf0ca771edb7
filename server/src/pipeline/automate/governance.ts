import { createHash } from 'node:crypto';
import {
  type GovernanceFacts,
  type GovernanceSettings,
  NO_GOVERNANCE,
  type ProfileFacts,
  type SentMessage,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { BUILTIN_REGISTRY, type PluginRegistry } from '../deliver/index.ts';

// Flow governance on the server (packages/core flows governance.ts decides): the workspace's caps and quiet
// hours, each destination's channel, and each person's sends within the longest cap window, given to the
// engine in the facts. docs/design/flows.md, "Caps, quiet hours, priority".

/** The stored settings and when and by whom they were last changed. */
export interface GovernanceRow {
  settings: GovernanceSettings;
  updatedAt: string | null;
  updatedBy: string | null;
}

// Advisory lock class of a person's sends (stage 4's people lock is 7): taken, sorted, by every transaction
// that counts a person's sends for caps, after its row locks, and held to its commit: two transactions that
// would each send to one person count each other's sends, the second after the first committed.
const SENDS = 8;
const HOUR_MS = 3_600_000;

/**
 * The governance settings (none stored: no caps, no quiet hours).
 *
 * @example
 * const { settings } = await getGovernance(sql);
 */
export async function getGovernance(sql: Tx): Promise<GovernanceRow> {
  const [row] = await sql<{ settings: GovernanceSettings; updated_at: Date; updated_by: string | null }[]>`
    SELECT settings, updated_at, updated_by FROM flow_governance WHERE id`;
  if (!row) return { settings: NO_GOVERNANCE, updatedAt: null, updatedBy: null };
  return { settings: row.settings, updatedAt: new Date(row.updated_at).toISOString(), updatedBy: row.updated_by };
}

/**
 * Replaces the governance settings (validated by the caller with `governanceSchema`).
 *
 * @example
 * await putGovernance(sql, { caps: [{ channel: 'sms', max: 1, windowHours: 24 }], quietHours: [] }, 'usr_1');
 */
export async function putGovernance(sql: Tx, settings: GovernanceSettings, by: string | null): Promise<GovernanceRow> {
  const [row] = await sql<{ updated_at: Date }[]>`
    INSERT INTO flow_governance (id, settings, updated_at, updated_by)
    VALUES (true, ${sql.json(settings as never)}, now(), ${by})
    ON CONFLICT (id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now(), updated_by = EXCLUDED.updated_by
    RETURNING updated_at`;
  return { settings, updatedAt: new Date(row!.updated_at).toISOString(), updatedBy: by };
}

/**
 * Each destination's channel: its own `channel` setting, else its plugin's (`email-smtp` email, `sms-http`
 * sms, `slack` chat, `webhook` webhook). Plugins loaded through CAIRN_PLUGINS are not known here: such a
 * destination is governed when its `channel` is set.
 *
 * @example
 * await destinationChannels(sql); // { dst_1: 'email', dst_2: 'webhook' }
 */
export async function destinationChannels(
  sql: Tx,
  plugins: Pick<PluginRegistry, 'get'> = BUILTIN_REGISTRY,
): Promise<Record<string, string>> {
  const rows = await sql<{ id: string; plugin: string; channel: string | null }[]>`
    SELECT id, plugin, channel FROM destinations`;
  const out: Record<string, string> = {};
  for (const d of rows) {
    const channel = d.channel ?? plugins.get(d.plugin)?.channel;
    if (channel) out[d.id] = channel;
  }
  return out;
}

/**
 * Adds governance to the facts of these people: the settings and channels, and — when there are caps —
 * their sends within the longest window (locked per person until the transaction ends: see SENDS).
 * Sends are the send decisions in their runs' journals (committed with the step that decided them, so
 * none is missed while stage 5 has not yet written it to the ledger), minus those the ledger skipped.
 *
 * Returns the settings.
 *
 * @example
 * await addGovernance(tx, facts, now);
 */
export async function addGovernance(
  sql: Tx,
  facts: Map<string, ProfileFacts>,
  now: number,
): Promise<GovernanceSettings> {
  const { settings } = await getGovernance(sql);
  if (!settings.caps.length && !settings.quietHours.length) return settings;
  const governance: GovernanceFacts = { settings, channels: await destinationChannels(sql) };
  for (const f of facts.values()) f.governance = governance;
  if (!settings.caps.length) return settings;
  const ids = [...facts.keys()];
  await lockSends(sql, ids);
  const longest = Math.max(...settings.caps.map((c) => c.windowHours));
  const since = new Date(now - longest * HOUR_MS);
  for (const f of facts.values()) f.sends = [];
  for (const s of await sendsOf(sql, ids, since)) (facts.get(s.p)!.sends as SentMessage[]).push(sendOf(s));
  return settings;
}

function sendOf(s: SendRow): SentMessage {
  const sent: SentMessage = { at: new Date(s.at).getTime(), channel: s.channel, flowId: s.flow_id };
  if (s.key) sent.key = s.key;
  if (s.transactional) sent.transactional = true;
  return sent;
}

async function lockSends(sql: Tx, ids: readonly string[]): Promise<void> {
  const keys = [...new Set(ids.map((id) => createHash('sha1').update(`sends:${id}`).digest().readInt32BE(0)))].sort(
    (a, b) => a - b,
  );
  if (keys.length) await sql`SELECT pg_advisory_xact_lock(${SENDS}::int, k) FROM unnest(${keys}::int[]) AS k`;
}

interface SendRow {
  p: string;
  at: Date;
  channel: string;
  key: string | null;
  transactional: boolean;
  flow_id: string;
}

// The people's runs (flow_runs_person_idx), their send decisions since `since` (flow_steps_sends_idx), and
// for each the ledger row of its key (deliveries_message_key): one the ledger skipped was never sent.
async function sendsOf(sql: Tx, ids: readonly string[], since: Date): Promise<SendRow[]> {
  return sql<SendRow[]>`
    SELECT r.profile_id::text AS p, s.at, s.detail->>'channel' AS channel, s.detail->>'key' AS key,
      coalesce((s.detail->>'transactional')::boolean, false) AS transactional, r.flow_id
    FROM flow_runs r
    JOIN flow_steps s ON s.run_id = r.id
    WHERE r.profile_id = ANY(${ids}::uuid[])
      AND s.type = 'send' AND s.decided AND s.outcome = 'next' AND s.at > ${since}
      AND s.detail ? 'channel'
      AND NOT EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.event_id IS NULL
          AND d.destination_id = s.detail->>'destination'
          AND d.idempotency_key = s.detail->>'key'
          AND d.status = 'skipped'
      )
    ORDER BY s.at`;
}
