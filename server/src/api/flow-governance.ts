import { governanceSchema } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { type GovernanceRow, getGovernance, putGovernance } from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// The shapes for the OpenAPI description; the rules are core's governanceSchema, checked on every PUT.
const Cap = z
  .object({
    channel: z.string().openapi({ example: 'sms', description: 'email, sms, push, chat, webhook, or * for all' }),
    max: z.number().int().openapi({ example: 1, description: 'At most this many messages in any window' }),
    windowHours: z.number().openapi({ example: 24 }),
    audience: z.string().optional().openapi({ description: 'Only for members of this audience (a tier)' }),
  })
  .openapi('FrequencyCap');
const Quiet = z
  .object({
    channel: z.string().openapi({ example: 'sms' }),
    start: z.string().openapi({ example: '21:00', description: 'HH:MM in the person’s zone' }),
    end: z.string().openapi({ example: '09:00', description: 'HH:MM; before start: the next morning' }),
  })
  .openapi('QuietHours');
const Settings = z.object({ caps: z.array(Cap), quietHours: z.array(Quiet) });
const GovernanceSchema = Settings.extend({
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
}).openapi('FlowGovernance');

const view = (g: GovernanceRow) => ({ ...g.settings, updatedAt: g.updatedAt, updatedBy: g.updatedBy });

/**
 * `/api/flow-governance`: the frequency caps and quiet hours every flow's sends obey (docs/design/flows.md,
 * "Caps, quiet hours, priority"). Read with `flows:read`; replaced whole with `flows:write` (admins and
 * operators), recorded in the audit log.
 *
 * @example
 * api.route('/flow-governance', flowGovernanceApi({ sql }));
 */
export function flowGovernanceApi(deps: { sql: Sql }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Flows'],
      summary: 'Frequency caps and quiet hours for all flows',
      middleware: [requirePermission('flows:read')] as const,
      responses: { 200: json(GovernanceSchema, 'The settings (none stored: no caps, no quiet hours)'), ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await getGovernance(sql)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/',
      tags: ['Flows'],
      summary: 'Replace the frequency caps and quiet hours (they apply to the next send decision of every run)',
      middleware: [requirePermission('flows:write')] as const,
      request: { body: { content: { 'application/json': { schema: Settings } } } },
      responses: {
        200: json(GovernanceSchema, 'Replaced'),
        400: json(ErrorSchema, 'A cap or quiet hours that cannot be (the path and why)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const parsed = governanceSchema.safeParse(c.req.valid('json'));
      if (!parsed.success) {
        const first = parsed.error.issues[0]!;
        throw apiError(400, 'invalid_request', `${first.path.join('.')}: ${first.message}`, parsed.error.issues);
      }
      return c.json(view(await putGovernance(sql, parsed.data, actorOf(c.get('principal')))) as never, 200);
    },
  );
  return app;
}
