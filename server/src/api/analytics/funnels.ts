import {
  addAttempt,
  bucketStarts,
  describeEventFilter,
  type EventFilter,
  FUNNEL_LIMITS,
  FUNNEL_ORDERS,
  type FunnelCounts,
  type FunnelOrder,
  type FunnelPass,
  type FunnelQuery,
  funnelCounts,
  funnelStepStats,
  type TimeInterval,
  type TimeRange,
  WINDOW_UNITS,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import { apiError } from '../../http/errors.ts';
import type { Pii } from '../../pii/index.ts';
import type { MeasureStage, PinnedReader } from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, IntervalSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { readFunnel } from './funnel-read.ts';
import { BEFORE_RETENTION, type HorizonGuard } from './horizon.ts';

/** What the funnel routes read with (a part of the analytics routes' deps). */
export interface FunnelDeps {
  measure: MeasureStage;
  pii: Pii;
  now: () => Date;
}

const dotPath = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'a dot-separated path (e.g. plan or order.plan)');
const MAX_WINDOW_MS = FUNNEL_LIMITS.maxWindowDays * WINDOW_UNITS.days;

const StepSchema = z.object({
  events: EventMatchSchema,
  name: z.string().min(1).max(200).optional(),
});
const FunnelFields = {
  range: RangeSchema,
  steps: z
    .array(StepSchema)
    .min(FUNNEL_LIMITS.minSteps, `a funnel has at least ${FUNNEL_LIMITS.minSteps} steps`)
    .max(FUNNEL_LIMITS.maxSteps, `a funnel has at most ${FUNNEL_LIMITS.maxSteps} steps`),
  window: z
    .object({
      value: z.number().int().positive('the conversion window must be longer than 0'),
      unit: z.enum(Object.keys(WINDOW_UNITS) as [keyof typeof WINDOW_UNITS]),
    })
    .refine((w) => w.value * WINDOW_UNITS[w.unit] <= MAX_WINDOW_MS, {
      path: ['value'],
      message: `the conversion window is at most ${FUNNEL_LIMITS.maxWindowDays} days`,
    })
    .openapi({
      description:
        'The conversion window from the entry (step 1) event; a step exactly at its end counts. Exact durations: a day is 24 hours, also across DST changes',
    }),
  order: z
    .enum(FUNNEL_ORDERS as [FunnelOrder, ...FunnelOrder[]])
    .default('sequential')
    .openapi({
      description:
        'sequential: steps in order, other events between allowed; strict: no other event of the person (identify calls aside) between consecutive steps; any: the steps in any order',
    }),
  exclusions: z
    .array(
      z.object({
        events: EventMatchSchema,
        between: z
          .tuple([z.number().int(), z.number().int()])
          .openapi({ description: 'Step numbers (1-based) i < j: an excluded event between them spoils the attempt' }),
      }),
    )
    .max(FUNNEL_LIMITS.maxExclusions)
    .default([]),
  breakdown: z
    .union([
      z.strictObject({ property: dotPath.openapi({ description: 'Of the entry event, under its properties' }) }),
      z.strictObject({ trait: z.string().min(1).max(200).openapi({ description: 'The person’s current value' }) }),
    ])
    .optional(),
  interval: IntervalSchema.optional().openapi({ description: 'Conversion over time, by the entry’s bucket' }),
};

type FunnelBody = {
  range: TimeRange;
  steps: { events: EventFilter; name?: string }[];
  window: { value: number; unit: keyof typeof WINDOW_UNITS };
  order: FunnelOrder;
  exclusions: { events: EventFilter; between: [number, number] }[];
  breakdown?: { property: string } | { trait: string };
  interval?: TimeInterval;
};

// Exclusion steps must name steps of the funnel, in order.
function checkExclusions(
  body: { steps: unknown[]; exclusions: { between: [number, number] }[] },
  ctx: z.RefinementCtx,
) {
  const n = body.steps.length;
  for (const [k, e] of body.exclusions.entries()) {
    const [i, j] = e.between;
    if (i < 1 || j > n || i >= j)
      ctx.addIssue({
        code: 'custom',
        path: ['exclusions', k, 'between'],
        message: `[${i}, ${j}] must be two step numbers 1 ≤ i < j ≤ ${n}`,
      });
  }
}

const FunnelBodySchema = z.object(FunnelFields).superRefine(checkExclusions).openapi('FunnelQuery');

const PeopleFields = {
  ...FunnelFields,
  step: z.number().int().min(1).openapi({ description: 'The step (1-based)' }),
  status: z.enum(['converted', 'dropped']).openapi({
    description: 'converted: reached the step; dropped: reached the step before it but not this one',
  }),
};
const checkStep = (body: { steps: unknown[]; step: number; status: string }, ctx: z.RefinementCtx) => {
  if (body.step > body.steps.length)
    ctx.addIssue({ code: 'custom', path: ['step'], message: `the funnel has ${body.steps.length} steps` });
  else if (body.step === 1 && body.status === 'dropped')
    ctx.addIssue({
      code: 'custom',
      path: ['step'],
      message: 'nobody drops at step 1 (dropped: reached the step before)',
    });
};
const PeopleBodySchema = z
  .object({
    ...PeopleFields,
    cursor: z.string().uuid().optional().openapi({ description: 'nextCursor of the previous page' }),
    limit: z.number().int().min(1).max(1_000).default(100),
  })
  .superRefine((b, ctx) => {
    checkExclusions(b, ctx);
    checkStep(b, ctx);
  })
  .openapi('FunnelPeopleQuery');

const StepAnswer = z.object({
  step: z.number().int(),
  name: z.string(),
  entered: z.number().int().openapi({ description: 'People whose best attempt reached the step' }),
  fromPrevious: z.number().nullable().openapi({ description: '% of the previous step’s people' }),
  fromFirst: z.number().nullable().openapi({ description: '% of step 1’s people' }),
  dropOff: z.number().int().openapi({ description: 'Reached the previous step but not this one' }),
  medianSeconds: z.number().nullable().openapi({ description: 'Median time from the previous step' }),
  averageSeconds: z.number().nullable(),
});
const FunnelAnswerSchema = z
  .object({
    steps: z.array(StepAnswer),
    breakdown: z
      .array(z.object({ value: z.unknown(), steps: z.array(StepAnswer) }))
      .optional()
      .openapi({ description: `Per value (null: none), most entered first, at most ${100}` }),
    overTime: z
      .array(
        z.object({
          bucket: z.string(),
          entered: z.number().int(),
          converted: z.number().int().openapi({ description: 'Reached the last step' }),
          conversionRate: z.number().nullable().openapi({ description: '%' }),
        }),
      )
      .optional(),
    meta: ReadMetaSchema.extend({ notes: z.array(z.string()) }),
  })
  .openapi('FunnelAnswer');

const MAX_GROUPS = 100;

const NOTES = [
  'per person after identity merges, each person once: their best attempt (the furthest step, the earliest on ties)',
  'an attempt starts at each entry event in the range; later steps may follow up to the window past the range, never past now',
  'the window is inclusive: a step exactly at its end counts; days are 24 hours',
  'an attempt with an excluded event between its steps i and j (short of step j: up to the end of its window) is discarded',
];

/** A funnel body as the core pass and query builder take it; refuses sensitive breakdowns. */
export function funnelOf(body: FunnelBody, pii: Pii, now: Date): { query: FunnelQuery; pass: FunnelPass } {
  const bd = body.breakdown;
  if (bd) {
    const key = 'trait' in bd ? bd.trait : bd.property.split('.')[0]!;
    if (pii.isSensitive(key))
      throw apiError(
        400,
        'invalid_request',
        `breakdown: ${key} is a sensitive ${'trait' in bd ? 'trait' : 'property'} (stored sealed): it cannot be a breakdown`,
      );
  }
  const windowMs = body.window.value * WINDOW_UNITS[body.window.unit];
  const query: FunnelQuery = {
    steps: body.steps.map((s) => s.events),
    exclusions: body.exclusions.map((e) => e.events),
    order: body.order,
    from: body.range.from,
    to: body.range.to,
    windowMs,
    now,
    breakdown: bd,
  };
  const pass: FunnelPass = {
    steps: body.steps.length,
    order: body.order,
    windowMs,
    from: Date.parse(body.range.from),
    to: Date.parse(body.range.to),
    until: now.getTime(),
    exclusions: body.exclusions.map((e) => ({ between: e.between })),
  };
  return { query, pass };
}

/**
 * `POST /api/analytics/funnels` (people per step, conversion, drop-off, time to convert, per breakdown
 * group and over time) and `POST /api/analytics/funnels/people` (the profile ids who converted at or
 * dropped at a step, paged). One ordered pass per person (see {@link readFunnel}).
 *
 * @example
 * analytics.route('/', funnelsApi(deps));
 */
export function funnelsApi(deps: FunnelDeps & { horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/funnels',
      tags: ['Analytics'],
      summary: 'Funnels: people per step, conversion, drop-off and time to convert, by group and over time',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: FunnelBodySchema } }, required: true } },
      responses: {
        200: json(FunnelAnswerSchema, 'Per step, per breakdown group, per bucket of the entry'),
        400: json(ErrorSchema, 'Invalid query (steps, window, exclusions, a sensitive breakdown, ...)'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as FunnelBody;
      // Attempts start in the range; later steps and exclusions are read after it, never before.
      await deps.horizon.refuse({ at: body.range.from, what: 'range.from' });
      const { query, pass } = funnelOf(body, deps.pii, deps.now());
      const buckets = body.interval ? bucketsOf(body.range, body.interval) : [];
      const bucketMs = buckets.map((b) => Date.parse(b));
      const all = funnelCounts(pass.steps);
      const groups = new Map<string | null, FunnelCounts>();
      const overTime = buckets.map(() => [0, 0]);
      const reader = deps.measure.reader.pin();
      await readFunnel(
        reader,
        query,
        pass,
        (_profile, attempt) => {
          if (!attempt) return;
          addAttempt(all, attempt);
          if (body.breakdown) {
            const g = groups.get(attempt.group) ?? funnelCounts(pass.steps);
            groups.set(attempt.group, g);
            addAttempt(g, attempt);
          }
          if (bucketMs.length) {
            const b = overTime[bucketIndex(bucketMs, attempt.start)]!;
            b[0]!++;
            if (attempt.reached === pass.steps) b[1]!++;
          }
        },
        c.req.raw.signal,
      );
      const named = (counts: FunnelCounts) =>
        funnelStepStats(counts).map((s, k) => ({ ...s, name: nameOf(body.steps[k]!) }));
      const meta = await reader.meta();
      return c.json(
        {
          steps: named(all),
          ...(body.breakdown
            ? {
                breakdown: [...groups]
                  .sort(([ka, a], [kb, b]) => b.entered[0]! - a.entered[0]! || String(ka).localeCompare(String(kb)))
                  .slice(0, MAX_GROUPS)
                  .map(([k, g]) => ({ value: k === null ? null : JSON.parse(k), steps: named(g) })),
              }
            : {}),
          ...(body.interval
            ? {
                overTime: buckets.map((bucket, k) => {
                  const [entered, converted] = overTime[k]!;
                  return {
                    bucket,
                    entered: entered!,
                    converted: converted!,
                    conversionRate: entered ? Math.round((converted! / entered) * 10_000) / 100 : null,
                  };
                }),
              }
            : {}),
          meta: { ...meta, tookMs: Math.round(performance.now() - started), notes: NOTES },
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/funnels/people',
      tags: ['Analytics'],
      summary: 'The people of a funnel step: who converted at it or dropped before it (profile ids, paged)',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: PeopleBodySchema } }, required: true } },
      responses: {
        200: json(
          z.object({
            data: z.array(z.string()).openapi({ description: 'Profile ids, in id order' }),
            nextCursor: z.string().nullable(),
            meta: ReadMetaSchema,
          }),
          'A page of profile ids',
        ),
        400: json(ErrorSchema, 'Invalid query'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as FunnelBody & PeopleSelection & { cursor?: string; limit: number };
      await deps.horizon.refuse({ at: body.range.from, what: 'range.from' });
      const reader = deps.measure.reader.pin();
      const ids = await funnelPeople(deps, body, c.req.raw.signal, body.limit + 1, body.cursor, reader);
      const more = ids.length > body.limit;
      const data = more ? ids.slice(0, body.limit) : ids;
      const meta = await reader.meta();
      return c.json(
        {
          data,
          nextCursor: more ? data[data.length - 1]! : null,
          meta: { ...meta, tookMs: Math.round(performance.now() - started) },
        },
        200,
      );
    },
  );
  return app;
}

/** Which people of a funnel: those who reached `step`, or who reached the step before but not it. */
export interface PeopleSelection {
  step: number;
  status: 'converted' | 'dropped';
}

/**
 * The profile ids (in id order, after `cursor`, at most `limit`) of a funnel step's converted or
 * dropped people.
 *
 * @example
 * const ids = await funnelPeople(deps, { ...funnel, step: 3, status: 'dropped' }, signal);
 */
export async function funnelPeople(
  deps: FunnelDeps,
  body: FunnelBody & PeopleSelection,
  signal?: AbortSignal,
  limit = Number.POSITIVE_INFINITY,
  cursor?: string,
  reader: PinnedReader = deps.measure.reader,
): Promise<string[]> {
  const { query, pass } = funnelOf(body, deps.pii, deps.now());
  const ids: string[] = [];
  const wanted =
    body.status === 'converted' ? (r: number) => r >= body.step : (r: number) => r === body.step - 1 && body.step > 1;
  await readFunnel(
    reader,
    { ...query, after: cursor },
    pass,
    (profile, attempt) => {
      if (attempt && wanted(attempt.reached)) ids.push(profile);
      return ids.length < limit;
    },
    signal,
  );
  return ids;
}

/** The OpenAPI fields of a people selection over a funnel, for routes that act on them. */
export const FunnelPeopleSchema = z
  .object(PeopleFields)
  .superRefine((b, ctx) => {
    checkExclusions(b, ctx);
    checkStep(b, ctx);
  })
  .openapi('FunnelPeople');

function nameOf(step: { events: EventFilter; name?: string }): string {
  return step.name ?? describeEventFilter(step.events);
}

function bucketsOf(range: TimeRange, interval: TimeInterval): string[] {
  try {
    return bucketStarts(range, interval);
  } catch (err) {
    if (err instanceof RangeError) throw apiError(400, 'invalid_request', `interval: ${err.message}`);
    throw err;
  }
}

// The last bucket starting at or before `t` (bucket starts ascending; the first may start before the range).
function bucketIndex(starts: readonly number[], t: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
