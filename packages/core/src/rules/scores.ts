import { z } from 'zod';
import { type ComputedKind, DAY_MS, eventsNamed, inScope, iso, spanEdges } from './computed-kinds.ts';
import { propertyPath } from './ops/events.ts';
import { join, sql } from './sql.ts';

/** Scores: activity, virality, and weighted sums the team defines over other computed traits. */
export type ScoreDefinition =
  | {
      /** Sum over events of weight × 2^(-age / half-life), age counted from the start of the UTC day. */
      kind: 'activity';
      halfLifeDays?: number;
      windowDays?: number;
      /** Only these events (default: every event the person sent). */
      events?: string[];
      /** Per-event weights (default 1). */
      weights?: Record<string, number>;
    }
  | {
      /** Shares, invites and sign-ups of others naming the person (by userId) in a referral property. */
      kind: 'virality';
      shares?: string[];
      invites?: string[];
      signup?: string;
      referralProperty?: string;
      windowDays?: number;
      weights?: { shares?: number; invites?: number; signups?: number };
    }
  | {
      /** Σ weight × the numeric value of a computed trait (a key, or key.path into an object value). */
      kind: 'weighted';
      terms: { trait: string; weight: number; missing?: number }[];
    };

export const SCORE_DEFAULTS = {
  activity: { halfLifeDays: 14, windowDays: 180 },
  virality: {
    shares: ['Product Shared'],
    invites: ['Invite Sent'],
    signup: 'Signed Up',
    referralProperty: 'referrer',
    weights: { shares: 1, invites: 1, signups: 3 },
  },
};

type Of<K extends ScoreDefinition['kind']> = Extract<ScoreDefinition, { kind: K }>;

const name = z.string().min(1).max(200);
const path = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated path');
const days = z.number().int().min(1).max(36_600);
const weight = z.number().min(-1_000_000).max(1_000_000);
const startOfDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

const activity: ComputedKind<Of<'activity'>> = {
  schema: z
    .object({
      kind: z.literal('activity'),
      halfLifeDays: z.number().min(0.01).max(36_600).optional(),
      windowDays: days.optional(),
      events: z.array(name).max(50).optional(),
      weights: z.record(name, weight).optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const d = { ...SCORE_DEFAULTS.activity, ...def };
    // Aged from the start of the UTC day: the score moves once a day (one sweep), not at every instant.
    const ref = startOfDay(nowMs);
    return inScope(
      sql`SELECT e.profile_id::text AS id, to_jsonb(round(sum(
          coalesce((${JSON.stringify(d.weights ?? {})}::text::jsonb ->> e.event)::float8, 1)
          * power(2::float8, greatest(-1000::float8, least(0::float8,
              extract(epoch FROM e.timestamp - ${iso(ref)}::timestamptz)::float8 / ${d.halfLifeDays * 86_400}::float8))))::numeric, 4)) AS v
        FROM events e JOIN scope s ON s.id = e.profile_id
        WHERE ${eventsNamed(d.events)}
          AND e.timestamp > ${iso(ref - d.windowDays * DAY_MS)}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz
        GROUP BY 1`,
      ids,
    );
  },
  edges(def, since, now) {
    const d = { ...SCORE_DEFAULTS.activity, ...def };
    if (startOfDay(since) === startOfDay(now)) return spanEdges(eventsNamed(d.events), [], since, now);
    // A new UTC day: every score in the window decays.
    return sql`SELECT DISTINCT e.profile_id AS id FROM events e
      WHERE ${eventsNamed(d.events)} AND e.profile_id IS NOT NULL
        AND e.timestamp > ${iso(startOfDay(since) - d.windowDays * DAY_MS)}::timestamptz AND e.timestamp <= ${iso(now)}::timestamptz`;
  },
  describe(def) {
    const d = { ...SCORE_DEFAULTS.activity, ...def };
    return `activity score: ${d.events?.length ? d.events.map((e) => `"${e}"`).join(', ') : 'every event'} weighted by 2^(-age / ${d.halfLifeDays} days) over ${d.windowDays} days`;
  },
  dependencies: (def) => ({ events: def.events?.length ? def.events : ['*'], timeBound: true }),
};

const virality: ComputedKind<Of<'virality'>> = {
  schema: z
    .object({
      kind: z.literal('virality'),
      shares: z.array(name).max(20).optional(),
      invites: z.array(name).max(20).optional(),
      signup: name.optional(),
      referralProperty: path.optional(),
      windowDays: days.optional(),
      weights: z.object({ shares: weight, invites: weight, signups: weight }).partial().strict().optional(),
    })
    .strict(),
  compile(def, nowMs, ids) {
    const d = { ...SCORE_DEFAULTS.virality, ...def };
    const w = { ...SCORE_DEFAULTS.virality.weights, ...def.weights };
    const win = d.windowDays
      ? sql` AND e.timestamp > ${iso(nowMs - d.windowDays * DAY_MS)}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz`
      : sql``;
    return inScope(
      sql`, own AS (
          SELECT e.profile_id AS id,
            count(*) FILTER (WHERE e.event = ANY(${d.shares}::text[]))::int AS shares,
            count(*) FILTER (WHERE e.event = ANY(${d.invites}::text[]))::int AS invites
          FROM events e JOIN scope s ON s.id = e.profile_id
          WHERE e.event = ANY(${[...d.shares, ...d.invites]}::text[])${win}
          GROUP BY 1),
        -- Sign-ups naming an inviter's userId: counted once per person signing up, never for oneself.
        referred AS (
          SELECT i.profile_id AS id, count(DISTINCT e.profile_id)::int AS signups
          FROM events e
          JOIN identities i ON i.type = 'userId' AND i.value = cairn_text(e.payload #> ${propertyPath(d.referralProperty)}::text[])
          JOIN scope s ON s.id = i.profile_id
          WHERE e.event = ${d.signup}::text AND e.profile_id IS NOT NULL AND e.profile_id <> i.profile_id${win}
          GROUP BY 1)
        SELECT id::text AS id, jsonb_build_object('shares', shares, 'invites', invites, 'signups', signups,
            'score', round(shares * ${w.shares}::numeric + invites * ${w.invites}::numeric + signups * ${w.signups}::numeric, 4)) AS v
        FROM (
          SELECT coalesce(o.id, r.id) AS id, coalesce(o.shares, 0) AS shares, coalesce(o.invites, 0) AS invites,
            coalesce(r.signups, 0) AS signups
          FROM own o FULL JOIN referred r ON r.id = o.id) x`,
      ids,
    );
  },
  edges(def, since, now) {
    const d = { ...SCORE_DEFAULTS.virality, ...def };
    const spans = d.windowDays ? [d.windowDays * DAY_MS] : [];
    // An inviter's count moves with someone else's event: the sweep picks up sign-ups attached since.
    return sql`${spanEdges(sql`e.event = ANY(${[...d.shares, ...d.invites]}::text[])`, spans, since, now)}
      UNION
      SELECT i.profile_id AS id FROM events e
      JOIN identities i ON i.type = 'userId' AND i.value = cairn_text(e.payload #> ${propertyPath(d.referralProperty)}::text[])
      WHERE e.event = ${d.signup}::text
        -- Attached to its profile since the last sweep (five minutes back: a late commit is not missed).
        AND ((e.processed_at > ${iso(since - 300_000)}::timestamptz)
          OR (e.timestamp > ${iso(since)}::timestamptz AND e.timestamp <= ${iso(now)}::timestamptz)${join(
            spans.map(
              (s) =>
                sql` OR (e.timestamp > ${iso(since - s)}::timestamptz AND e.timestamp <= ${iso(now - s)}::timestamptz)`,
            ),
            sql``,
          )})`;
  },
  describe(def) {
    const d = { ...SCORE_DEFAULTS.virality, ...def };
    const w = { ...SCORE_DEFAULTS.virality.weights, ...def.weights };
    return `virality: ${w.shares} × shares (${d.shares.join(', ')}) + ${w.invites} × invites (${d.invites.join(', ')}) + ${w.signups} × "${d.signup}" naming the person's userId in ${d.referralProperty}${d.windowDays ? ` in the last ${d.windowDays} days` : ''}`;
  },
  dependencies(def) {
    const d = { ...SCORE_DEFAULTS.virality, ...def };
    return { events: [...d.shares, ...d.invites, d.signup], timeBound: true };
  },
};

const weighted: ComputedKind<Of<'weighted'>> = {
  schema: z
    .object({
      kind: z.literal('weighted'),
      terms: z
        .array(z.object({ trait: path, weight, missing: weight.optional() }).strict())
        .min(1)
        .max(20),
    })
    .strict(),
  compile(def, _nowMs, ids) {
    const keys = [...new Set(def.terms.map((t) => t.trait.split('.')[0]!))];
    const term = (t: { trait: string; weight: number; missing?: number }) => {
      const [key, ...rest] = t.trait.split('.');
      const value = rest.length ? sql`c.value #> ${rest}::text[]` : sql`c.value`;
      return sql`${t.weight}::numeric * coalesce(max(cairn_num(${value})) FILTER (WHERE c.key = ${key}::text), ${t.missing ?? 0}::numeric)`;
    };
    return inScope(
      sql`SELECT c.profile_id::text AS id, to_jsonb(round(${join(def.terms.map(term), sql` + `)}, 4)) AS v
        FROM computed_trait_values c JOIN scope s ON s.id = c.profile_id
        WHERE c.key = ANY(${keys}::text[])
        GROUP BY 1`,
      ids,
    );
  },
  edges: () => null,
  describe: (def) => `weighted score: ${def.terms.map((t) => `${t.weight} × ${t.trait}`).join(' + ')}`,
  dependencies: (def) => ({ events: [], computed: def.terms.map((t) => t.trait.split('.')[0]!), timeBound: false }),
};

/**
 * The score kinds, by `kind`.
 *
 * @example
 * SCORE_KINDS.activity.describe({ kind: 'activity', halfLifeDays: 7 });
 */
export const SCORE_KINDS = { activity, virality, weighted };
