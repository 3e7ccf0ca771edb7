import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, sql } from '../rules/sql.ts';
import type { TimeRange } from './range.ts';

/** The attribution models, answered side by side. */
export const ATTRIBUTION_MODELS = [
  'first_touch',
  'last_touch',
  'last_non_direct',
  'linear',
  'position_based',
  'time_decay',
] as const;
export type AttributionModel = (typeof ATTRIBUTION_MODELS)[number];

/** How touches are grouped into channels: UTM campaign name, UTM `source / medium`, or Cairn flow. */
export const CHANNEL_GROUPINGS = ['campaign', 'source_medium', 'flow'] as const;
export type ChannelGrouping = (typeof CHANNEL_GROUPINGS)[number];

export const ATTRIBUTION_LIMITS = {
  defaultLookbackDays: 30,
  maxLookbackDays: 365,
  defaultHalfLifeDays: 7,
  maxHalfLifeDays: 365,
  /** A silence longer than this (minutes) between a person's visits starts a new session. */
  sessionGapMinutes: 30,
  /** The most touch and conversion rows one query may read (past it: too broad). */
  maxRows: 2_000_000,
} as const;

/** The channel names given to touches that have no value for the grouping. */
export const CHANNELS = { direct: '(direct)', notSet: '(not set)', notAFlow: '(utm)', cairnMedium: 'cairn / email' };

const DAY_MS = 86_400_000;

/** A touch: when (epoch ms), its event id (ties on time are ordered by id), its channel, and whether it is direct. */
export interface Touch {
  at: number;
  id: string;
  channel: string;
  direct: boolean;
}

/** A conversion: when (epoch ms), its event id and its revenue (0 when it carries none). */
export interface Conversion {
  at: number;
  id: string;
  revenue: number;
}

/** Model options: the half-life of time decay, in days. */
export interface CreditOptions {
  halfLifeDays: number;
}

/** Event ids are bigint text: shorter is smaller, equal lengths compare as text. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Whether `a` comes strictly before `b` in a person's order `(timestamp, id)` (ids as numbers).
 *
 * @example
 * before({ at: 5, id: '9' }, { at: 5, id: '10' }); // true
 */
export function before(a: { at: number; id: string }, b: { at: number; id: string }): boolean {
  return a.at < b.at || (a.at === b.at && compareIds(a.id, b.id) < 0);
}

/**
 * The touches a conversion may be credited to: strictly before it in `(timestamp, id)` order and no
 * older than the lookback (a touch exactly `lookbackDays × 24 h` before counts), in that order.
 *
 * @example
 * touchesInLookback({ at: 10 * DAY, id: '9', revenue: 0 }, touches, 7); // the touches of days 3..10
 */
export function touchesInLookback(conversion: Conversion, touches: readonly Touch[], lookbackDays: number): Touch[] {
  const oldest = conversion.at - lookbackDays * DAY_MS;
  return touches
    .filter((t) => t.at >= oldest && before(t, conversion))
    .sort((a, b) => a.at - b.at || compareIds(a.id, b.id));
}

/**
 * The share of one conversion each touch gets under `model` (ordered touches, all in the lookback; the
 * shares sum to 1, or the array is empty when there is no touch). first/last touch: all to the first
 * (last) one; last non-direct: all to the last touch that is not direct, or to the last touch when all
 * are direct; linear: equal parts; position-based: 40% first, 40% last, 20% split over the ones between
 * (one touch: 100%; two: 50/50); time decay: weights 2^(−age/half-life), age = days from touch to
 * conversion, normalised (equal times: equal shares).
 *
 * @example
 * creditShares({ at: 0, id: '9', revenue: 0 }, [a, b, c], 'position_based', { halfLifeDays: 7 }); // [0.4, 0.2, 0.4]
 */
export function creditShares(
  conversion: Conversion,
  touches: readonly Touch[],
  model: AttributionModel,
  options: CreditOptions,
): number[] {
  const n = touches.length;
  const shares = new Array<number>(n).fill(0);
  if (n === 0) return shares;
  switch (model) {
    case 'first_touch':
      shares[0] = 1;
      break;
    case 'last_touch':
      shares[n - 1] = 1;
      break;
    case 'last_non_direct': {
      let i = n - 1;
      while (i >= 0 && touches[i]!.direct) i--;
      shares[i < 0 ? n - 1 : i] = 1;
      break;
    }
    case 'linear':
      shares.fill(1 / n);
      break;
    case 'position_based':
      if (n === 1) shares[0] = 1;
      else if (n === 2) shares.fill(0.5);
      else {
        shares.fill(0.2 / (n - 2));
        shares[0] = 0.4;
        shares[n - 1] = 0.4;
      }
      break;
    case 'time_decay': {
      const w = touches.map((t) => 2 ** (-(conversion.at - t.at) / DAY_MS / options.halfLifeDays));
      const sum = w.reduce((a, b) => a + b, 0);
      for (let i = 0; i < n; i++) shares[i] = w[i]! / sum;
      break;
    }
  }
  return shares;
}

/**
 * The credit of one conversion per model and channel: each touch's share (see {@link creditShares})
 * summed per channel. Empty maps when there is no touch (the conversion is unattributed).
 *
 * @example
 * const credit = creditByChannel(conv, touchesInLookback(conv, touches, 30), ['linear'], { halfLifeDays: 7 });
 * credit.linear.get('spring'); // 0.5
 */
export function creditByChannel(
  conversion: Conversion,
  touches: readonly Touch[],
  models: readonly AttributionModel[],
  options: CreditOptions,
): Record<AttributionModel, Map<string, number>> {
  const out = {} as Record<AttributionModel, Map<string, number>>;
  for (const model of models) {
    const shares = creditShares(conversion, touches, model, options);
    const byChannel = new Map<string, number>();
    shares.forEach((s, i) => {
      if (s > 0) byChannel.set(touches[i]!.channel, (byChannel.get(touches[i]!.channel) ?? 0) + s);
    });
    out[model] = byChannel;
  }
  return out;
}

/** An attribution query, as the API takes it (validated there). */
export interface AttributionQuery {
  /** Conversions in `[from, to)` are attributed (their touches may be older, up to the lookback). */
  range: TimeRange;
  conversion: EventFilter;
  /** The property revenue is read from; absent: `revenue`, else `total`. JSON numbers only. */
  revenueProperty?: string;
  lookbackDays: number;
  channelOf: ChannelGrouping;
  models: readonly AttributionModel[];
  halfLifeDays: number;
  /** The kinds of touch counted (absent: all three). */
  touchpoints?: readonly TouchKind[];
}

/** The kinds of touch: a UTM campaign on an event, a click on a Cairn message, a direct session start. */
export const TOUCH_KINDS = ['utm', 'click', 'direct'] as const;
export type TouchKind = (typeof TOUCH_KINDS)[number];

/** A row of {@link attributionSql}: a conversion, a touch, or both (a conversion carrying a campaign). */
export interface AttributionRow {
  profile_id: string;
  at: number;
  id: string;
  conv: boolean;
  revenue: number | null;
  touch: TouchKind | null;
  utm_name: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  /** A click's `campaign` property (a name, or an object with one). */
  click_campaign: unknown;
  flow_id: string | null;
}

const text = (v: Fragment) => sql`nullif(btrim(${v}), '')`;

/**
 * The statement of an attribution query: one ordered pass over the events of the people who converted
 * in the range (from the lookback before it), sorted once by `(person, timestamp, id)`. Each row is a
 * conversion (matching the conversion filter, in the range), a touch, or both:
 * - `click`: a `Link Clicked` event with a string `flowId` property (Cairn's tracked links write them),
 *   not flagged `machine: true` (a link scanner);
 * - `utm`: an event whose `context.campaign` has a name, source or medium — unless the person's previous
 *   visit, within the session gap, carried the same campaign (a page load's events are one touch);
 * - `direct`: a visit (a page, screen or track event; Cairn's own events and machine clicks are not) with
 *   no campaign that starts a session (no visit of the person in the 30 minutes before it).
 * The rows come back in the order the pass ({@link foldAttribution}) reads them.
 *
 * @example
 * const rows = await reader.rows<AttributionRow>(attributionSql(query, { now: new Date() }));
 */
export function attributionSql(q: AttributionQuery, options: { now: Date }): Fragment {
  const { from, to } = q.range;
  const convIn = compileEventFilter(q.conversion, { now: options.now, alias: 'c' });
  const convE = compileEventFilter(q.conversion, { now: options.now, alias: 'e' });
  const lookback = `${q.lookbackDays} days`;
  const gap = `${ATTRIBUTION_LIMITS.sessionGapMinutes} minutes`;
  const props = sql`e.payload->'properties'`;
  const num = (p: string) =>
    sql`CASE WHEN jsonb_typeof(${props}->${p}::text) = 'number' THEN (${props}->>${p}::text)::float8 END`;
  const revenue = q.revenueProperty ? num(q.revenueProperty) : sql`coalesce(${num('revenue')}, ${num('total')})`;
  const camp = sql`e.payload->'context'->'campaign'`;
  const kinds = [...(q.touchpoints ?? TOUCH_KINDS)];
  return sql`
WITH converters AS (
  SELECT DISTINCT c.profile_id FROM events c
  WHERE c.profile_id IS NOT NULL
    AND c.timestamp >= ${from}::timestamptz AND c.timestamp < ${to}::timestamptz AND ${convIn}
),
ev AS (
  SELECT e.profile_id, e.timestamp, e.id,
    coalesce(e.timestamp >= ${from}::timestamptz AND ${convE}, false) AS conv,
    (e.event = 'Link Clicked' AND jsonb_typeof(${props}->'flowId') = 'string'
      AND (${props}->'machine') IS DISTINCT FROM 'true'::jsonb) AS click,
    ${text(sql`${camp}->>'name'`)} AS utm_name,
    ${text(sql`${camp}->>'source'`)} AS utm_source,
    ${text(sql`${camp}->>'medium'`)} AS utm_medium,
    e.type, e.source_id, e.event,
    CASE WHEN e.timestamp >= ${from}::timestamptz AND ${convE} THEN ${revenue} END AS revenue,
    CASE WHEN e.event = 'Link Clicked' THEN ${props}->'campaign' END AS click_campaign,
    CASE WHEN e.event = 'Link Clicked' THEN ${props}->>'flowId' END AS flow_id
  FROM events e
  WHERE e.profile_id IN (SELECT profile_id FROM converters)
    AND e.timestamp >= ${from}::timestamptz - ${lookback}::interval - ${gap}::interval
    AND e.timestamp < ${to}::timestamptz
),
visits AS (
  SELECT *,
    lag(timestamp) OVER w AS prev_at,
    lag(utm_name) OVER w AS prev_name, lag(utm_source) OVER w AS prev_source, lag(utm_medium) OVER w AS prev_medium
  FROM ev
  WHERE conv OR click OR (type IN ('page', 'screen', 'track') AND source_id <> 'cairn' AND event IS DISTINCT FROM 'Link Clicked')
  WINDOW w AS (PARTITION BY profile_id ORDER BY timestamp, id)
),
marked AS (
  SELECT *,
    CASE
      WHEN click THEN 'click'
      WHEN utm_name IS NOT NULL OR utm_source IS NOT NULL OR utm_medium IS NOT NULL THEN
        CASE WHEN prev_at IS NOT NULL AND timestamp - prev_at <= ${gap}::interval
          AND (utm_name, utm_source, utm_medium) IS NOT DISTINCT FROM (prev_name, prev_source, prev_medium)
        THEN NULL ELSE 'utm' END
      WHEN prev_at IS NULL OR timestamp - prev_at > ${gap}::interval THEN 'direct'
    END AS touch
  FROM visits
)
SELECT e.profile_id::text AS profile_id, date_part('epoch', e.timestamp) * 1000 AS at, e.id::text AS id, e.conv,
  e.revenue, CASE WHEN e.touch = ANY(${kinds}::text[]) THEN e.touch END AS touch, e.utm_name, e.utm_source, e.utm_medium,
  CASE WHEN e.click THEN e.click_campaign END AS click_campaign, CASE WHEN e.click THEN e.flow_id END AS flow_id
FROM marked e
WHERE e.conv OR (e.touch = ANY(${kinds}::text[]) AND e.timestamp >= ${from}::timestamptz - ${lookback}::interval)
ORDER BY e.profile_id, e.timestamp, e.id`;
}

/**
 * The channel of a touch row under a grouping. Campaign: the UTM name, or a click's `campaign`
 * property (a name or `{ name }`); source/medium: `source / medium` (a click: `cairn / email`); flow: a
 * click's flow id (UTM touches: `(utm)`). Direct touches are `(direct)`; a missing value `(not set)`.
 *
 * @example
 * channelOf({ touch: 'utm', utm_name: 'spring', ... }, 'campaign'); // 'spring'
 */
export function channelOf(row: AttributionRow, grouping: ChannelGrouping): string {
  if (row.touch === 'direct') return CHANNELS.direct;
  const click = row.touch === 'click';
  switch (grouping) {
    case 'campaign': {
      if (!click) return row.utm_name ?? CHANNELS.notSet;
      const c = row.click_campaign;
      const name =
        typeof c === 'string' ? c : c && typeof c === 'object' ? (c as Record<string, unknown>).name : undefined;
      return typeof name === 'string' && name.trim() ? name : CHANNELS.notSet;
    }
    case 'source_medium':
      return click
        ? CHANNELS.cairnMedium
        : `${row.utm_source ?? CHANNELS.notSet} / ${row.utm_medium ?? CHANNELS.notSet}`;
    case 'flow':
      return click ? (row.flow_id ?? CHANNELS.notSet) : CHANNELS.notAFlow;
  }
}

/** Credit per model: attributed conversions (fractional) and revenue. */
export type ModelCredit = Record<AttributionModel, { conversions: number; revenue: number }>;

/** The answer of an attribution query before rounding. */
export interface AttributionTable {
  channels: { channel: string; models: ModelCredit }[];
  totals: {
    conversions: number;
    revenue: number;
    attributed: { conversions: number; revenue: number };
    unattributed: { conversions: number; revenue: number };
  };
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * The pass over {@link attributionSql}'s rows (ordered by person, timestamp, id), fed in batches: per
 * person, the touches seen so far (a sliding window of the lookback); each conversion is credited to the
 * touches strictly before it and no older than the lookback — touches are reused by every later
 * conversion of the person that still sees them (as GA4 does) — and a conversion with none is
 * unattributed. `result()` sorts channels by last-touch conversions (else the first model's), then name,
 * numbers rounded to 6 decimals.
 *
 * @example
 * const fold = attributionFold(query);
 * for await (const batch of reader.stream<AttributionRow>(attributionSql(query, { now }))) fold.add(batch);
 * const table = fold.result();
 */
export function attributionFold(q: AttributionQuery): {
  add(rows: readonly AttributionRow[]): void;
  result(): AttributionTable;
} {
  const lookbackMs = q.lookbackDays * DAY_MS;
  const opts = { halfLifeDays: q.halfLifeDays };
  const table = new Map<string, ModelCredit>();
  const totals = {
    conversions: 0,
    revenue: 0,
    attributed: { conversions: 0, revenue: 0 },
    unattributed: { conversions: 0, revenue: 0 },
  };
  const credit = (channel: string) => {
    let c = table.get(channel);
    if (!c) {
      c = {} as ModelCredit;
      for (const m of q.models) c[m] = { conversions: 0, revenue: 0 };
      table.set(channel, c);
    }
    return c;
  };
  let person: string | null = null;
  let seen: Touch[] = [];
  const add = (rows: readonly AttributionRow[]) => {
    for (const row of rows) {
      if (row.profile_id !== person) {
        person = row.profile_id;
        seen = [];
      }
      if (row.conv) {
        const conv: Conversion = { at: row.at, id: row.id, revenue: row.revenue ?? 0 };
        let drop = 0;
        while (drop < seen.length && seen[drop]!.at < conv.at - lookbackMs) drop++;
        if (drop) seen = seen.slice(drop);
        totals.conversions++;
        totals.revenue += conv.revenue;
        const side = seen.length ? totals.attributed : totals.unattributed;
        side.conversions++;
        side.revenue += conv.revenue;
        if (seen.length) {
          const byModel = creditByChannel(conv, seen, q.models, opts);
          for (const m of q.models)
            for (const [channel, share] of byModel[m]) {
              const c = credit(channel)[m];
              c.conversions += share;
              c.revenue += share * conv.revenue;
            }
        }
      }
      // After the conversion: a conversion carrying a campaign is a touch for the person's later ones.
      if (row.touch)
        seen.push({ at: row.at, id: row.id, channel: channelOf(row, q.channelOf), direct: row.touch === 'direct' });
    }
  };
  const result = (): AttributionTable => {
    const key = q.models.includes('last_touch') ? 'last_touch' : q.models[0]!;
    const channels = [...table]
      .map(([channel, models]) => {
        const out = {} as ModelCredit;
        for (const m of q.models)
          out[m] = { conversions: round(models[m].conversions), revenue: round(models[m].revenue) };
        return { channel, models: out };
      })
      .sort((a, b) => b.models[key].conversions - a.models[key].conversions || (a.channel < b.channel ? -1 : 1));
    return {
      channels,
      totals: {
        conversions: totals.conversions,
        revenue: round(totals.revenue),
        attributed: { conversions: totals.attributed.conversions, revenue: round(totals.attributed.revenue) },
        unattributed: { conversions: totals.unattributed.conversions, revenue: round(totals.unattributed.revenue) },
      },
    };
  };
  return { add, result };
}

/**
 * {@link attributionFold} over rows held in memory.
 *
 * @example
 * const table = foldAttribution(rows, query);
 */
export function foldAttribution(rows: readonly AttributionRow[], q: AttributionQuery): AttributionTable {
  const fold = attributionFold(q);
  fold.add(rows);
  return fold.result();
}
