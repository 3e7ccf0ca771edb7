import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { experimentResults, getFlow } from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// Numbers the statistics cannot give (a lift with no conversions in the base arm, no detectable effect)
// are null, never NaN.
const num = z.number().nullable();
const arm = z.union([z.number().int(), z.literal('control')]).openapi({ description: 'A variant’s index, or control' });
const IntervalSchema = z.object({ estimate: num, lower: num, upper: num, level: num });
const ExperimentSchema = z
  .object({
    version: z.number().int(),
    node: z.string(),
    name: z.string().nullable(),
    startedAt: z.string().openapi({ description: 'The first test assignment: the deadline runs from it' }),
    deadline: z.string(),
    status: z.object({
      decided: z.boolean(),
      winner: arm.optional(),
      inconclusive: z
        .boolean()
        .optional()
        .openapi({ description: 'No significant winner by the deadline (or a sample ratio mismatch): the default' }),
      at: z.string().optional(),
      reason: z.string().optional(),
    }),
    metric: z.enum(['conversion', 'value']),
    arms: z.array(
      z.object({
        arm,
        name: z.string(),
        n: z.number().int().openapi({ description: 'People whose goal window has closed' }),
        conversions: z.number().int(),
        rate: IntervalSchema.openapi({ description: 'Conversion rate with its Wilson interval' }),
        mean: num.optional().openapi({ description: 'Revenue per person (a goal value)' }),
      }),
    ),
    comparisons: z.array(
      z.object({
        a: arm,
        b: arm,
        test: z
          .object({ difference: num, lower: num, upper: num, p: num, significant: z.boolean(), alpha: num })
          .passthrough()
          .openapi({
            description: 'Always-valid mSPRT: confidence sequence of b − a and p-value, valid at every look',
          }),
        difference: IntervalSchema.openapi({ description: 'b − a with Newcombe’s interval (fixed-horizon)' }),
        lift: IntervalSchema.openapi({ description: 'b / a − 1 with the Katz interval (fixed-horizon)' }),
      }),
    ),
    srm: z
      .object({
        chiSquare: num,
        degreesOfFreedom: z.number().int(),
        p: num,
        mismatch: z.boolean(),
        expected: z.array(num),
      })
      .openapi({ description: 'Sample ratio mismatch: the arms’ sizes against the planned split (p < 0.001)' }),
    reason: z.string(),
    pending: z.number().int().openapi({ description: 'People in the test whose goal window is still open' }),
    minimumDetectableEffect: z
      .object({ baseline: z.number(), perGroup: z.number().int(), absolute: z.number(), relative: z.number() })
      .nullable()
      .openapi({ description: 'The smallest lift of the baseline arm the counts so far detect (80 % power)' }),
    lastLookAt: z.string().nullable(),
  })
  .openapi('FlowExperiment');

/** JSON without NaN or ±Infinity (they become null), epoch ms fields as ISO text. */
function clean(v: unknown, key = ''): unknown {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    return ['startedAt', 'deadline', 'at', 'lastLookAt'].includes(key) ? new Date(v).toISOString() : v;
  }
  if (Array.isArray(v)) return v.map((x) => clean(x));
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clean(x, k)]));
  return v;
}

/**
 * `GET /api/flows/:id/experiments`: each experiment node of each version that has begun testing — arms
 * (people counted, conversions, rate with its interval), pairwise comparisons (always-valid p-value and
 * confidence sequence, difference and lift), the sample ratio check, the decision, the minimum
 * detectable effect for the people so far.
 *
 * @example
 * api.route('/flows', flowExperimentsApi({ sql, now }));
 */
export function flowExperimentsApi(deps: { sql: Sql; now: () => Date }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/experiments',
      tags: ['Flows'],
      summary: 'A flow’s A/B tests: counts, rates, the always-valid comparisons, sample ratio check, decision',
      middleware: [requirePermission('flows:read')] as const,
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: {
        200: json(z.object({ data: z.array(ExperimentSchema) }), 'Newest version first'),
        404: json(ErrorSchema, 'No such flow'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await getFlow(deps.sql, id))) throw apiError(404, 'not_found', `no flow ${id}`);
      const data = await experimentResults(deps.sql, id, deps.now().getTime());
      return c.json(clean({ data }) as { data: z.infer<typeof ExperimentSchema>[] }, 200);
    },
  );
  return app;
}
