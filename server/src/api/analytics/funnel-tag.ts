import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { ComputeStage } from '../../pipeline/compute/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { type FunnelDeps, FunnelPeopleSchema, funnelPeople } from './funnels.ts';

/**
 * `POST /api/tags/:tag/from-funnel`: sets a static tag on a funnel step's converted or dropped people
 * (every one, not a page), through stage 3's static-tag command, so they can be an audience. A write,
 * hence under /tags with `audiences:write` and audited (`tag.from_funnel`), not under /analytics,
 * whose POSTs are reads every role may send and the audit ignores.
 *
 * @example
 * api.route('/tags', funnelTagApi(deps));
 */
export function funnelTagApi(deps: FunnelDeps & { compute: Pick<ComputeStage, 'tagProfiles'> }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'post',
      path: '/{tag}/from-funnel',
      tags: ['Tags'],
      summary: 'Tag the people who converted at or dropped before a funnel step (a static tag)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        params: z.object({ tag: z.string().min(1).max(100) }),
        body: {
          content: {
            'application/json': {
              schema: FunnelPeopleSchema.and(z.object({ reason: z.string().max(500).optional() })),
            },
          },
          required: true,
        },
      },
      responses: {
        200: json(
          z.object({
            tag: z.string(),
            people: z.number().int().openapi({ description: 'People of the step' }),
            added: z.number().int().openapi({ description: 'Of them, those who did not carry the tag yet' }),
          }),
          'Tagged',
        ),
        400: json(ErrorSchema, 'Invalid query'),
        404: json(ErrorSchema, 'No such tag'),
        409: json(ErrorSchema, 'A dynamic tag (its rule decides who carries it)'),
        422: json(ErrorSchema, 'The query ran past the analytics timeout'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { tag } = c.req.valid('param');
      const body = c.req.valid('json') as z.infer<typeof FunnelPeopleSchema> & { reason?: string };
      const ids = await funnelPeople(deps, body as never, c.req.raw.signal);
      const principal = c.get('principal');
      const reason = body.reason ?? `funnel step ${body.step} ${body.status}`;
      const added = await deps.compute.tagProfiles(ids, tag, `api:${principal.kind}:${principal.id}`, reason);
      return c.json({ tag, people: ids.length, added }, 200);
    },
  );
  return app;
}
