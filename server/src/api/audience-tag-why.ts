import { describeRule } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { type PiiView, piiView } from '../pii/view.ts';
import { type ExplainedNode, explainRule, getTag, tagHistory } from '../pipeline/compute/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// A deciding value read from a sensitive trait is sealed in the database: opened, or masked without
// pii:read (as the audience explanation shows it).
function shown(node: ExplainedNode, view: PiiView): ExplainedNode {
  const out = { ...node };
  if ((node.rule.op === 'trait' || node.rule.op === 'account') && 'value' in node) {
    out.value = view.value(node.rule.trait, node.value);
  }
  if (node.children) out.children = node.children.map((child) => shown(child, view));
  return out;
}

/**
 * `GET /api/tags/{key}/explain/{profileId}`: why a profile carries a tag or not — for a dynamic tag its
 * rule evaluated now, node by node; for any tag the periods it was carried, by whom or what and why.
 *
 * @example
 * api.route('/tags', tagWhyApi({ sql, pii, now: () => new Date() }));
 */
export function tagWhyApi(deps: { sql: Sql; pii: Pii; now: () => Date }) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/explain/{profileId}',
      tags: ['Tags'],
      summary:
        'Why a profile carries a tag or not: the rule tree of a dynamic tag now, and every period it was carried',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: z.object({ key: z.string(), profileId: z.string().uuid() }) },
      responses: {
        200: json(
          z.object({
            tag: z.string(),
            profileId: z.string().openapi({ description: 'The live profile (merged ids are followed)' }),
            member: z.boolean().openapi({ description: 'Carries the tag now' }),
            matches: z.boolean().nullable().openapi({ description: 'The rule evaluated now; null for a static tag' }),
            at: z.string(),
            tree: z.unknown().openapi({ description: 'Each node with its truth and deciding value; null when static' }),
            history: z.array(
              z.object({
                addedAt: z.string(),
                addedBy: z.string(),
                addedReason: z.string().nullable(),
                removedAt: z.string().nullable(),
                removedBy: z.string().nullable(),
                removedReason: z.string().nullable(),
              }),
            ),
          }),
          'Explanation',
        ),
        404: json(ErrorSchema, 'No such tag or profile'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key, profileId } = c.req.valid('param');
      const tag = await getTag(deps.sql, key);
      if (!tag) throw apiError(404, 'not_found', `no tag ${key}`);
      const live = await liveProfileId(deps.sql, profileId);
      if (!live) throw apiError(404, 'not_found', `no profile ${profileId}`);
      const now = deps.now();
      const explained = tag.rule
        ? await explainRule(deps.sql, tag.rule, { now, profileId: live, describe: describeRule })
        : null;
      const tree = explained && shown(explained, piiView(deps.pii, c.get('principal')));
      const history = (await tagHistory(deps.sql, live)).filter((h) => h.tag === key);
      return c.json(
        {
          tag: key,
          profileId: live,
          member: history.some((h) => h.removedAt === null),
          matches: tag.rule ? (tree?.result ?? false) : null,
          at: now.toISOString(),
          tree,
          history: history.map(({ tag: _, ...h }) => ({
            ...h,
            addedAt: h.addedAt.toISOString(),
            removedAt: h.removedAt?.toISOString() ?? null,
          })),
        },
        200,
      );
    },
  );
  return app;
}
