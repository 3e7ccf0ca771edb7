import { z } from 'zod';
import { type ComputedKind, DAY_MS, eventsNamed, inScope, iso, spanEdges } from './computed-kinds.ts';
import { propertyPath } from './ops/events.ts';
import { type Fragment, sql } from './sql.ts';

/** Behaviour preferences: built-in computed traits about when, what and how a person buys. */
export type PreferenceDefinition =
  | {
      /** Most active hour of day (0-23) or ISO weekday (1 Monday .. 7 Sunday) in the person's time zone. */
      kind: 'active_time';
      part: 'hour' | 'weekday';
      /** Only these events (default: every event the person sent). */
      events?: string[];
      withinDays?: number;
    }
  | {
      /** The property value with the largest recency-weighted count (weight 2^(-age / half-life)). */
      kind: 'preferred';
      event: string;
      property: string;
      halfLifeDays?: number;
    }
  | {
      /** Coupons issued and redeemed in a window, and the redemption rate. */
      kind: 'coupons';
      issued?: string;
      redeemed?: string;
      windowDays?: number;
    }
  | {
      /** Share of orders with a discount (a positive discount or a coupon code). */
      kind: 'price_sensitivity';
      event?: string;
      discountProperty?: string;
      couponProperty?: string;
      windowDays?: number;
    }
  | {
      /** Median days between consecutive orders (two orders at least). */
      kind: 'repurchase_cycle';
      event?: string;
    }
  | {
      /** The channel with the largest recency-weighted count of human opens and clicks (stage 6's events). */
      kind: 'preferred_channel';
      halfLifeDays?: number;
    };

export const PREFERENCE_DEFAULTS = {
  activeWithinDays: 90,
  halfLifeDays: 30,
  /** The built-in message plugins' channels (a destination's own `channel` wins). */
  pluginChannels: { 'email-smtp': 'email', 'sms-http': 'sms', slack: 'chat' } as Record<string, string>,
  coupons: { issued: 'Coupon Issued', redeemed: 'Coupon Redeemed', windowDays: 180 },
  orders: { event: 'Order Completed', discountProperty: 'discount', couponProperty: 'coupon' },
};

type Of<K extends PreferenceDefinition['kind']> = Extract<PreferenceDefinition, { kind: K }>;

const name = z.string().min(1).max(200);
const path = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated property path');
const days = z.number().int().min(1).max(36_600);
const prop = (p: string) => sql`(e.payload #> ${propertyPath(p)}::text[])`;
const windowed = (d: number | undefined, nowMs: number) =>
  d
    ? sql` AND e.timestamp > ${iso(nowMs - d * DAY_MS)}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz`
    : sql``;

// The person's zone: a valid `timezone` trait, else the event's own context.timezone, else UTC. Unknown
// names fall through (AT TIME ZONE would fail the statement); pg_timezone_names is read once per statement
// (a materialised CTE with distinct names: joined directly, its 1,000-row estimate misled the planner).
const LOCAL_TS = sql`(e.timestamp AT TIME ZONE coalesce(tz.name, ez.name, 'UTC'))`;
const ZONE_JOINS = sql`
  LEFT JOIN profile_traits t ON t.profile_id = e.profile_id AND t.key = 'timezone'
  LEFT JOIN zones tz ON tz.name = t.value #>> '{}'
  LEFT JOIN zones ez ON ez.name = e.payload #>> '{context,timezone}'`;

/** Σ 2^(-age / half-life) relative to now, clamped where 2^x would underflow, rounded so that sums compare exactly. */
const decayed = (halfLifeDays: number, nowMs: number) =>
  sql`round(sum(power(2::float8, greatest(-1000::float8,
    extract(epoch FROM e.timestamp - ${iso(nowMs)}::timestamptz)::float8 / ${halfLifeDays * 86_400}::float8)))::numeric, 9)`;

/** The top key per profile from rows (id, k, n): largest n, ties to the smallest key. */
function top(counted: Fragment, ids?: readonly string[]): Fragment {
  return inScope(
    sql`SELECT id::text AS id, to_jsonb(k) AS v FROM (
      SELECT id, k, row_number() OVER (PARTITION BY id ORDER BY n DESC, k) AS rn FROM (${counted}) c) r
    WHERE rn = 1`,
    ids,
  );
}

const activeTime: ComputedKind<Of<'active_time'>> = {
  schema: z
    .object({
      kind: z.literal('active_time'),
      part: z.enum(['hour', 'weekday']),
      events: z.array(name).max(50).optional(),
      withinDays: days.optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const within = def.withinDays ?? PREFERENCE_DEFAULTS.activeWithinDays;
    const field = def.part === 'hour' ? sql`hour` : sql`isodow`;
    return top(
      sql`WITH zones AS MATERIALIZED (SELECT DISTINCT name FROM pg_timezone_names)
        SELECT e.profile_id AS id, extract(${field} FROM ${LOCAL_TS})::int AS k, count(*) AS n
        FROM events e JOIN scope s ON s.id = e.profile_id ${ZONE_JOINS}
        WHERE ${eventsNamed(def.events)}${windowed(within, nowMs)}
        GROUP BY 1, 2`,
      ids,
    );
  },
  edges: (def, since, now) =>
    spanEdges(eventsNamed(def.events), [(def.withinDays ?? PREFERENCE_DEFAULTS.activeWithinDays) * DAY_MS], since, now),
  describe: (def) =>
    `most active ${def.part === 'hour' ? 'hour of day (0-23)' : 'weekday (1 Monday .. 7 Sunday)'} in the person's time zone, over ${def.events?.length ? def.events.map((e) => `"${e}"`).join(', ') : 'every event'} in the last ${def.withinDays ?? PREFERENCE_DEFAULTS.activeWithinDays} days`,
  dependencies: (def) => ({ events: def.events?.length ? def.events : ['*'], traits: ['timezone'], timeBound: true }),
};

const preferred: ComputedKind<Of<'preferred'>> = {
  schema: z
    .object({
      kind: z.literal('preferred'),
      event: name,
      property: path,
      halfLifeDays: z.number().min(0.01).max(36_600).optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const h = def.halfLifeDays ?? PREFERENCE_DEFAULTS.halfLifeDays;
    // Weights relative to now: every weight scales alike as time passes, so the winner changes only with
    // events (no sweep).
    return top(
      sql`SELECT e.profile_id AS id, cairn_text(${prop(def.property)}) AS k, ${decayed(h, nowMs)} AS n
        FROM events e JOIN scope s ON s.id = e.profile_id
        WHERE e.event = ${def.event}::text AND cairn_text(${prop(def.property)}) IS NOT NULL
        GROUP BY 1, 2`,
      ids,
    );
  },
  edges: () => null,
  describe: (def) =>
    `${def.property} of "${def.event}" with the largest recency-weighted count (half-life ${def.halfLifeDays ?? PREFERENCE_DEFAULTS.halfLifeDays} days)`,
  dependencies: (def) => ({ events: [def.event], timeBound: false }),
};

const coupons: ComputedKind<Of<'coupons'>> = {
  schema: z
    .object({
      kind: z.literal('coupons'),
      issued: name.optional(),
      redeemed: name.optional(),
      windowDays: days.optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const d = { ...PREFERENCE_DEFAULTS.coupons, ...def };
    return inScope(
      sql`SELECT id::text AS id, jsonb_build_object('issued', i, 'redeemed', r,
          'rate', CASE WHEN i > 0 THEN round(least(1, r::numeric / i), 4) END) AS v
        FROM (
          SELECT e.profile_id AS id,
            count(*) FILTER (WHERE e.event = ${d.issued}::text)::int AS i,
            count(*) FILTER (WHERE e.event = ${d.redeemed}::text)::int AS r
          FROM events e JOIN scope s ON s.id = e.profile_id
          WHERE e.event IN (${d.issued}::text, ${d.redeemed}::text)${windowed(d.windowDays, nowMs)}
          GROUP BY 1) c`,
      ids,
    );
  },
  edges(def, since, now) {
    const d = { ...PREFERENCE_DEFAULTS.coupons, ...def };
    return spanEdges(sql`e.event IN (${d.issued}::text, ${d.redeemed}::text)`, [d.windowDays * DAY_MS], since, now);
  },
  describe(def) {
    const d = { ...PREFERENCE_DEFAULTS.coupons, ...def };
    return `coupons "${d.issued}" and "${d.redeemed}" in the last ${d.windowDays} days, and the redemption rate`;
  },
  dependencies(def) {
    const d = { ...PREFERENCE_DEFAULTS.coupons, ...def };
    return { events: [d.issued, d.redeemed], timeBound: true };
  },
};

const priceSensitivity: ComputedKind<Of<'price_sensitivity'>> = {
  schema: z
    .object({
      kind: z.literal('price_sensitivity'),
      event: name.optional(),
      discountProperty: path.optional(),
      couponProperty: path.optional(),
      windowDays: days.optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const d = { ...PREFERENCE_DEFAULTS.orders, ...def };
    return inScope(
      sql`SELECT e.profile_id::text AS id, to_jsonb(round(
          (count(*) FILTER (WHERE coalesce(cairn_num(${prop(d.discountProperty)}), 0) > 0
            OR coalesce(cairn_text(${prop(d.couponProperty)}), '') <> ''))::numeric / count(*), 4)) AS v
        FROM events e JOIN scope s ON s.id = e.profile_id
        WHERE e.event = ${d.event}::text${windowed(d.windowDays, nowMs)}
        GROUP BY 1`,
      ids,
    );
  },
  edges(def, since, now) {
    const d = { ...PREFERENCE_DEFAULTS.orders, ...def };
    return d.windowDays ? spanEdges(sql`e.event = ${d.event}::text`, [d.windowDays * DAY_MS], since, now) : null;
  },
  describe(def) {
    const d = { ...PREFERENCE_DEFAULTS.orders, ...def };
    return `share of "${d.event}" with ${d.discountProperty} > 0 or a ${d.couponProperty}${d.windowDays ? ` in the last ${d.windowDays} days` : ''}`;
  },
  dependencies: (def) => ({ events: [def.event ?? PREFERENCE_DEFAULTS.orders.event], timeBound: !!def.windowDays }),
};

const repurchaseCycle: ComputedKind<Of<'repurchase_cycle'>> = {
  schema: z.object({ kind: z.literal('repurchase_cycle'), event: name.optional() }).strict(),
  compile(def, _nowMs, ids) {
    const event = def.event ?? PREFERENCE_DEFAULTS.orders.event;
    return inScope(
      sql`SELECT id::text AS id, to_jsonb(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY gap)::numeric / 86400, 2)) AS v
        FROM (
          SELECT e.profile_id AS id,
            extract(epoch FROM e.timestamp - lag(e.timestamp) OVER (PARTITION BY e.profile_id ORDER BY e.timestamp, e.id))::float8 AS gap
          FROM events e JOIN scope s ON s.id = e.profile_id
          WHERE e.event = ${event}::text) g
        WHERE gap IS NOT NULL
        GROUP BY id`,
      ids,
    );
  },
  edges: () => null,
  describe: (def) => `median days between consecutive "${def.event ?? PREFERENCE_DEFAULTS.orders.event}"`,
  dependencies: (def) => ({ events: [def.event ?? PREFERENCE_DEFAULTS.orders.event], timeBound: false }),
};

const preferredChannel: ComputedKind<Of<'preferred_channel'>> = {
  schema: z
    .object({ kind: z.literal('preferred_channel'), halfLifeDays: z.number().min(0.01).max(36_600).optional() })
    .strict(),
  compile(def, nowMs, ids) {
    const h = def.halfLifeDays ?? PREFERENCE_DEFAULTS.halfLifeDays;
    // The channel of the message's destination (its own, else its plugin's); an open without one is an email's.
    // Opens and clicks classified as machines' (privacy proxies, scanners) do not count.
    return top(
      sql`SELECT id, k, ${decayed(h, nowMs)} AS n FROM (
          SELECT e.profile_id AS id, e.timestamp,
            coalesce(d.channel, ${JSON.stringify(PREFERENCE_DEFAULTS.pluginChannels)}::text::jsonb ->> d.plugin,
              CASE WHEN e.event = 'Email Opened' THEN 'email' END) AS k
          FROM events e JOIN scope s ON s.id = e.profile_id
          LEFT JOIN destinations d ON d.id = e.payload #>> '{properties,destinationId}'
          WHERE e.event IN ('Email Opened', 'Link Clicked')
            AND coalesce(e.payload #> '{properties,machine}', 'false') <> 'true'::jsonb) e
        WHERE k IS NOT NULL
        GROUP BY 1, 2`,
      ids,
    );
  },
  edges: () => null,
  describe: (def) =>
    `channel with the most human opens and clicks, weighted by recency (half-life ${def.halfLifeDays ?? PREFERENCE_DEFAULTS.halfLifeDays} days)`,
  dependencies: () => ({ events: ['Email Opened', 'Link Clicked'], timeBound: false }),
};

/**
 * The preference kinds, by `kind`.
 *
 * @example
 * PREFERENCE_KINDS.active_time.describe({ kind: 'active_time', part: 'weekday' });
 */
export const PREFERENCE_KINDS = {
  active_time: activeTime,
  preferred,
  coupons,
  price_sensitivity: priceSensitivity,
  repurchase_cycle: repurchaseCycle,
  preferred_channel: preferredChannel,
};
