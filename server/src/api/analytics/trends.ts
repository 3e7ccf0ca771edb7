import {
  bucketStarts,
  foldTrends,
  OTHER_GROUP,
  percentChange,
  previousRange,
  type RolledProperty,
  rollupSource,
  rollupWindow,
  ruleSql,
  type TimeInterval,
  type TimeRange,
  TREND_LIMITS,
  TREND_MEASURES,
  type TrendBreakdown,
  type TrendSeries,
  type TrendSeriesResult,
  trendsQuery,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import { apiError } from '../../http/errors.ts';
import type { Pii } from '../../pii/index.ts';
import type { AnalyticsReader } from '../../pipeline/measure/reader.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, IntervalSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { BEFORE_RETENTION, type HorizonGuard, type trendReads } from './horizon.ts';
import { PERIOD_REGISTRY, periodKeyOf, trendRowsWithPeriods } from './trends-period.ts';
import { TRAIT_REGISTRY, type TraitRollupRow, traitKeyOf, trendRowsWithTraits } from './trends-traits.ts';

/** A dot path under an event's properties, as a series' `property` or a breakdown is written. */
export const dotPath = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated path (e.g. total or order.total)');

/** One series of a trend (a KPI holds one too). */
export const SeriesSchema = z
  .object({
    events: EventMatchSchema,
    measure: z.enum(TREND_MEASURES as [string, ...string[]]).openapi({
      description:
        'count: events; people: distinct people after merges; sum / avg: of `property` (JSON numbers only: strings, booleans and missing values are ignored)',
    }),
    property: dotPath.optional().openapi({ description: 'For sum and avg: a dot path under the event’s properties' }),
    name: z.string().min(1).max(100).optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.measure === 'sum' || s.measure === 'avg') && !s.property)
      ctx.addIssue({ code: 'custom', path: ['property'], message: `required for measure ${s.measure}` });
    if ((s.measure === 'count' || s.measure === 'people') && s.property)
      ctx.addIssue({ code: 'custom', path: ['property'], message: `only sum and avg read a property` });
  })
  .openapi('TrendSeries');

const BreakdownSchema = z
  .union([
    z.strictObject({ property: dotPath.openapi({ description: 'A dot path under the event’s properties' }) }),
    z.strictObject({
      trait: z.string().min(1).max(200).openapi({ description: 'A trait, by the person’s current value' }),
    }),
  ])
  .openapi('TrendBreakdown');

export const TrendsBodySchema = z
  .object({
    range: RangeSchema,
    interval: IntervalSchema,
    series: z.array(SeriesSchema).min(1).max(TREND_LIMITS.series),
    breakdown: BreakdownSchema.optional(),
    limit: z
      .number()
      .int()
      .min(1)
      .max(TREND_LIMITS.maxGroups)
      .optional()
      .openapi({
        description: `Breakdown groups shown per series (default ${TREND_LIMITS.groups}); the rest are $other`,
      }),
    compare: z.enum(['previous']).optional().openapi({ description: 'Also answer the period just before' }),
  })
  .openapi('TrendsQuery');

const values = z.array(z.number().nullable());
const LineSchema = z.object({
  values: values.openapi({ description: 'One value per bucket (0 where nothing happened; avg: null)' }),
  total: z.number().nullable().openapi({ description: 'Over the whole range (people: distinct over the range)' }),
  previous: z.object({ values, total: z.number().nullable() }).optional(),
  change: z.number().nullable().optional().openapi({ description: 'Change of the total from the previous period, %' }),
});
const TrendsAnswerSchema = z
  .object({
    interval: IntervalSchema,
    buckets: z.array(z.string()).openapi({ description: 'Bucket starts (ISO, UTC) in the range’s time zone' }),
    previous: z.object({ range: RangeSchema, buckets: z.array(z.string()) }).optional(),
    series: z.array(
      LineSchema.extend({
        name: z.string(),
        measure: z.string(),
        groups: z.array(LineSchema.extend({ group: z.string().nullable() })).optional(),
      }),
    ),
    meta: ReadMetaSchema.extend({
      rollup: z.boolean().openapi({ description: 'Whether some series read whole hours from the hourly rollups' }),
      sources: z.array(z.string()).openapi({
        description:
          'Per series, where its whole hours were read: counts, people, values (a rolled-up property), period_people (people per day of a kept zone and event: the whole answer), traits (a breakdown by a kept trait: whole local days) or events (a scan)',
      }),
      notes: z.array(z.string()).openapi({ description: 'How the numbers were counted' }),
    }),
  })
  .openapi('TrendsAnswer');

/** The body of `POST /api/analytics/trends` (scheduled reports hold these too). */
export type TrendsBody = z.infer<typeof TrendsBodySchema>;
type Body = TrendsBody;
/** What running trends needs: the analytics reader (stage 6's), PII rules and the clock. */
export interface TrendsDeps {
  measure: { reader: AnalyticsReader };
  pii: Pii;
  now: () => Date;
}
/** The answer of `POST /api/analytics/trends`. */
export type TrendsAnswer = z.infer<typeof TrendsAnswerSchema>;

/**
 * `POST /api/analytics/trends`: up to 10 series (events, people, sum or mean of a property) per bucket
 * of hour/day/week/month in a time zone, optionally broken down by a property or a person's current
 * trait (top groups, the rest `$other`) and compared with the period before.
 *
 * @example
 * analytics.route('/', trendsApi(deps));
 */
export function trendsApi(deps: TrendsDeps & { horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/trends',
      tags: ['Analytics'],
      summary: 'Trends: events, people, sums and means over time, broken down and compared',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: TrendsBodySchema } }, required: true } },
      responses: {
        200: json(TrendsAnswerSchema, 'Per series (and group): a value per bucket and the total'),
        400: json(ErrorSchema, 'Invalid query (too many buckets, a sensitive breakdown, ...)'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json') as Body;
      // Tiles the hourly rollups answer wholly are not refused: they keep what dropped events counted.
      await deps.horizon.refuseTrend(body as Parameters<typeof trendReads>[0]);
      return c.json((await runTrends(deps, body, c.req.raw.signal)) as never, 200);
    },
  );
  return app;
}

/**
 * Runs a trends query (validated with {@link TrendsBodySchema}) as `POST /api/analytics/trends` answers it;
 * scheduled reports run their queries through here. Bad input throws a 400 `apiError`.
 *
 * @example
 * const answer = await runTrends(deps, { range, interval: 'day', series, compare: 'previous' }, signal);
 */
export async function runTrends(deps: TrendsDeps, body: Body, signal: AbortSignal): Promise<TrendsAnswer> {
  const started = performance.now();
  const range = body.range as TimeRange;
  const interval = body.interval as TimeInterval;
  const series = body.series as (TrendSeries & { name?: string })[];
  const breakdown = body.breakdown as TrendBreakdown | undefined;
  if (breakdown) {
    const key = 'trait' in breakdown ? breakdown.trait : breakdown.property.split('.')[0]!;
    if (deps.pii.isSensitive(key))
      throw apiError(
        400,
        'invalid_request',
        `breakdown: ${key} is a sensitive ${'trait' in breakdown ? 'trait' : 'property'} (stored sealed): it cannot be a breakdown`,
      );
  }
  for (const [i, s] of series.entries())
    if (s.property && deps.pii.isSensitive(s.property.split('.')[0]!))
      throw apiError(400, 'invalid_request', `series[${i}].property: ${s.property} is sensitive (stored sealed)`);
  const starts = bucketsOf(range, interval, 'range');
  const now = deps.now();
  const reader = deps.measure.reader.pin();
  const opts = { series, buckets: starts.length, breakdown: !!breakdown };
  // Series chosen by name and type in whole-hour zones read whole hours from the hourly rollups (counts,
  // people, rolled-up properties); the edges' partial hours, and every other series, scan events.
  const rolled = await reader.rows<RolledProperty>(ROLLED_PROPERTIES);
  // People per day, week or month in a kept zone read the per-day people rollup (trends-period.ts).
  const registry = await reader.rows<{ kind: string; value: string }>(PERIOD_REGISTRY);
  const keysOf = (r: TimeRange) => series.map((s) => periodKeyOf(s, { interval, range: r, breakdown, registry }));
  const keys = keysOf(range);
  // A breakdown by a trait of a kept (trait, event, property, zone) reads the trait rollup (trends-traits.ts).
  const trait = breakdown && 'trait' in breakdown ? breakdown.trait : undefined;
  const traitRegistry = trait ? await reader.rows<TraitRollupRow>(TRAIT_REGISTRY) : [];
  const traitKeysOf = (r: TimeRange) =>
    series.map((s) => traitKeyOf(s, { interval, range: r, breakdown, registry: traitRegistry }));
  const traitKeys = traitKeysOf(range);
  const sources = series.map((s, i) =>
    keys[i] ? 'period_people' : traitKeys[i] ? 'traits' : rollupSource(s, breakdown, rolled),
  );
  const rolls = sources.some((x) => x !== null && x !== 'period_people' && x !== 'traits');
  const rollup = (r: TimeRange, s: string[]) => (rolls ? (rollupWindow(r, s) ?? undefined) : undefined);
  const window = rollup(range, starts);
  // Series of a trait breakdown: from the trait rollup where kept, the rest scanned.
  const rowsOf = (
    r: TimeRange,
    s: string[],
    scan: (rest: TrendSeries[], keep?: (string | null)[][]) => ReturnType<typeof trendsQuery>,
    periodKeys: ReturnType<typeof keysOf>,
    keep?: (string | null)[][],
  ) => {
    const tk = traitKeysOf(r);
    if (trait && tk.some(Boolean))
      return trendRowsWithTraits(
        reader,
        { keys: tk, series, trait, range: r, starts: s, limit: body.limit, keep, now },
        scan,
        signal,
      );
    return trendRowsWithPeriods(
      reader,
      { keys: periodKeys, series, range: r, starts: s, now },
      (rest) => scan(rest, keep),
      signal,
    );
  };
  const current = foldTrends(
    await rowsOf(
      range,
      starts,
      (rest) => trendsQuery({ range, starts, series: rest, breakdown, limit: body.limit, now, rollup: window, rolled }),
      keys,
    ),
    opts,
  );
  let previous: { range: TimeRange; buckets: string[] } | undefined;
  if (body.compare === 'previous') {
    const prevRange = previousRange(range, interval);
    const prevStarts = bucketsOf(prevRange, interval, 'previous range');
    // The previous period keeps the current groups (the rest is $other there too).
    const keep = breakdown ? current.map((s) => (s.groups ?? []).map((g) => g.group)) : undefined;
    const before = foldTrends(
      await rowsOf(
        prevRange,
        prevStarts,
        (rest, kept) =>
          trendsQuery({
            range: prevRange,
            starts: prevStarts,
            series: rest,
            breakdown,
            keep: kept,
            now,
            rollup: rollup(prevRange, prevStarts),
            rolled,
          }),
        keysOf(prevRange),
        keep,
      ),
      { ...opts, buckets: prevStarts.length },
    );
    for (const [i, s] of current.entries())
      attachPrevious(s, before[i]!, series[i]!.measure, [starts.length, prevStarts.length]);
    previous = { range: prevRange, buckets: prevStarts };
  }
  const meta = await reader.meta();
  return {
    interval,
    buckets: starts,
    ...(previous ? { previous } : {}),
    series: current.map((s, i) => ({
      name: series[i]!.name ?? defaultName(series[i]!),
      measure: series[i]!.measure,
      ...s,
    })),
    meta: {
      ...meta,
      tookMs: Math.round(performance.now() - started),
      rollup: !!window,
      sources: sources.map((x) => (x === 'period_people' || x === 'traits' || (window && x) ? x : 'events')),
      notes: [
        ...(window
          ? [
              'whole hours read from the hourly rollups (kept by the pipeline, a few seconds behind attached events); the partial hours at the edges from events',
            ]
          : []),
        ...rollupNotes(series, sources, breakdown, window !== undefined),
        'people: distinct persons after identity merges (events not yet attached to a profile are left out)',
        ...(series.some((s) => s.measure === 'sum' || s.measure === 'avg')
          ? ['sum/avg: only JSON numbers are read; strings, booleans and missing values are ignored']
          : []),
        ...(breakdown
          ? [
              `breakdown: top ${body.limit ?? TREND_LIMITS.groups} groups per series by total (avg: by values averaged), the rest as ${OTHER_GROUP}; null is no value${'trait' in breakdown ? '; a person counts under their current trait value' : ''}`,
            ]
          : []),
      ],
    },
  };
}

// The rolled-up properties (a handful of rows): which sums and breakdowns a tile can read from a rollup.
const ROLLED_PROPERTIES = ruleSql`SELECT event, property, by_value AS "byValue" FROM analytics_rollup_properties`;

// Why series scan events: the answer says so, naming what a team can roll up.
function rollupNotes(
  series: readonly TrendSeries[],
  sources: readonly (string | null)[],
  breakdown: TrendBreakdown | undefined,
  whole: boolean,
): string[] {
  const notes: string[] = [];
  if (!whole && sources.some((x) => x && x !== 'period_people' && x !== 'traits'))
    notes.push(
      'no whole-hour rollup window (a zone with a half-hour offset, or under an hour): every series scanned events',
    );
  for (const [i, s] of series.entries()) {
    if (sources[i] === 'period_people')
      notes.push(`series[${i}]: distinct people per day, week or month read from the per-day people rollup`);
    if (sources[i] === 'traits')
      notes.push(
        `series[${i}]: whole local days read from the trait rollup (people counted under their current value); partial days at the edges from events`,
      );
    if (sources[i]) continue;
    const why = s.events.where?.length
      ? 'conditions on properties'
      : breakdown && 'trait' in breakdown
        ? 'a breakdown by a trait'
        : breakdown
          ? `a breakdown by ${breakdown.property}, not rolled up by value for every event of the series`
          : s.measure === 'people'
            ? 'people of a named event or type'
            : `${s.property}, not rolled up for every event of the series`;
    notes.push(`series[${i}] scanned events (${why})`);
  }
  return notes;
}

function bucketsOf(range: TimeRange, interval: TimeInterval, what: string): string[] {
  try {
    return bucketStarts(range, interval);
  } catch (err) {
    if (err instanceof RangeError) throw apiError(400, 'invalid_request', `interval: ${what}: ${err.message}`);
    throw err;
  }
}

type Line = { values: (number | null)[]; total: number | null; previous?: object; change?: number | null };

// Adds the previous period to a series and its groups; a group only one period has is zero-filled in the other.
function attachPrevious(s: TrendSeriesResult, before: TrendSeriesResult, measure: string, buckets: number[]) {
  const empty = (n: number) =>
    measure === 'avg' ? { values: new Array(n).fill(null), total: null } : { values: new Array(n).fill(0), total: 0 };
  const add = (line: Line, prev: { values: (number | null)[]; total: number | null }) => {
    line.previous = { values: prev.values, total: prev.total };
    line.change = percentChange(line.total, prev.total);
  };
  add(s, before);
  if (!s.groups) return;
  for (const g of before.groups ?? [])
    if (!s.groups.some((x) => x.group === g.group)) s.groups.push({ group: g.group, ...empty(buckets[0]!) });
  for (const g of s.groups) add(g, before.groups?.find((x) => x.group === g.group) ?? empty(buckets[1]!));
}

function defaultName(s: TrendSeries): string {
  const ev = s.events.event === undefined ? 'events' : [s.events.event].flat().join(' or ');
  return s.measure === 'count' ? ev : s.measure === 'people' ? `people: ${ev}` : `${s.measure} of ${s.property}: ${ev}`;
}
