import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { flowRunCounts } from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, json } from './schemas.ts';

const CountsSchema = z
  .object({
    data: z.array(
      z.object({
        flowId: z.string(),
        entered: z.number().int().openapi({ description: 'Runs started, across versions (one per entry)' }),
        active: z.number().int().openapi({ description: 'Runs waiting or awaiting a result now' }),
      }),
    ),
  })
  .openapi('FlowRunCounts');

/**
 * `GET /api/flows/counts`: every flow's runs entered and active, in one call (a list of flows shows
 * them; `GET /api/flows/{id}/stats` has one flow's numbers per node). Flows nobody entered are absent.
 * Mounted before `flowsApi`, so `/counts` is not taken for a flow id.
 *
 * @example
 * api.route('/flows', flowCountsApi({ sql }));
 */
export function flowCountsApi(deps: { sql: Sql }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/counts',
      tags: ['Flows'],
      summary: 'Every flow’s runs entered and active now',
      middleware: [requirePermission('flows:read')] as const,
      responses: { 200: json(CountsSchema, 'Per flow that has runs'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: await flowRunCounts(deps.sql) }, 200),
  );
  return app;
}
