import { describeRule } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import type { ComputeStage } from '../pipeline/compute/index.ts';
import {
  deleteTag,
  getTag,
  insertTag,
  listTags,
  type TagRecord,
  type TagRow,
  tagHistory,
  updateTag,
} from '../pipeline/compute/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { definitionKey, definitionRoutes } from './definitions.ts';
import { membersRoute } from './members.ts';
import { applyPatch } from './patch.ts';
import {
  guardRule,
  type RetentionDeps,
  RetentionWarningsSchema,
  WINDOW_BEYOND_RETENTION,
  withWarnings,
} from './rule-windows.ts';
import { checkRule } from './rules.ts';
import { AUTH_ERRORS, ErrorSchema, json, RuleSchema } from './schemas.ts';

const TagSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    kind: z.enum(['static', 'dynamic']),
    rule: z.union([RuleSchema, z.null()]),
    words: z.string().nullable(),
    warnings: RetentionWarningsSchema,
    members: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Tag');
const notFound = { description: 'No such tag or profile', content: { 'application/json': { schema: ErrorSchema } } };

const view = (t: TagRow) => ({
  key: t.key,
  name: t.name,
  kind: t.rule ? ('dynamic' as const) : ('static' as const),
  rule: t.rule,
  words: t.rule ? describeRule(t.rule) : null,
  members: t.members,
  createdAt: t.createdAt.toISOString(),
  updatedAt: t.updatedAt.toISOString(),
});

/**
 * `/api/tags`: static tags (set and removed through the API, later by flows) and dynamic ones (a rule
 * keeps them current), each change kept with when, by whom or what, and why.
 *
 * @example
 * api.route('/tags', tagsApi({ sql, handOff, pii }));
 */
export function tagsApi(deps: { sql: Sql; handOff: HandOff; pii: Pii } & RetentionDeps) {
  const { sql } = deps;
  return definitionRoutes(deps, {
    kind: 'tag',
    noun: 'tag',
    tag: 'Tags',
    schema: TagSchema,
    view: (t) => withWarnings(deps, view(t), { rule: t.rule }),
    record: (t): TagRecord => ({ name: t.name, rule: t.rule }),
    store: { list: listTags, get: getTag, insert: insertTag, update: updateTag, remove: deleteTag },
    // A static tag is set by hand; only a rule is computed.
    computes: (t) => t.rule !== null,
    changed: (before, after) => JSON.stringify(after.rule) !== JSON.stringify(before.rule),
    describe: {
      notFound: notFound.description,
      list: { summary: 'List tags', description: 'Tags' },
      get: { summary: 'One tag', description: 'The tag' },
      create: {
        summary: 'Create a tag: static without a rule, dynamic with one',
        created: 'Created',
        invalid: 'Invalid rule',
        refused: WINDOW_BEYOND_RETENTION,
      },
      update: {
        summary: 'Rename a tag or change its rule (a dynamic tag stays dynamic)',
        invalid: 'Invalid rule',
        conflict: 'A static tag cannot get a rule, nor a dynamic one lose it',
        refused: WINDOW_BEYOND_RETENTION,
      },
      remove: { summary: 'Delete a tag and its history (refused while a rule uses it)', inUse: 'In use' },
    },
    create: {
      schema: z.object({
        key: definitionKey(),
        name: z.string().min(1).max(200),
        rule: z.union([RuleSchema, z.null()]).optional(),
      }),
      prepare: async (body) => ({
        key: body.key,
        record: {
          name: body.name,
          rule:
            body.rule === undefined || body.rule === null
              ? null
              : guardRule(deps, await checkRule(sql, body.rule, { kind: 'tag', key: body.key }, deps.pii)),
        },
      }),
    },
    update: {
      schema: z.object({ name: z.string().min(1).max(200), rule: RuleSchema }),
      prepare: async (before, patch, key) => {
        if (patch.rule === undefined) return applyPatch(before, { name: patch.name });
        if (!before.rule || patch.rule === null)
          throw apiError(
            409,
            'conflict',
            'a static tag cannot get a rule, nor a dynamic one lose it: create another tag',
          );
        const rule = guardRule(deps, await checkRule(sql, patch.rule, { kind: 'tag', key }, deps.pii));
        return applyPatch(before, { name: patch.name, rule });
      },
    },
    routes: { last: (app, { existing }) => membersRoute(app, sql, deps.pii, 'tag', existing) },
  });
}

/**
 * `/api/profiles/:id/tags`: a profile's tags with their history; static tags set and removed here
 * (through the compute stage's command).
 *
 * @example
 * api.route('/profiles', profileTagsApi({ sql, compute: pipeline.compute }));
 */
export function profileTagsApi(deps: { sql: Sql; compute: Pick<ComputeStage, 'changeStaticTag'> }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const live = (id: string) => liveProfileId(sql, id);
  const Assignment = z.object({
    tag: z.string(),
    addedAt: z.string(),
    addedBy: z.string(),
    addedReason: z.string().nullable(),
    removedAt: z.string().nullable(),
    removedBy: z.string().nullable(),
    removedReason: z.string().nullable(),
  });
  const actor = (principal: { kind: string; id: string }) => `api:${principal.kind}:${principal.id}`;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/tags',
      tags: ['Profiles'],
      summary: "A profile's current tags and the history of every tag it carried",
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: z.object({ id: z.string().uuid() }) },
      responses: {
        200: json(z.object({ current: z.array(z.string()), history: z.array(Assignment) }), 'Tags'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const rows = await tagHistory(sql, await live(c.req.valid('param').id));
      return c.json(
        {
          current: rows.filter((r) => !r.removedAt).map((r) => r.tag),
          history: rows.map((r) => ({
            ...r,
            addedAt: r.addedAt.toISOString(),
            removedAt: r.removedAt?.toISOString() ?? null,
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/tags',
      tags: ['Profiles'],
      summary: 'Add a static tag to a profile',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: z.object({ id: z.string().uuid() }),
        body: {
          content: {
            'application/json': { schema: z.object({ tag: z.string(), reason: z.string().max(500).optional() }) },
          },
        },
      },
      responses: {
        200: json(z.object({ changed: z.boolean() }), 'Added (changed false: it already had it)'),
        404: notFound,
        409: json(ErrorSchema, 'Dynamic tag'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const id = await live(c.req.valid('param').id);
      const body = c.req.valid('json');
      const by = actor(c.get('principal'));
      return c.json(
        { changed: await deps.compute.changeStaticTag(id, body.tag, 'enter', by, body.reason ?? null) },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}/tags/{tag}',
      tags: ['Profiles'],
      summary: 'Remove a static tag from a profile',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: z.object({ id: z.string().uuid(), tag: z.string() }),
        query: z.object({ reason: z.string().max(500).optional() }),
      },
      responses: {
        200: json(z.object({ changed: z.boolean() }), 'Removed (changed false: it did not have it)'),
        404: notFound,
        409: json(ErrorSchema, 'Dynamic tag'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id, tag } = c.req.valid('param');
      const profile = await live(id);
      const reason = c.req.valid('query').reason ?? null;
      return c.json(
        { changed: await deps.compute.changeStaticTag(profile, tag, 'exit', actor(c.get('principal')), reason) },
        200,
      );
    },
  );
  return app;
}
