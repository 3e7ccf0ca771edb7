import { type FlowDefinition, nextEntry, type Trigger } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { calendarsFor } from './calendars.ts';

// What a reviewer sees of a flow besides its diff: how many people its trigger would enter today and
// where it sends; and the live flows nobody entered for a month. Each count is one indexed query.

/** How many people a trigger would enter today, on what basis (before entry rules and `where` conditions). */
export interface TriggerReach {
  trigger: Trigger['type'];
  /** null: not countable ahead (an API trigger enters whom its callers name). */
  people: number | null;
  basis: string;
  /** A time-based trigger's next firing after now (ISO), on the server's clock. */
  nextFiring?: string;
}

const DAY_MS = 86_400_000;

/** Current members of an audience (audience_memberships_current_idx). */
async function members(sql: Tx, audience: string): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM audience_memberships WHERE audience = ${audience} AND exited_at IS NULL`;
  return r!.n;
}

/** Live profiles (a schedule or calendar without an audience enters everyone). */
async function everyone(sql: Tx): Promise<number> {
  const [r] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM profiles WHERE merged_into IS NULL AND erased_at IS NULL`;
  return r!.n;
}

/**
 * People whose date_trait entry falls in the next 24 h, at the flow's time in the flow's zone (UTC
 * without one; a person's own zone, which the planner uses, can move it by up to a day). The entry day
 * is their date plus offsetDays (yearly: the first such day from yesterday on, so no zone is missed).
 * Through profile_traits_key_idx; a bad date is no date (cairn_ts).
 */
async function datesSoon(sql: Tx, t: Extract<Trigger, { type: 'date_trait' }>, zone: string, now: Date) {
  // Yearly: the anniversary on or after (yesterday - offset), moved by the offset, is the first entry
  // day on or after yesterday, whichever the offset's sign.
  const day =
    t.repeat === 'yearly'
      ? sql`(base + cairn_days_to_anniversary(cairn_ts(value), base) + ${t.offsetDays}::int)`
      : sql`((cairn_ts(value) AT TIME ZONE 'UTC')::date + ${t.offsetDays}::int)`;
  const [r] = await sql<{ n: number }[]>`
    WITH start AS (
      SELECT (${now}::timestamptz AT TIME ZONE ${zone})::date - 1 - ${t.offsetDays}::int AS base
    ),
    dated AS (
      SELECT (${day} + ${t.time}::time) AT TIME ZONE ${zone} AS at
      FROM profile_traits, start
      WHERE key = ${t.trait}
    )
    SELECT count(*)::int AS n FROM dated
    WHERE at >= ${now} AND at < ${new Date(now.getTime() + DAY_MS)}`;
  return r!.n;
}

/**
 * How many people the flow's trigger would enter today: audience and tag triggers their current
 * members, an event trigger the people who sent that event in the last 24 h, a schedule or calendar its
 * audience (everyone without one), a date trait those whose moment is in the next 24 h, a trait change
 * those who have the trait. Counted before the entry rule, re-entry policy and `where` conditions.
 *
 * @example
 * await triggerReach(sql, def, new Date()); // { trigger: 'event', people: 42, basis: '…' }
 */
export async function triggerReach(sql: Tx, def: FlowDefinition, now: Date): Promise<TriggerReach> {
  const t = def.trigger;
  const zone = def.timezone ?? 'UTC';
  switch (t.type) {
    case 'event': {
      // events_event_time_idx (event, timestamp) INCLUDE (profile_id): an index-only scan of one day.
      const [r] = await sql<{ n: number }[]>`
        SELECT count(DISTINCT profile_id)::int AS n FROM events
        WHERE event = ${t.event} AND timestamp >= ${new Date(now.getTime() - DAY_MS)}
          AND profile_id IS NOT NULL`;
      return { trigger: t.type, people: r!.n, basis: `people who sent "${t.event}" in the last 24 h` };
    }
    case 'audience_entered':
    case 'audience_exited':
      return { trigger: t.type, people: await members(sql, t.audience), basis: `current members of ${t.audience}` };
    case 'tag_added':
    case 'tag_removed': {
      const [r] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM tag_assignments WHERE tag = ${t.tag} AND removed_at IS NULL`;
      return { trigger: t.type, people: r!.n, basis: `people tagged ${t.tag} now` };
    }
    case 'trait_changed': {
      const [r] = t.computed
        ? await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM computed_trait_values WHERE key = ${t.trait}`
        : await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM profile_traits WHERE key = ${t.trait}`;
      return { trigger: t.type, people: r!.n, basis: `people who have ${t.trait} (any of them may change it)` };
    }
    case 'date_trait':
      return {
        trigger: t.type,
        people: await datesSoon(sql, t, zone, now),
        basis: `people whose ${t.trait} ${t.offsetDays ? `${t.offsetDays} days on ` : ''}falls in the next 24 h (${zone})`,
      };
    case 'schedule':
    case 'calendar': {
      const people = t.audience ? await members(sql, t.audience) : await everyone(sql);
      const calendars =
        t.type === 'calendar' && 'custom' in t.calendar
          ? await calendarsFor(sql, [t.calendar.custom], now.getUTCFullYear())
          : undefined;
      const next = nextEntry(def, { afterMs: now.getTime(), zone, ...(calendars ? { calendars } : {}) });
      return {
        trigger: t.type,
        people,
        basis: t.audience ? `members of ${t.audience}, at each firing` : 'everyone, at each firing',
        ...(next ? { nextFiring: new Date(next.at).toISOString() } : {}),
      };
    }
    case 'api':
      return { trigger: t.type, people: null, basis: 'entered by API calls: whom their callers name' };
  }
}

/** Where a flow's nodes send: each destination with its plugin and channel, and webhook hosts. */
export interface FlowReachOut {
  destinations: { id: string; name: string | null; plugin: string | null; channel: string | null; nodes: string[] }[];
  webhooks: { host: string; nodes: string[] }[];
}

/**
 * The destinations and channels a flow sends to (send and action nodes) and the hosts its webhooks call.
 *
 * @example
 * flowReachOut(def, (id) => ({ name: 'Mail', plugin: 'email-smtp', channel: 'email' }));
 */
export function flowReachOut(
  def: FlowDefinition,
  destination: (id: string) => { name: string; plugin: string; channel: string | null } | undefined,
): FlowReachOut {
  const dests = new Map<string, FlowReachOut['destinations'][number]>();
  const hooks = new Map<string, string[]>();
  for (const n of def.nodes) {
    if (n.type === 'send' || n.type === 'action') {
      const d = dests.get(n.destination) ?? {
        id: n.destination,
        name: null,
        plugin: null,
        channel: null,
        nodes: [],
        ...destination(n.destination),
      };
      d.nodes.push(n.id);
      dests.set(n.destination, d);
    } else if (n.type === 'webhook') {
      // A templated URL's host may be a template too: shown as written.
      const host = /^[a-z]+:\/\/([^/?#]+)/i.exec(n.url)?.[1] ?? n.url;
      hooks.set(host, [...(hooks.get(host) ?? []), n.id]);
    }
  }
  return { destinations: [...dests.values()], webhooks: [...hooks].map(([host, nodes]) => ({ host, nodes })) };
}

/** A live flow nobody entered in the window. */
export interface StaleFlow {
  id: string;
  name: string;
  version: number;
  /** When its first version was published. */
  liveSince: string;
}

/**
 * Live flows, published before the window, that nobody entered in the last `days` days (on the server's
 * clock). The runs entered in the window are found through the BRIN index on entered_at.
 *
 * @example
 * await staleFlows(sql, new Date(), 30);
 */
export async function staleFlows(sql: Tx, now: Date, days: number): Promise<StaleFlow[]> {
  const since = new Date(now.getTime() - days * DAY_MS);
  const rows = await sql<(Omit<StaleFlow, 'liveSince'> & { liveSince: Date })[]>`
    WITH entered AS (
      SELECT DISTINCT flow_id FROM flow_runs WHERE entered_at >= ${since}
    ),
    first AS (
      SELECT flow_id, min(published_at) AS at FROM flow_versions GROUP BY flow_id
    )
    SELECT f.id, f.name, f.version, first.at AS "liveSince"
    FROM flows f
    JOIN first ON first.flow_id = f.id
    WHERE f.status = 'live'
      AND first.at < ${since}
      AND NOT EXISTS (SELECT 1 FROM entered e WHERE e.flow_id = f.id)
    ORDER BY first.at, f.id`;
  return rows.map((r) => ({ ...r, liveSince: new Date(r.liveSince).toISOString() }));
}
