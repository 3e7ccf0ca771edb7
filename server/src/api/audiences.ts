import { describeRule } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Transaction, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import { type PiiView, piiView } from '../pii/view.ts';
import { type ExplainedNode, evaluateRule, explainRule } from '../pipeline/compute/evaluate.ts';
import {
  type AudienceRow,
  audienceCounts,
  getAudience,
  listAudiences,
  membershipHistory,
  rulesReading,
} from '../pipeline/compute/queries.ts';
import { liveProfileId } from '../pipeline/identify/admin.ts';
import { membersRoute } from './members.ts';
import { patchOf } from './patch.ts';
import { checkRule } from './rules.ts';
import { AUTH_ERRORS, ErrorSchema, json, RuleSchema } from './schemas.ts';

const KEY = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'a key: lower-case letters, digits and _, starting with a letter')
  .openapi({ example: 'dormant_high_value' });
const RuleBody = RuleSchema;
const AudienceSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    rule: RuleSchema,
    words: z.string().openapi({ description: 'The rule in words' }),
    enabled: z.boolean(),
    members: z.number().int(),
    computedAt: z.string().nullable().openapi({ description: 'Last full recompute; null while the first one runs' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Audience');
const notFound = { description: 'No such audience', content: { 'application/json': { schema: ErrorSchema } } };
const Param = z.object({ key: z.string() });

function view(a: AudienceRow) {
  return {
    key: a.key,
    name: a.name,
    description: a.description,
    rule: a.rule,
    words: describeRule(a.rule),
    enabled: a.enabled,
    members: a.members,
    computedAt: a.computedAt?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(),
    updatedAt: a.updatedAt.toISOString(),
  };
}

// A deciding value read from a sensitive trait is sealed in the database: opened, or masked without pii:read.
function showValues(node: ExplainedNode, view: PiiView): ExplainedNode {
  const out = { ...node };
  if ((node.rule.op === 'trait' || node.rule.op === 'account') && 'value' in node) {
    out.value = view.value(node.rule.trait, node.value);
  }
  if (node.children) out.children = node.children.map((child) => showValues(child, view));
  return out;
}

/**
 * `/api/audiences`: rule-defined audiences kept current by stage 3, their members (paged, CSV),
 * counts over time, a preview of unsaved rules and why a profile is in or out.
 *
 * @example
 * api.route('/audiences', audiencesApi({ sql, handOff, pii, now: () => new Date() }));
 */
export function audiencesApi(deps: { sql: Sql; handOff: HandOff; pii: Pii; now: () => Date }) {
  const { sql, handOff } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (key: string) => {
    const a = await getAudience(sql, key);
    if (!a) throw apiError(404, 'not_found', `no audience ${key}`);
    return a;
  };
  // In the transaction that writes the definition: a definition saved is a definition computed.
  const recompute = (tx: Transaction, key: string) =>
    handOff(tx, 'definition.changed', { kind: 'audience', key });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Audiences'],
      summary: 'List audiences with member counts',
      middleware: [requirePermission('audiences:read')] as const,
      responses: { 200: json(z.object({ data: z.array(AudienceSchema) }), 'Audiences'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listAudiences(sql)).map(view) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Audiences'],
      summary: 'Create an audience (computed over every profile at once, then kept current)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({
                key: KEY,
                name: z.string().min(1).max(200),
                description: z.string().max(2000).optional(),
                rule: RuleBody,
                enabled: z.boolean().default(true),
              }),
            },
          },
        },
      },
      responses: {
        201: json(AudienceSchema, 'Created; members are computed in the background'),
        400: json(ErrorSchema, 'Invalid rule (the message names the field)'),
        409: json(ErrorSchema, 'Key taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const rule = await checkRule(sql, body.rule, { kind: 'audience', key: body.key }, deps.pii);
      const created = await sql.begin(async (tx) => {
        const [row] = await tx`
          INSERT INTO audiences (key, name, description, rule, enabled)
          VALUES (${body.key}, ${body.name}, ${body.description ?? null}, ${sql.json(rule as never)}, ${body.enabled})
          ON CONFLICT (key) DO NOTHING RETURNING key`;
        if (row && body.enabled) await recompute(tx, body.key);
        return row;
      });
      if (!created) throw apiError(409, 'conflict', `audience ${body.key} exists`);
      return c.json(view((await getAudience(sql, body.key))!), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/preview',
      tags: ['Audiences'],
      summary: 'Count and sample the members of a rule without saving it',
      middleware: [requirePermission('audiences:read')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({ rule: RuleBody, sample: z.number().int().min(0).max(100).default(10) }),
            },
          },
        },
      },
      responses: {
        200: json(
          z.object({ count: z.number().int(), sample: z.array(z.string()), words: z.string(), at: z.string() }),
          'Members now',
        ),
        400: json(ErrorSchema, 'Invalid rule'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const rule = await checkRule(sql, body.rule, null, deps.pii);
      const now = deps.now();
      const members = [...(await evaluateRule(sql, rule, { now }))].sort();
      return c.json(
        {
          count: members.length,
          sample: members.slice(0, body.sample),
          words: describeRule(rule),
          at: now.toISOString(),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: ['Audiences'],
      summary: 'One audience',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: Param },
      responses: { 200: json(AudienceSchema, 'The audience'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').key)), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{key}',
      tags: ['Audiences'],
      summary: 'Change an audience (a new rule is recomputed over every profile)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: patchOf(
                z.object({
                  name: z.string().min(1).max(200),
                  description: z.string().max(2000).nullable(),
                  rule: RuleBody,
                  enabled: z.boolean(),
                }),
              ),
            },
          },
        },
      },
      responses: {
        200: json(AudienceSchema, 'Changed'),
        400: json(ErrorSchema, 'Invalid rule'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const body = c.req.valid('json');
      const before = await existing(key);
      const rule =
        body.rule === undefined ? before.rule : await checkRule(sql, body.rule, { kind: 'audience', key }, deps.pii);
      const enabled = body.enabled ?? before.enabled;
      const changed = JSON.stringify(rule) !== JSON.stringify(before.rule) || (enabled && !before.enabled);
      await sql.begin(async (tx) => {
        await tx`
          UPDATE audiences SET name = ${body.name ?? before.name},
            description = ${body.description === undefined ? before.description : body.description},
            rule = ${sql.json(rule as never)}, enabled = ${enabled}, updated_at = now(),
            computed_at = ${changed ? null : before.computedAt}
          WHERE key = ${key}`;
        if (changed && enabled) await recompute(tx, key);
      });
      return c.json(view((await getAudience(sql, key))!), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: ['Audiences'],
      summary: 'Delete an audience and its membership history (refused while another rule uses it)',
      middleware: [requirePermission('audiences:write')] as const,
      request: { params: Param },
      responses: {
        204: { description: 'Deleted' },
        404: notFound,
        409: json(ErrorSchema, 'Used by another rule'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const real = await rulesReading(sql, 'audience', key);
      if (real.length)
        throw apiError(
          409,
          'conflict',
          `audience ${key} is used by ${real.map((d) => `${d.kind} ${d.key}`).join(', ')}`,
        );
      await sql`DELETE FROM audiences WHERE key = ${key}`;
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{key}/recompute',
      tags: ['Audiences'],
      summary: 'Recompute over every profile now (normally never needed: membership is kept current)',
      middleware: [requirePermission('audiences:write')] as const,
      request: { params: Param },
      responses: { 202: json(z.object({ queued: z.boolean() }), 'Queued'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      // A lone hand-off still goes through a transaction: the type refuses the pool (jobs/handoff.ts).
      await sql.begin(async (tx) => {
        await existing(key);
        await recompute(tx, key);
      });
      return c.json({ queued: true }, 202);
    },
  );

  membersRoute(app, sql, deps.pii, 'audience', existing);

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/counts',
      tags: ['Audiences'],
      summary: 'Member counts over time (one point per full recompute and per hour of sweeps)',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: Param },
      responses: {
        200: json(z.object({ data: z.array(z.object({ at: z.string(), members: z.number().int() })) }), 'Counts'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const rows = await audienceCounts(sql, key);
      return c.json({ data: rows.map((r) => ({ at: r.at.toISOString(), members: r.members })) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/explain/{profileId}',
      tags: ['Audiences'],
      summary: 'Why a profile is in or out: the rule tree with each node’s truth and deciding value',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: z.object({ key: z.string(), profileId: z.string().uuid() }) },
      responses: {
        200: json(
          z.object({
            audience: z.string(),
            profileId: z.string().openapi({ description: 'The live profile (merged ids are followed)' }),
            member: z.boolean().openapi({ description: 'Stored membership' }),
            matches: z.boolean().openapi({ description: 'The rule evaluated now' }),
            at: z.string(),
            tree: z.unknown(),
            history: z.array(z.unknown()),
          }),
          'Explanation',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key, profileId } = c.req.valid('param');
      const a = await existing(key);
      const live = await liveProfileId(sql, profileId);
      if (!live) throw apiError(404, 'not_found', `no profile ${profileId}`);
      const now = deps.now();
      const explained = await explainRule(sql, a.rule, { now, profileId: live, describe: describeRule });
      const tree = explained && showValues(explained, piiView(deps.pii, c.get('principal')));
      const history = await membershipHistory(sql, key, live);
      const current = history.find((h) => h.exitedAt === null);
      return c.json(
        {
          audience: key,
          profileId: live,
          member: !!current,
          matches: tree?.result ?? false,
          at: now.toISOString(),
          tree,
          history: history.map((h) => ({
            enteredAt: h.enteredAt.toISOString(),
            exitedAt: h.exitedAt?.toISOString() ?? null,
            enteredBy: h.enteredBy,
            exitedBy: h.exitedBy,
          })),
        },
        200,
      );
    },
  );
  return app;
}
