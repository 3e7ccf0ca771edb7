import { describeRule, type Rule } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Principal } from '../auth/keys.ts';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Transaction, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import { lockProfiles } from '../pipeline/compute/locks.ts';
import { recordInOrder } from '../pipeline/compute/outbox.ts';
import { rulesReading } from '../pipeline/compute/queries.ts';
import { tagStore } from '../pipeline/compute/store.ts';
import { liveProfileId } from '../pipeline/identify/admin.ts';
import { membersRoute } from './members.ts';
import { patchOf } from './patch.ts';
import { checkRule } from './rules.ts';
import { AUTH_ERRORS, ErrorSchema, json, RuleSchema } from './schemas.ts';

const KEY = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'a key: lower-case letters, digits and _, starting with a letter');
const TagSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    kind: z.enum(['static', 'dynamic']),
    rule: z.union([RuleSchema, z.null()]),
    words: z.string().nullable(),
    members: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Tag');
const notFound = { description: 'No such tag or profile', content: { 'application/json': { schema: ErrorSchema } } };

interface TagRow {
  key: string;
  name: string;
  rule: Rule | null;
  members: number;
  createdAt: Date;
  updatedAt: Date;
}

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

async function tags(sql: Sql, key?: string): Promise<TagRow[]> {
  return sql<TagRow[]>`
    SELECT t.key, t.name, t.rule, t.created_at AS "createdAt", t.updated_at AS "updatedAt",
      (SELECT count(*)::int FROM tag_assignments a WHERE a.tag = t.key AND a.removed_at IS NULL) AS members
    FROM tags t ${key ? sql`WHERE t.key = ${key}` : sql``} ORDER BY t.key`;
}

/**
 * `/api/tags`: static tags (set and removed through the API, later by flows) and dynamic ones (a rule
 * keeps them current), each change kept with when, by whom or what, and why.
 *
 * @example
 * api.route('/tags', tagsApi({ sql, handOff, pii }));
 */
export function tagsApi(deps: { sql: Sql; handOff: HandOff; pii: Pii }) {
  const { sql, handOff } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (key: string) => {
    const [t] = await tags(sql, key);
    if (!t) throw apiError(404, 'not_found', `no tag ${key}`);
    return t;
  };
  const Param = z.object({ key: z.string() });
  // In the transaction that writes the definition: a definition saved is a definition computed.
  const recompute = (tx: Transaction, key: string) =>
    handOff(tx, 'definition.changed', { kind: 'tag', key });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Tags'],
      summary: 'List tags',
      middleware: [requirePermission('audiences:read')] as const,
      responses: { 200: json(z.object({ data: z.array(TagSchema) }), 'Tags'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await tags(sql)).map(view) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Tags'],
      summary: 'Create a tag: static without a rule, dynamic with one',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({
                key: KEY,
                name: z.string().min(1).max(200),
                rule: z.union([RuleSchema, z.null()]).optional(),
              }),
            },
          },
        },
      },
      responses: {
        201: json(TagSchema, 'Created'),
        400: json(ErrorSchema, 'Invalid rule'),
        409: json(ErrorSchema, 'Key taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const rule =
        body.rule === undefined || body.rule === null
          ? null
          : await checkRule(sql, body.rule, { kind: 'tag', key: body.key }, deps.pii);
      const created = await sql.begin(async (tx) => {
        const [row] = await tx`
          INSERT INTO tags (key, name, rule) VALUES (${body.key}, ${body.name}, ${rule ? sql.json(rule as never) : null})
          ON CONFLICT (key) DO NOTHING RETURNING key`;
        if (row && rule) await recompute(tx, body.key);
        return row;
      });
      if (!created) throw apiError(409, 'conflict', `tag ${body.key} exists`);
      return c.json(view(await existing(body.key)), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: ['Tags'],
      summary: 'One tag',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: Param },
      responses: { 200: json(TagSchema, 'The tag'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').key)), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{key}',
      tags: ['Tags'],
      summary: 'Rename a tag or change its rule (a dynamic tag stays dynamic)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: patchOf(z.object({ name: z.string().min(1).max(200), rule: RuleSchema })),
            },
          },
        },
      },
      responses: {
        200: json(TagSchema, 'Changed'),
        400: json(ErrorSchema, 'Invalid rule'),
        404: notFound,
        409: json(ErrorSchema, 'A static tag cannot get a rule, nor a dynamic one lose it'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const body = c.req.valid('json');
      const before = await existing(key);
      let rule = before.rule;
      if (body.rule !== undefined) {
        if (!before.rule || body.rule === null)
          throw apiError(
            409,
            'conflict',
            'a static tag cannot get a rule, nor a dynamic one lose it: create another tag',
          );
        rule = await checkRule(sql, body.rule, { kind: 'tag', key }, deps.pii);
      }
      await sql.begin(async (tx) => {
        await tx`
          UPDATE tags SET name = ${body.name ?? before.name}, rule = ${rule ? sql.json(rule as never) : null}, updated_at = now()
          WHERE key = ${key}`;
        if (rule && JSON.stringify(rule) !== JSON.stringify(before.rule)) await recompute(tx, key);
      });
      return c.json(view(await existing(key)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: ['Tags'],
      summary: 'Delete a tag and its history (refused while a rule uses it)',
      middleware: [requirePermission('audiences:write')] as const,
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, 404: notFound, 409: json(ErrorSchema, 'In use'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const users = await rulesReading(sql, 'tag', key);
      if (users.length)
        throw apiError(409, 'conflict', `tag ${key} is used by ${users.map((d) => `${d.kind} ${d.key}`).join(', ')}`);
      await sql`DELETE FROM tags WHERE key = ${key}`;
      return c.body(null, 204);
    },
  );

  membersRoute(app, sql, deps.pii, 'tag', existing);
  return app;
}

/**
 * `/api/profiles/:id/tags`: a profile's tags with their history; static tags set and removed here.
 *
 * @example
 * api.route('/profiles', profileTagsApi({ sql, handOff }));
 */
export function profileTagsApi(deps: { sql: Sql; handOff: HandOff }) {
  const { sql, handOff } = deps;
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
      const id = await live(c.req.valid('param').id);
      const rows = await sql<
        {
          tag: string;
          addedAt: Date;
          addedBy: string;
          addedReason: string | null;
          removedAt: Date | null;
          removedBy: string | null;
          removedReason: string | null;
        }[]
      >`
        SELECT tag, added_at AS "addedAt", added_by AS "addedBy", added_reason AS "addedReason",
          removed_at AS "removedAt", removed_by AS "removedBy", removed_reason AS "removedReason"
        FROM tag_assignments WHERE profile_id = ${id} ORDER BY added_at DESC, id DESC LIMIT 500`;
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

  const change = async (
    principal: Principal,
    profile: string,
    tag: string,
    action: 'enter' | 'exit',
    reason: string | null,
  ) => {
    const [t] = await sql<{ name: string; rule: Rule | null }[]>`SELECT name, rule FROM tags WHERE key = ${tag}`;
    if (!t) throw apiError(404, 'not_found', `no tag ${tag}`);
    if (t.rule) throw apiError(409, 'conflict', `tag ${tag} is dynamic: its rule decides who carries it`);
    const actor = `api:${principal.kind}:${principal.id}`;
    const now = new Date();
    const eventIds = (await sql.begin(async (tx) => {
      await lockProfiles(tx, [profile]);
      const done =
        action === 'enter'
          ? await tagStore.enter(tx, tag, [profile], now, actor, reason)
          : await tagStore.exit(tx, tag, [profile], now, actor, reason);
      const ids = await recordInOrder(tx, { kind: 'tag', key: tag, name: t.name }, action, done, now, actor);
      if (ids.length) {
        // Destinations hear of it (fan-out), and audiences reading the tag follow (compute): handed over
        // in the transaction that recorded the change, so a crash cannot keep one without the other.
        await handOff(tx, 'memberships.changed', { ids });
        await handOff(tx, 'profiles.changed', { profileIds: [profile] });
      }
      return ids;
    })) as string[];
    return eventIds.length > 0;
  };

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
      return c.json({ changed: await change(c.get('principal'), id, body.tag, 'enter', body.reason ?? null) }, 200);
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
      return c.json(
        { changed: await change(c.get('principal'), profile, tag, 'exit', c.req.valid('query').reason ?? null) },
        200,
      );
    },
  );
  return app;
}
