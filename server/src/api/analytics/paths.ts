import {
  DEFAULT_PATH_EVENTS,
  type EventFilter,
  OTHER_NODE,
  PATHS_LIMITS,
  type PathRow,
  pathsQuery,
  summarizePaths,
  type TimeRange,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { EventMatchSchema, RangeSchema, ReadMetaSchema } from './common.ts';
import { BEFORE_RETENTION, type HorizonGuard, pathReads } from './horizon.ts';

const PathsBodySchema = z
  .strictObject({
    range: RangeSchema,
    anchor: EventMatchSchema.openapi({
      description: 'The event paths start from (`after`) or end at (`before`); it must happen within the range',
    }),
    direction: z
      .enum(['after', 'before'])
      .default('after')
      .openapi({ description: 'after: what people did next; before: what they did before' }),
    steps: z
      .number()
      .int()
      .min(1)
      .max(PATHS_LIMITS.maxSteps)
      .default(5)
      .openapi({ description: `Nodes followed after (before) the anchor, 1..${PATHS_LIMITS.maxSteps}` }),
    sessionGap: z
      .number()
      .int()
      .min(1)
      .max(PATHS_LIMITS.maxSessionGap)
      .default(PATHS_LIMITS.defaultSessionGap)
      .openapi({
        description:
          'Minutes: a path stops where two of its consecutive events are more than this apart (exactly this still continues)',
      }),
    include: EventMatchSchema.optional().openapi({
      description: 'Which events are path nodes (default: every event but identify); anchor events always are',
    }),
    label: z.enum(['event', 'page']).default('event').openapi({
      description:
        'event: the event’s name (a track event’s, a page’s or screen’s name; `$<type>` without one); page: a page event’s path (properties.path, else context.page.path, else its name), other events by name',
    }),
    top: z
      .number()
      .int()
      .min(1)
      .max(PATHS_LIMITS.maxTop)
      .default(PATHS_LIMITS.defaultTop)
      .openapi({ description: `Distinct nodes shown per step, by paths; the rest are ${OTHER_NODE}` }),
    collapseRepeats: z
      .boolean()
      .default(false)
      .openapi({ description: 'Merge consecutive nodes with the same label into one (the anchor’s too)' }),
    occurrence: z.enum(['first', 'every']).default('first').openapi({
      description:
        'first: one path per person, from their first anchor in the range; every: a path from each anchor in the range',
    }),
  })
  .openapi('PathsQuery');

const count = z.number().int();
const CountSchema = z.object({
  paths: count,
  people: count.openapi({ description: 'Distinct people (after merges) of those paths' }),
});
const StepSchema = CountSchema.extend({
  step: count.openapi({ description: '0 is the anchor; k the k-th node after (before) it' }),
  dropOff: CountSchema.openapi({
    description:
      'Paths that reached step - 1 and ended there: no next event, or the next one more than sessionGap later (0 at step 0)',
  }),
  nodes: z.array(
    CountSchema.extend({
      node: z.string(),
      ended: CountSchema.openapi({ description: 'Paths that ended at this node (before the last step)' }),
    }),
  ),
  edges: z
    .array(CountSchema.extend({ from: z.string(), to: z.string() }))
    .openapi({ description: 'From the node at step - 1 to the node at this step' }),
});
const PathsAnswerSchema = z
  .object({
    anchors: CountSchema.openapi({ description: 'Anchor occurrences followed (paths) and their people' }),
    steps: z.array(StepSchema),
    meta: ReadMetaSchema.extend({
      notes: z.array(z.string()).openapi({ description: 'How the numbers were counted' }),
    }),
  })
  .openapi('PathsAnswer');

type Body = z.infer<typeof PathsBodySchema>;

/**
 * `POST /api/analytics/paths`: the most common nodes after (or before) an anchor event, per step, with
 * the edges between steps and the drop-off (paths ended by no next event or the session gap), counted
 * in paths and in people after identity merges.
 *
 * @example
 * analytics.route('/', pathsApi(deps));
 */
export function pathsApi(deps: { measure: MeasureStage; now: () => Date; horizon: HorizonGuard }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/paths',
      tags: ['Analytics'],
      summary: 'Paths: what people did after (or before) an event, step by step, with drop-off',
      middleware: [requirePermission('analytics:read')] as const,
      request: { body: { content: { 'application/json': { schema: PathsBodySchema } }, required: true } },
      responses: {
        200: json(PathsAnswerSchema, 'Per step: nodes, edges from the step before, drop-off'),
        400: json(ErrorSchema, 'Invalid query (steps, top, label, a filter, the range)'),
        422: json(ErrorSchema, `The query ran past the analytics timeout; ${BEFORE_RETENTION}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const started = performance.now();
      const body = c.req.valid('json') as Body;
      await deps.horizon.refuse(pathReads(body));
      const reader = deps.measure.reader.pin();
      const rows = await reader.rows<PathRow>(
        pathsQuery({
          range: body.range as TimeRange,
          anchor: body.anchor as EventFilter,
          direction: body.direction,
          steps: body.steps,
          sessionGap: body.sessionGap,
          include: (body.include as EventFilter | undefined) ?? DEFAULT_PATH_EVENTS,
          label: body.label,
          collapseRepeats: body.collapseRepeats,
          occurrence: body.occurrence,
          now: deps.now(),
        }),
        c.req.raw.signal,
      );
      const summary = summarizePaths(rows, { steps: body.steps, top: body.top });
      const meta = await reader.meta();
      return c.json(
        {
          ...summary,
          meta: {
            ...meta,
            tookMs: Math.round(performance.now() - started),
            notes: [
              'people: distinct persons after identity merges (events not yet attached to a profile are left out)',
              body.occurrence === 'first'
                ? 'first: one path per person (from their first anchor in the range), so paths = people'
                : 'every: a path from each anchor in the range; a person with several counts once in people',
              `a path ends where the next event is more than ${body.sessionGap} minutes after (before) the last`,
              `top ${body.top} nodes per step by paths (ties by name), the rest as ${OTHER_NODE}`,
              ...(body.collapseRepeats
                ? [
                    `collapseRepeats: events are read up to ${body.steps * body.sessionGap} minutes past the range (before it, for before); a run of repeats reaching further ends its path there`,
                  ]
                : []),
            ],
          },
        },
        200,
      );
    },
  );
  return app;
}
