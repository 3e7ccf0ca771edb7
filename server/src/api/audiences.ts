import { describeRule } from '@cairn/core';
import { createRoute, z } from '@hono/zod-openapi';
import { requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import { type PiiView, piiView } from '../pii/view.ts';
import {
  type AudienceRecord,
  type AudienceRow,
  audienceCounts,
  deleteAudience,
  type ExplainedNode,
  evaluateRule,
  explainRule,
  getAudience,
  insertAudience,
  listAudiences,
  membershipHistory,
  updateAudience,
} from '../pipeline/compute/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { type DefinitionApp, definitionKey, definitionRoutes } from './definitions.ts';
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

const KEY = definitionKey().openapi({ example: 'dormant_high_value' });
const RuleBody = RuleSchema;
const AudienceSchema = z
  .object({
    key: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    rule: RuleSchema,
    words: z.string().openapi({ description: 'The rule in words' }),
    enabled: z.boolean(),
    warnings: RetentionWarningsSchema,
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

interface AudienceDeps extends RetentionDeps {
  sql: Sql;
  handOff: HandOff;
  pii: Pii;
  now: () => Date;
}

/**
 * `/api/audiences`: rule-defined audiences kept current by stage 3, their members (paged, CSV),
 * counts over time, a preview of unsaved rules and why a profile is in or out.
 *
 * @example
 * api.route('/audiences', audiencesApi({ sql, handOff, pii, now: () => new Date() }));
 */
export function audiencesApi(deps: AudienceDeps) {
  const { sql } = deps;
  return definitionRoutes(deps, {
    kind: 'audience',
    noun: 'audience',
    tag: 'Audiences',
    schema: AudienceSchema,
    view: (a) => withWarnings(deps, view(a), { rule: a.rule }),
    record: (a): AudienceRecord => ({ name: a.name, description: a.description, rule: a.rule, enabled: a.enabled }),
    store: {
      list: listAudiences,
      get: getAudience,
      insert: insertAudience,
      update: updateAudience,
      remove: deleteAudience,
    },
    // A disabled audience keeps its members as they were: nothing to compute until it is enabled again.
    computes: (a) => a.enabled,
    changed: (before, after) =>
      JSON.stringify(after.rule) !== JSON.stringify(before.rule) || (after.enabled && !before.enabled),
    describe: {
      notFound: notFound.description,
      list: { summary: 'List audiences with member counts', description: 'Audiences' },
      get: { summary: 'One audience', description: 'The audience' },
      create: {
        summary: 'Create an audience (computed over every profile at once, then kept current)',
        created: 'Created; members are computed in the background',
        invalid: 'Invalid rule (the message names the field)',
        refused: WINDOW_BEYOND_RETENTION,
      },
      update: {
        summary: 'Change an audience (a new rule is recomputed over every profile)',
        invalid: 'Invalid rule',
        refused: WINDOW_BEYOND_RETENTION,
      },
      remove: {
        summary: 'Delete an audience and its membership history (refused while another rule uses it)',
        inUse: 'Used by another rule',
      },
      recompute: 'Recompute over every profile now (normally never needed: membership is kept current)',
    },
    create: {
      schema: z.object({
        key: KEY,
        name: z.string().min(1).max(200),
        description: z.string().max(2000).optional(),
        rule: RuleBody,
        enabled: z.boolean().default(true),
      }),
      prepare: async (body) => ({
        key: body.key,
        record: {
          name: body.name,
          description: body.description ?? null,
          rule: guardRule(deps, await checkRule(sql, body.rule, { kind: 'audience', key: body.key }, deps.pii)),
          enabled: body.enabled,
        },
      }),
    },
    update: {
      schema: z.object({
        name: z.string().min(1).max(200),
        description: z.string().max(2000).nullable(),
        rule: RuleBody,
        enabled: z.boolean(),
      }),
      prepare: async (before, patch, key) =>
        applyPatch(before, {
          ...patch,
          rule:
            patch.rule === undefined
              ? undefined
              : guardRule(deps, await checkRule(sql, patch.rule, { kind: 'audience', key }, deps.pii)),
        }),
    },
    routes: {
      first: (app) => previewRoute(app, deps),
      last: (app, { existing }) => {
        membersRoute(app, sql, deps.pii, 'audience', existing);
        countsRoute(app, sql, existing);
        explainRoute(app, deps, existing);
      },
    },
  });
}

/** How long counting an unsaved rule may take. */
const PREVIEW_TIMEOUT_MS = 15_000;

// `POST /preview` answers for an unsaved rule: before the `/{key}` routes, like any static path.
function previewRoute(app: DefinitionApp, deps: AudienceDeps) {
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
        422: json(ErrorSchema, 'Counting the rule took too long (query_too_broad)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const rule = await checkRule(deps.sql, body.rule, null, deps.pii);
      const now = deps.now();
      // A preview is typed live (the console asks again at each change): a rule too broad for this
      // database answers 422 in bounded time instead of holding a connection.
      const found = await deps.sql
        .begin(async (tx) => {
          await tx`SELECT set_config('statement_timeout', ${String(PREVIEW_TIMEOUT_MS)}, true)`;
          return evaluateRule(tx, rule, { now });
        })
        .catch((err: { code?: string }) => {
          if (err.code !== '57014') throw err;
          throw apiError(422, 'query_too_broad', `the rule took longer than ${PREVIEW_TIMEOUT_MS / 1000} s to count`);
        });
      const members = [...found].sort();
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
}

// Member counts over time, one point per full recompute and per hour of sweeps.
function countsRoute(app: DefinitionApp, sql: Sql, existing: (key: string) => Promise<AudienceRow>) {
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
}

// Why a profile is in or out: the rule evaluated now, node by node, beside the stored membership.
function explainRoute(app: DefinitionApp, deps: AudienceDeps, existing: (key: string) => Promise<AudienceRow>) {
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
      const live = await liveProfileId(deps.sql, profileId);
      if (!live) throw apiError(404, 'not_found', `no profile ${profileId}`);
      const now = deps.now();
      const explained = await explainRule(deps.sql, a.rule, { now, profileId: live, describe: describeRule });
      const tree = explained && showValues(explained, piiView(deps.pii, c.get('principal')));
      const history = await membershipHistory(deps.sql, key, live);
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
}
