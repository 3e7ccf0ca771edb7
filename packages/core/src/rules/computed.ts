import { z } from 'zod';
import type { PropertyFilter, Window } from './ast.ts';
import type { ComputedKind } from './computed-kinds.ts';
import { describeMatch, describeWindow, filtersSql, propertyPath, windowEdges, windowSql } from './ops/events.ts';
import { PREFERENCE_KINDS, type PreferenceDefinition } from './preferences.ts';
import { propertyFilterSchema } from './schema.ts';
import { SCORE_KINDS, type ScoreDefinition } from './scores.ts';
import { type Fragment, join, sql } from './sql.ts';

const DAY_MS = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** A per-profile value computed from the profile's events, kept current by stage 3. */
export type ComputedTraitDefinition =
  | {
      kind: 'aggregate';
      fn: 'count' | 'sum' | 'avg' | 'min' | 'max' | 'first' | 'last' | 'most_frequent' | 'unique_count';
      event: string;
      /** The event property (dot path under properties); first/last without one give the event's time. */
      property?: string;
      where?: PropertyFilter[];
      within?: Window;
    }
  | {
      /** Recency, frequency, monetary tiers (1 best .. 3 worst) and their sum's segment. */
      kind: 'rfm';
      event?: string;
      property?: string;
      /** Days: recency <= r1 is tier 1, <= r2 tier 2, else 3. */
      recencyDays?: [number, number];
      /** Orders within `windowDays`: >= f1 is tier 1, >= f2 tier 2, else 3. */
      frequency?: [number, number];
      /** Revenue within `windowDays`: >= m1 is tier 1, >= m2 tier 2, else 3. */
      monetary?: [number, number];
      windowDays?: number;
    }
  | {
      /** new, active, dormant, churned, won_back from activity (any event, or one event name). */
      kind: 'lifecycle';
      event?: string;
      newDays?: number;
      activeDays?: number;
      churnDays?: number;
    }
  | { kind: 'active_hour'; event?: string; within?: Window }
  | PreferenceDefinition
  | ScoreDefinition;

/** The preference and score kinds (preferences.ts, scores.ts), by kind. */
const KINDS = { ...PREFERENCE_KINDS, ...SCORE_KINDS } as Record<
  string,
  ComputedKind<PreferenceDefinition | ScoreDefinition>
>;

/**
 * The preference or score kind of a definition (undefined for the aggregate kinds defined here).
 *
 * @example
 * computedKindOf({ kind: 'activity' })?.dependencies({ kind: 'activity' }); // { events: ['*'], timeBound: true }
 */
export function computedKindOf(
  def: ComputedTraitDefinition,
): ComputedKind<PreferenceDefinition | ScoreDefinition> | undefined {
  return Object.hasOwn(KINDS, def.kind) ? KINDS[def.kind] : undefined;
}
const isKind = (def: ComputedTraitDefinition): def is PreferenceDefinition | ScoreDefinition =>
  Object.hasOwn(KINDS, def.kind);

/** The brief's defaults. */
export const RFM_DEFAULTS = {
  event: 'Order Completed',
  property: 'total',
  recencyDays: [30, 90] as [number, number],
  frequency: [5, 2] as [number, number],
  monetary: [1000, 500] as [number, number],
  windowDays: 90,
};
export const LIFECYCLE_DEFAULTS = { newDays: 30, activeDays: 30, churnDays: 90 };

/**
 * Ready-made definitions from the brief, installable by key.
 *
 * @example
 * COMPUTED_PRESETS.average_order_value; // { kind: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total' }
 */
export const COMPUTED_PRESETS: Record<string, { name: string; definition: ComputedTraitDefinition }> = {
  rfm: { name: 'RFM', definition: { kind: 'rfm' } },
  lifecycle_stage: { name: 'Lifecycle stage', definition: { kind: 'lifecycle' } },
  average_order_value: {
    name: 'Average order value',
    definition: { kind: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total' },
  },
  last_order_date: { name: 'Last order date', definition: { kind: 'aggregate', fn: 'last', event: 'Order Completed' } },
  preferred_category: {
    name: 'Preferred category',
    definition: {
      kind: 'aggregate',
      fn: 'most_frequent',
      event: 'Product Viewed',
      property: 'category',
      within: { last: 90, unit: 'days' },
    },
  },
  most_active_hour: {
    name: 'Most active hour of day (UTC)',
    definition: { kind: 'active_hour', within: { last: 90, unit: 'days' } },
  },
  // Behaviour preferences and scores (preferences.ts, scores.ts; defaults there).
  active_hour_local: { name: 'Most active hour (local time)', definition: { kind: 'active_time', part: 'hour' } },
  active_weekday_local: {
    name: 'Most active weekday (local time)',
    definition: { kind: 'active_time', part: 'weekday' },
  },
  recent_preferred_category: {
    name: 'Preferred category (recency-weighted)',
    definition: { kind: 'preferred', event: 'Product Viewed', property: 'category' },
  },
  coupons: { name: 'Coupons issued, redeemed and redemption rate (180 days)', definition: { kind: 'coupons' } },
  price_sensitivity: { name: 'Share of orders with a discount', definition: { kind: 'price_sensitivity' } },
  repurchase_cycle: { name: 'Median days between orders', definition: { kind: 'repurchase_cycle' } },
  preferred_channel: { name: 'Preferred channel (opens and clicks)', definition: { kind: 'preferred_channel' } },
  activity_score: { name: 'Activity score (half-life 14 days)', definition: { kind: 'activity' } },
  virality: { name: 'Virality (shares, invites, referred sign-ups)', definition: { kind: 'virality' } },
};

const name = z.string().min(1).max(200);
const path = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated property path');
const days = z.number().int().min(1).max(36_600);
const pair = z.tuple([z.number().min(0), z.number().min(0)]);
const window = z.union([
  z.object({ last: z.number().int().min(1).max(1_000_000), unit: z.enum(['minutes', 'hours', 'days']) }).strict(),
  z.object({ from: z.string(), to: z.string() }).strict(),
]);

/** The zod schema of a computed trait definition. */
export const computedTraitSchema: z.ZodType<ComputedTraitDefinition> = z.union([
  z
    .object({
      kind: z.literal('aggregate'),
      fn: z.enum(['count', 'sum', 'avg', 'min', 'max', 'first', 'last', 'most_frequent', 'unique_count']),
      event: name,
      property: path.optional(),
      where: z.array(propertyFilterSchema).max(20).optional(),
      within: window.optional(),
    })
    .strict()
    .superRefine((d, ctx) => {
      if (['sum', 'avg', 'min', 'max', 'most_frequent', 'unique_count'].includes(d.fn) && !d.property)
        ctx.addIssue({ code: 'custom', path: ['property'], message: `${d.fn} needs a property` });
    }),
  z
    .object({
      kind: z.literal('rfm'),
      event: name.optional(),
      property: path.optional(),
      recencyDays: pair.optional(),
      frequency: pair.optional(),
      monetary: pair.optional(),
      windowDays: days.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('lifecycle'),
      event: name.optional(),
      newDays: days.optional(),
      activeDays: days.optional(),
      churnDays: days.optional(),
    })
    .strict(),
  z.object({ kind: z.literal('active_hour'), event: name.optional(), within: window.optional() }).strict(),
  ...Object.values(KINDS).map((k) => k.schema),
]) as z.ZodType<ComputedTraitDefinition>;

/** A computed trait compiled for one instant. */
export interface CompiledComputedTrait {
  /** One row per profile in scope that has a value: `id`, `v` (jsonb). */
  values(ids?: readonly string[]): Fragment;
}

function scoped(body: (scopeName: Fragment) => Fragment, ids?: readonly string[]): Fragment {
  const scope = ids
    ? sql`SELECT p.id FROM profiles p WHERE p.id = ANY(${[...ids]}::uuid[]) AND p.merged_into IS NULL`
    : sql`SELECT p.id FROM profiles p WHERE p.merged_into IS NULL`;
  return sql`WITH scope AS MATERIALIZED (${scope})\n${body(sql`scope`)}`;
}

function events(event: string | undefined): Fragment {
  return event ? sql`e.event = ${event}::text` : sql`true`;
}

/**
 * Compiles a computed trait to SQL giving each profile's value at `now` (absent: no value).
 *
 * @example
 * const { text, values } = compileComputedTrait({ kind: 'rfm' }, { now: new Date() }).values().render();
 */
export function compileComputedTrait(def: ComputedTraitDefinition, options: { now: Date }): CompiledComputedTrait {
  const nowMs = options.now.getTime();
  if (isKind(def)) return { values: (ids) => KINDS[def.kind]!.compile(def, nowMs, ids) };
  const now = sql`${iso(nowMs)}::timestamptz`;
  if (def.kind === 'aggregate') {
    const prop = def.property ? sql`(e.payload #> ${propertyPath(def.property)}::text[])` : null;
    const where = sql`${events(def.event)}${windowSql(def.within, nowMs)}${filtersSql(def, nowMs)}`;
    const value: Record<typeof def.fn, Fragment> = {
      count: sql`to_jsonb(count(*))`,
      sum: sql`to_jsonb(coalesce(sum(cairn_num(${prop})), 0))`,
      avg: sql`to_jsonb(round(avg(cairn_num(${prop})), 6))`,
      min: sql`to_jsonb(min(cairn_num(${prop})))`,
      max: sql`to_jsonb(max(cairn_num(${prop})))`,
      first: prop ? sql`(array_agg(${prop} ORDER BY e.timestamp, e.id))[1]` : sql`to_jsonb(min(e.timestamp))`,
      last: prop ? sql`(array_agg(${prop} ORDER BY e.timestamp DESC, e.id DESC))[1]` : sql`to_jsonb(max(e.timestamp))`,
      most_frequent: sql`to_jsonb(mode() WITHIN GROUP (ORDER BY cairn_text(${prop})))`,
      unique_count: sql`to_jsonb(count(DISTINCT cairn_text(${prop})))`,
    };
    return {
      values: (ids) =>
        scoped(
          () => sql`
            SELECT x.id::text AS id, x.v FROM (
              SELECT e.profile_id AS id, ${value[def.fn]} AS v
              FROM events e JOIN scope s ON s.id = e.profile_id
              WHERE ${where}
              GROUP BY e.profile_id) x
            WHERE x.v IS NOT NULL AND x.v <> 'null'::jsonb`,
          ids,
        ),
    };
  }
  if (def.kind === 'rfm') {
    const d = { ...RFM_DEFAULTS, ...def };
    const since = sql`${iso(nowMs - d.windowDays * DAY_MS)}::timestamptz`;
    return {
      values: (ids) =>
        scoped(
          () => sql`
            SELECT id::text AS id, jsonb_build_object(
                'r', r, 'f', f, 'm', m, 'score', r + f + m,
                'segment', CASE WHEN r + f + m <= 5 THEN 'high value' WHEN r + f + m <= 7 THEN 'potential' ELSE 'at risk' END,
                'recency_days', recency, 'orders', orders, 'revenue', revenue) AS v
            FROM (
              SELECT id, recency, orders, revenue,
                CASE WHEN recency <= ${d.recencyDays[0]}::numeric THEN 1 WHEN recency <= ${d.recencyDays[1]}::numeric THEN 2 ELSE 3 END AS r,
                CASE WHEN orders >= ${d.frequency[0]}::int THEN 1 WHEN orders >= ${d.frequency[1]}::int THEN 2 ELSE 3 END AS f,
                CASE WHEN revenue >= ${d.monetary[0]}::numeric THEN 1 WHEN revenue >= ${d.monetary[1]}::numeric THEN 2 ELSE 3 END AS m
              FROM (
                SELECT e.profile_id AS id,
                  floor(extract(epoch FROM (${now} - max(e.timestamp))) / 86400)::int AS recency,
                  (count(*) FILTER (WHERE e.timestamp > ${since}))::int AS orders,
                  coalesce(sum(cairn_num(e.payload #> ${propertyPath(d.property)}::text[])) FILTER (WHERE e.timestamp > ${since}), 0) AS revenue
                FROM events e JOIN scope s ON s.id = e.profile_id
                WHERE e.event = ${d.event}::text AND e.timestamp <= ${now}
                GROUP BY e.profile_id) t) tiers`,
          ids,
        ),
    };
  }
  if (def.kind === 'lifecycle') {
    const d = { ...LIFECYCLE_DEFAULTS, ...def };
    const ago = (n: number) => sql`${iso(nowMs - n * DAY_MS)}::timestamptz`;
    return {
      values: (ids) =>
        scoped(
          () => sql`
            SELECT id::text AS id, to_jsonb(CASE
                WHEN first_at > ${ago(d.newDays)} THEN 'new'
                WHEN last_at > ${ago(d.activeDays)} AND comeback THEN 'won_back'
                WHEN last_at > ${ago(d.activeDays)} THEN 'active'
                WHEN last_at > ${ago(d.churnDays)} THEN 'dormant'
                ELSE 'churned' END) AS v
            FROM (
              SELECT id, min(ts) AS first_at, max(ts) AS last_at,
                -- Back within the active period after a silence as long as the churn threshold.
                bool_or(ts > ${ago(d.activeDays)} AND gap >= ${d.churnDays * 86400}::numeric) AS comeback
              FROM (
                SELECT e.profile_id AS id, e.timestamp AS ts,
                  extract(epoch FROM e.timestamp - lag(e.timestamp) OVER (PARTITION BY e.profile_id ORDER BY e.timestamp)) AS gap
                FROM events e JOIN scope s ON s.id = e.profile_id
                WHERE ${events(d.event)} AND e.timestamp <= ${now}) a
              GROUP BY id) l`,
          ids,
        ),
    };
  }
  const where = sql`${events(def.event)}${windowSql(def.within, nowMs)}`;
  return {
    values: (ids) =>
      scoped(
        () => sql`
          SELECT e.profile_id::text AS id,
            to_jsonb(mode() WITHIN GROUP (ORDER BY extract(hour FROM e.timestamp AT TIME ZONE 'UTC')::int)) AS v
          FROM events e JOIN scope s ON s.id = e.profile_id
          WHERE ${where}
          GROUP BY e.profile_id`,
        ids,
      ),
  };
}

/**
 * Profiles whose value may have changed because time moved from `since` to `now` (null: never).
 *
 * @example
 * const edges = computedTraitEdges({ kind: 'rfm' }, since, now);
 */
export function computedTraitEdges(def: ComputedTraitDefinition, since: Date, now: Date): Fragment | null {
  const [a, b] = [since.getTime(), now.getTime()];
  if (isKind(def)) return KINDS[def.kind]!.edges(def, a, b);
  const spans = (event: string | undefined, list: number[]) =>
    sql`SELECT e.profile_id AS id FROM events e WHERE ${events(event)} AND e.profile_id IS NOT NULL AND (${join(
      list.map(
        (span) => sql`(e.timestamp >= ${iso(a - span)}::timestamptz AND e.timestamp <= ${iso(b - span)}::timestamptz)`,
      ),
      sql` OR `,
    )})`;
  if (def.kind === 'aggregate' || def.kind === 'active_hour') {
    if (def.kind === 'aggregate') return windowEdges({ event: def.event }, def.within, a, b);
    return def.within && 'last' in def.within ? windowEdges({ event: def.event ?? '' }, def.within, a, b) : null;
  }
  if (def.kind === 'rfm') {
    const d = { ...RFM_DEFAULTS, ...def };
    // Recency tiers move a day at a time; frequency and revenue when orders leave the window.
    return spans(d.event, [0, ...d.recencyDays.map((x) => x * DAY_MS), d.windowDays * DAY_MS, DAY_MS]);
  }
  const d = { ...LIFECYCLE_DEFAULTS, ...def };
  return spans(def.event, [0, d.newDays * DAY_MS, d.activeDays * DAY_MS, d.churnDays * DAY_MS]);
}

/**
 * A computed trait in words.
 *
 * @example
 * describeComputedTrait({ kind: 'aggregate', fn: 'avg', event: 'Order Completed', property: 'total' });
 */
export function describeComputedTrait(def: ComputedTraitDefinition): string {
  if (isKind(def)) return KINDS[def.kind]!.describe(def);
  if (def.kind === 'aggregate')
    return `${def.fn.replace('_', ' ')}${def.property ? ` of ${def.property}` : def.fn === 'first' || def.fn === 'last' ? ' time' : ''} over ${describeMatch(def)}${describeWindow(def.within)}`;
  if (def.kind === 'rfm') {
    const d = { ...RFM_DEFAULTS, ...def };
    return `RFM of "${d.event}" (${d.property}): recency <= ${d.recencyDays[0]}/${d.recencyDays[1]} days, orders >= ${d.frequency[0]}/${d.frequency[1]} and revenue >= ${d.monetary[0]}/${d.monetary[1]} in ${d.windowDays} days`;
  }
  if (def.kind === 'lifecycle') {
    const d = { ...LIFECYCLE_DEFAULTS, ...def };
    return `lifecycle stage from ${def.event ? `"${def.event}"` : 'any event'}: new within ${d.newDays} days, active within ${d.activeDays}, churned after ${d.churnDays}`;
  }
  return `most active hour (UTC) of ${def.event ? `"${def.event}"` : 'any event'}${describeWindow(def.within)}`;
}
