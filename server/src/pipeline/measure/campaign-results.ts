import { compileEventFilter, type EventFilter, type Fragment, ruleSql as sql } from '@cairn/core';

// The statements of a campaign's results (api/analytics/campaigns.ts folds them). Sources:
// - the delivery ledger: the campaign's flows' messages (rows without an event, `message.flow` naming the
//   flow, its version and send node), requested in the range; a row's person is its profile, or the
//   profile it merged into (ledger rows keep the profile of the send; merges flatten to one level);
// - the journal: sends a frequency cap skipped (`flow_steps` type send, outcome capped) never reach the ledger;
// - events Cairn records (source `cairn`): `Email Opened` and `Link Clicked` name their delivery;
//   `Unsubscribed` names no message, so it is credited to the last message delivered to the person on its
//   channel before it, within UNSUBSCRIBE_WINDOW_DAYS (credited to the campaign when that message is one of its);
// - events carrying one of the campaign's UTM values (`context.campaign.name`), and goal events.

/** An unsubscribe is credited to the last message delivered before it, at most this long before. */
export const UNSUBSCRIBE_WINDOW_DAYS = 30;

/** What the statements are built from. */
export interface CampaignQuery {
  flows: string[];
  utm: string[];
  /** Messages requested in `[from, to)`; UTM touches in it; goal events from `from` to `to` + the window. */
  from: string;
  to: string;
  includeMachine: boolean;
  /** Destination ids and their channels (email, sms, ...; null when unknown), for unsubscribes. */
  channels: { id: string; channel: string | null }[];
  goal: { events: EventFilter; windowMs: number; revenuePath: string[] | null } | null;
  now: Date;
}

// The campaign's messages in the ledger (employee notices aside: they go to staff, not to the person).
function ledger(q: CampaignQuery, delivered = false): Fragment {
  return sql`
    SELECT d.id, d.status, d.reason, d.delivered_at,
      coalesce(p.merged_into, d.profile_id) AS person,
      d.message->'flow'->>'id' AS flow,
      d.message->'flow'->>'node' AS node,
      (d.message->'flow'->>'version')::int AS version
    FROM deliveries d
    LEFT JOIN profiles p ON p.id = d.profile_id
    WHERE d.event_id IS NULL
      AND d.message->'flow'->>'id' = ANY(${q.flows}::text[])
      AND d.message->>'employee' IS NULL
      AND d.created_at >= ${q.from}::timestamptz
      AND d.created_at < ${q.to}::timestamptz
      ${delivered ? sql`AND d.status = 'delivered' AND d.delivered_at IS NOT NULL` : sql``}`;
}

const human = (q: CampaignQuery) =>
  q.includeMachine ? sql`true` : sql`NOT coalesce((e.payload->'properties'->>'machine')::boolean, false)`;

/**
 * Per message (flow, node, version), step, flow and the campaign (GROUPING SETS; `g` is the grouping
 * bitmask: 7 campaign, 3 flow, 1 step, 0 message): messages sent, delivered, failed, pending, skipped by the
 * ledger, people reached, opened (people, messages), clicked (people, distinct links clicked), unsubscribed.
 *
 * @example
 * const rows = await reader.rows<DeliveryMetricsRow>(deliveryMetricsSql(q), signal);
 */
export function deliveryMetricsSql(q: CampaignQuery): Fragment {
  return sql`
    WITH ledger AS (${ledger(q)}),
    -- Opens and clicks name their delivery; the (event, timestamp) index reads those since the range began.
    opens AS (
      SELECT DISTINCT e.payload->'properties'->>'deliveryId' AS delivery
      FROM events e
      WHERE e.event = 'Email Opened' AND e.source_id = 'cairn' AND e.profile_id IS NOT NULL
        AND e.timestamp >= ${q.from}::timestamptz AND ${human(q)}
    ),
    clicks AS (
      SELECT e.payload->'properties'->>'deliveryId' AS delivery,
        count(DISTINCT e.payload->'properties'->>'linkIndex')::int AS links
      FROM events e
      WHERE e.event = 'Link Clicked' AND e.source_id = 'cairn' AND e.profile_id IS NOT NULL
        AND e.timestamp >= ${q.from}::timestamptz AND ${human(q)}
      GROUP BY 1
    ),
    unsubscribes AS (
      SELECT e.profile_id AS person, e.timestamp AS at, e.payload->'properties'->>'channel' AS channel
      FROM events e
      WHERE e.event = 'Unsubscribed' AND e.source_id = 'cairn' AND e.profile_id IS NOT NULL
        AND e.timestamp >= ${q.from}::timestamptz
        AND e.profile_id IN (SELECT person FROM ledger)
    ),
    -- The message each unsubscribe is credited to: the person's last one delivered on its channel before
    -- it, from any flow (another flow's later message takes the credit), through every profile merged into them.
    credited AS (
      SELECT DISTINCT last.id
      FROM unsubscribes u
      CROSS JOIN LATERAL (
        SELECT d.id
        FROM profiles p
        JOIN deliveries d ON d.profile_id = p.id AND d.event_id IS NULL
        JOIN unnest(${q.channels.map((c) => c.id)}::text[], ${q.channels.map((c) => c.channel ?? '')}::text[])
          AS dc (id, channel) ON dc.id = d.destination_id
        WHERE (p.id = u.person OR p.merged_into = u.person)
          AND d.status = 'delivered'
          AND d.message->>'employee' IS NULL
          AND d.delivered_at <= u.at
          AND d.delivered_at > u.at - ${`${UNSUBSCRIBE_WINDOW_DAYS} days`}::interval
          AND (u.channel IS NULL OR dc.channel = u.channel)
        ORDER BY d.delivered_at DESC, d.id DESC
        LIMIT 1
      ) last
    ),
    marked AS (
      SELECT l.flow, l.node, l.version, l.status, l.person,
        l.status = 'delivered' AND o.delivery IS NOT NULL AS opened,
        CASE WHEN l.status = 'delivered' THEN coalesce(c.links, 0) ELSE 0 END AS clicks,
        k.id IS NOT NULL AS unsubscribed
      FROM ledger l
      LEFT JOIN opens o ON o.delivery = l.id::text
      LEFT JOIN clicks c ON c.delivery = l.id::text
      LEFT JOIN credited k ON k.id = l.id
    )
    SELECT flow, node, version, GROUPING(flow, node, version)::int AS g,
      count(*) FILTER (WHERE status <> 'skipped')::int AS sent,
      count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
      count(*) FILTER (WHERE status = 'dead')::int AS failed,
      count(*) FILTER (WHERE status IN ('pending', 'retrying', 'waiting'))::int AS pending,
      count(DISTINCT person) FILTER (WHERE status = 'delivered')::int AS reached,
      count(DISTINCT person) FILTER (WHERE opened)::int AS opened_people,
      count(*) FILTER (WHERE opened)::int AS opened_messages,
      count(DISTINCT person) FILTER (WHERE clicks > 0)::int AS clicked_people,
      coalesce(sum(clicks), 0)::int AS clicks,
      count(DISTINCT person) FILTER (WHERE unsubscribed)::int AS unsubscribed
    FROM marked
    GROUP BY GROUPING SETS ((), (flow), (flow, node), (flow, node, version))`;
}

/** A row of {@link deliveryMetricsSql}. */
export interface DeliveryMetricsRow {
  flow: string | null;
  node: string | null;
  version: number | null;
  g: number;
  sent: number;
  delivered: number;
  failed: number;
  pending: number;
  reached: number;
  opened_people: number;
  opened_messages: number;
  clicked_people: number;
  clicks: number;
  unsubscribed: number;
}

/**
 * Skipped sends per message and reason: the ledger's (consent, unsubscribed, a destination gone) and the
 * journal's (a frequency cap with `onCap: skip`: reason `capped`), counted in messages.
 *
 * @example
 * const rows = await reader.rows<SkipRow>(skipsSql(q), signal);
 */
export function skipsSql(q: CampaignQuery): Fragment {
  return sql`
    WITH ledger AS (${ledger(q)})
    SELECT flow, node, version, coalesce(reason, 'unknown') AS reason, count(*)::int AS count
    FROM ledger
    WHERE status = 'skipped'
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT r.flow_id, s.node, r.version, 'capped', count(*)::int
    FROM flow_runs r
    JOIN flow_steps s ON s.run_id = r.id
    WHERE r.flow_id = ANY(${q.flows}::text[])
      AND s.type = 'send' AND s.outcome = 'capped'
      AND s.at >= ${q.from}::timestamptz AND s.at < ${q.to}::timestamptz
    GROUP BY 1, 2, 3, 4`;
}

/** A row of {@link skipsSql}. */
export interface SkipRow {
  flow: string;
  node: string;
  version: number;
  reason: string;
  count: number;
}

// Touches: messages delivered, and events with one of the campaign's UTM values in the range.
function touches(q: CampaignQuery): Fragment {
  return sql`
    SELECT person, delivered_at AS at, flow, node, version, NULL::text AS utm
    FROM (${ledger(q, true)}) l
    UNION ALL
    SELECT e.profile_id, e.timestamp, NULL, NULL, NULL, e.payload->'context'->'campaign'->>'name'
    FROM events e
    WHERE e.profile_id IS NOT NULL
      AND e.timestamp >= ${q.from}::timestamptz AND e.timestamp < ${q.to}::timestamptz
      AND e.payload->'context'->'campaign'->>'name' = ANY(${q.utm}::text[])`;
}

// A JSON number at the path, else null; by default `revenue`, then `total`.
function revenueOf(path: string[] | null): Fragment {
  const at = (p: string[]) => {
    const full = ['properties', ...p];
    return sql`CASE WHEN jsonb_typeof(e.payload #> ${full}::text[]) = 'number'
      THEN (e.payload #>> ${full}::text[])::numeric END`;
  };
  return path ? at(path) : sql`coalesce(${at(['revenue'])}, ${at(['total'])})`;
}

/**
 * People touched: per UTM value, and by the campaign (delivered a message or with a UTM event); `utm` null
 * and `campaign` true for the campaign's row.
 *
 * @example
 * const rows = await reader.rows<TouchedRow>(touchedSql(q), signal);
 */
export function touchedSql(q: CampaignQuery): Fragment {
  return sql`
    WITH touches AS (${touches(q)})
    SELECT utm, GROUPING(utm) = 1 AS campaign, count(DISTINCT person)::int AS people
    FROM touches
    GROUP BY GROUPING SETS ((), (utm))`;
}

/** A row of {@link touchedSql}. */
export interface TouchedRow {
  utm: string | null;
  campaign: boolean;
  people: number;
}

/**
 * Conversions per level: a goal event of a person within the window after one of their touches at that
 * level (a delivered message; an event with a UTM value), inclusive at both ends. Each goal event counts
 * once per level however many touches it follows; `converted` is people, `conversions` goal events,
 * `revenue` the sum of their revenue property. Levels: campaign, flow, step, message, utm.
 *
 * @example
 * const rows = await reader.rows<ConversionRow>(conversionsSql(q), signal);
 */
export function conversionsSql(q: CampaignQuery): Fragment {
  const goal = q.goal!;
  const window = sql`${`${goal.windowMs} milliseconds`}::interval`;
  return sql`
    WITH touches AS (${touches(q)}),
    goals AS (
      SELECT e.id, e.profile_id AS person, e.timestamp AS at, ${revenueOf(goal.revenuePath)} AS revenue
      FROM events e
      WHERE e.profile_id IS NOT NULL
        AND ${compileEventFilter(goal.events, { now: q.now, alias: 'e' })}
        AND e.timestamp >= ${q.from}::timestamptz
        AND e.timestamp <= ${q.to}::timestamptz + ${window}
        AND e.profile_id IN (SELECT person FROM touches)
    ),
    pairs AS (
      SELECT t.flow, t.node, t.version, t.utm, g.id, g.person, g.revenue
      FROM touches t
      JOIN goals g ON g.person = t.person AND g.at >= t.at AND g.at <= t.at + ${window}
    ),
    -- UNION (not ALL): a goal event counts once per level and key, whatever number of touches it follows.
    levels AS (
      SELECT 'campaign' AS level, NULL::text AS flow, NULL::text AS node, NULL::int AS version,
        NULL::text AS utm, id, person, revenue
      FROM pairs
      UNION SELECT 'flow', flow, NULL, NULL, NULL, id, person, revenue FROM pairs WHERE flow IS NOT NULL
      UNION SELECT 'step', flow, node, NULL, NULL, id, person, revenue FROM pairs WHERE flow IS NOT NULL
      UNION SELECT 'message', flow, node, version, NULL, id, person, revenue FROM pairs WHERE flow IS NOT NULL
      UNION SELECT 'utm', NULL, NULL, NULL, utm, id, person, revenue FROM pairs WHERE utm IS NOT NULL
    )
    SELECT level, flow, node, version, utm,
      count(DISTINCT person)::int AS converted,
      count(*)::int AS conversions,
      coalesce(sum(revenue), 0)::float8 AS revenue
    FROM levels
    GROUP BY 1, 2, 3, 4, 5`;
}

/** A row of {@link conversionsSql}. */
export interface ConversionRow {
  level: 'campaign' | 'flow' | 'step' | 'message' | 'utm';
  flow: string | null;
  node: string | null;
  version: number | null;
  utm: string | null;
  converted: number;
  conversions: number;
  revenue: number;
}
