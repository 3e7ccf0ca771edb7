import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { flowStats, getFlow } from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const count = z.number().int();
const NodeStatsSchema = z.object({
  node: z.string(),
  arrived: count.openapi({ description: 'Times a run arrived at the node' }),
  waiting: count.openapi({ description: 'Runs waiting at it now (a timer, an event)' }),
  awaiting: count.openapi({ description: 'Runs awaiting its webhook’s or action’s result now' }),
  advanced: z
    .array(z.object({ outcome: z.string(), to: z.string().nullable(), count }))
    .openapi({ description: 'Runs that left it, per outcome and the node they went to' }),
  ended: z
    .object({ completed: count, exited: count, failed: count })
    .openapi({ description: 'Runs that ended at the node' }),
});
const FlowStatsSchema = z
  .object({
    runs: z.object({
      entered: count,
      active: count,
      completed: count,
      exited: count,
      failed: count,
      converted: count.openapi({ description: 'Runs whose goal event came within its window' }),
    }),
    nodes: z.array(NodeStatsSchema),
    exits: z
      .array(z.object({ status: z.string(), reason: z.string(), count }))
      .openapi({ description: 'Why runs exited or failed, most frequent first (at most 20)' }),
    sends: z
      .array(
        z.object({
          node: z.string(),
          destinationId: z.string(),
          status: z.string().openapi({ description: 'delivered, pending, retrying, dead, skipped' }),
          reason: z.string().nullable().openapi({ description: 'Why skipped (consent, unsubscribed) or dead' }),
          count,
        }),
      )
      .openapi({ description: 'What the flow’s messages became in the delivery ledger, per sending node' }),
  })
  .openapi('FlowStats');

/**
 * `GET /api/flows/:id/stats`: a flow's numbers per node (arrived, waiting now, advanced on each edge,
 * ended), its runs (entered, active, ended per status, converted), exit reasons, and what its messages
 * became (sent, or skipped with the reason).
 *
 * @example
 * api.route('/flows', flowStatsApi({ sql }));
 */
export function flowStatsApi(deps: { sql: Sql }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/stats',
      tags: ['Flows'],
      summary: 'A flow’s numbers: per node, runs, exit reasons, and what its messages became',
      middleware: [requirePermission('flows:read')] as const,
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: {
        200: json(FlowStatsSchema, 'Across every version of the flow'),
        404: json(ErrorSchema, 'No such flow'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await getFlow(deps.sql, id))) throw apiError(404, 'not_found', `no flow ${id}`);
      return c.json(await flowStats(deps.sql, id), 200);
    },
  );
  return app;
}
