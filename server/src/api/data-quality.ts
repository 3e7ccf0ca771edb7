import { describeIssues, type TraitQualityRule, TraitQualityRuleSchema, templateInputs } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import {
  deleteTraitRule,
  getTraitRule,
  type IdentifyStage,
  listTraitRules,
  putTraitRule,
  qualityReport,
  type StoredTraitRule,
  type TraitQuality,
} from '../pipeline/identify/index.ts';
import { BackfillSchema, backfillApi, backfillView } from './data-quality-backfill.ts';
import { ReportSchema, RuleBodySchema, StoredRuleSchema, TraitReportSchema } from './data-quality-schemas.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const TAG = 'Data quality';
const DAY_MS = 86_400_000;
const DEFAULT_STALE_DAYS = 90;

// Trait keys as the fold accepts them (packages/core/src/profile/traits.ts).
const KeyParam = z.object({
  key: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^$]/, 'a trait key cannot start with $')
    .openapi({ param: { name: 'key', in: 'path' }, example: 'country' }),
});

const ReportQuery = z.object({
  staleDays: z.coerce
    .number()
    .int()
    .min(1)
    .max(36_500)
    .default(DEFAULT_STALE_DAYS)
    .openapi({ description: 'A value is stale when it was last updated more than this many days ago (default 90)' }),
  samplePercent: z.coerce.number().gt(0).max(100).optional().openapi({
    description:
      'Read only this percent of profile_traits (a repeatable block sample): counts become estimates (exact: false)',
  }),
  examples: z.coerce
    .number()
    .int()
    .min(0)
    .max(50)
    .optional()
    .openapi({ description: 'Failing values shown per trait (default 3 in the list, 10 for one trait)' }),
});

const notFound = { description: 'No rule for this trait', content: { 'application/json': { schema: ErrorSchema } } };
const iso = (d: Date) => d.toISOString();
const ruleView = (r: StoredTraitRule) => ({
  key: r.key,
  rule: r.rule,
  createdAt: iso(r.createdAt),
  updatedAt: iso(r.updatedAt),
  updatedBy: r.updatedBy,
});

/**
 * Checks a rule against the others: a fill template never reads its own trait, never makes a cycle
 * of fills, and never copies a sensitive trait into one stored in clear. Returns the reason, or null.
 */
function ruleConflict(key: string, rule: TraitQualityRule, others: StoredTraitRule[], pii: Pii): string | null {
  if (!rule.fill || !('template' in rule.fill)) return null;
  const inputs = templateInputs(rule.fill.template);
  if (inputs.includes(key)) return `fill.template: reads the trait it fills ({{ traits.${key} }})`;
  const secret = inputs.find((k) => pii.isSensitive(k));
  if (secret && !pii.isSensitive(key)) {
    return `fill.template: reads the sensitive trait "${secret}" into "${key}", which is not sensitive (stored in clear)`;
  }
  const reads = new Map<string, string[]>();
  for (const o of others) {
    if (o.key !== key && o.rule.fill && 'template' in o.rule.fill)
      reads.set(o.key, templateInputs(o.rule.fill.template));
  }
  reads.set(key, inputs);
  // Depth-first from the new rule: reaching it again is a cycle.
  const path: string[] = [key];
  const visit = (k: string): string | null => {
    for (const next of reads.get(k) ?? []) {
      if (next === key) return [...path, key].join(' → ');
      if (path.includes(next) || !reads.has(next)) continue;
      path.push(next);
      const found = visit(next);
      if (found) return found;
      path.pop();
    }
    return null;
  };
  const cycle = visit(key);
  return cycle ? `fill.template: fills would derive from each other in a cycle (${cycle})` : null;
}

/**
 * `/api/data-quality`: rules per trait (normalisation applied wherever traits are folded, fills for
 * missing values marked `derived`), and the quality report (fill rate, types, failing values, stale
 * values). Admins write rules; every reader of profiles reads the report, sensitive values masked
 * as elsewhere.
 *
 * @example
 * api.route('/data-quality', dataQualityApi({ sql, pii, identify, config, now }));
 */
export function dataQualityApi(deps: {
  sql: Sql;
  pii: Pii;
  identify: IdentifyStage;
  config: Readonly<Config>;
  now: () => Date;
}) {
  const { sql } = deps;
  const read = requirePermission('profiles:read');
  const write = requirePermission('quality:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.route('/', backfillApi(deps));
  const rulesByKey = async () => new Map((await listTraitRules(sql)).map((r) => [r.key, r.rule]));
  const report = async (
    c: Context<{ Variables: AuthVariables }>,
    keys: string[] | null,
    q: z.infer<typeof ReportQuery>,
    examples: number,
  ) => {
    const r = await qualityReport(sql, deps.pii, await rulesByKey(), keys, {
      staleBefore: new Date(deps.now().getTime() - q.staleDays * DAY_MS),
      samplePercent: q.samplePercent ?? null,
      examples: q.examples ?? examples,
      defaultCallingCode: deps.config.identity.defaultCallingCode,
      openTypes: keys !== null,
    });
    // Failing values are PII like any trait value: clear with pii:read, masked for the others.
    const view = piiView(deps.pii, c.get('principal'));
    const shown = (t: TraitQuality) =>
      t.failed
        ? {
            ...t,
            failed: {
              count: t.failed.count,
              examples: t.failed.examples.map((e) => ({
                profileId: e.profileId,
                value: view.value(e.key, e.value),
                reason: e.reason,
              })),
            },
          }
        : t;
    return { ...r, staleDays: q.staleDays, traits: r.traits.map(shown) };
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/traits',
      tags: [TAG],
      summary: 'Quality of every trait: fill rate, types, failing and stale values',
      description:
        'One pass over profile_traits for the counts and one over the values of traits with a normalisation rule ' +
        '(see docs/data-quality.md for the cost). Exact unless samplePercent is given. Sensitive values sealed at rest ' +
        'count as type `sealed` here; GET /data-quality/traits/{key} opens them.',
      middleware: [read] as const,
      request: { query: ReportQuery },
      responses: { 200: json(ReportSchema, 'The report, traits by key'), ...AUTH_ERRORS },
    }),
    async (c) => c.json((await report(c, null, c.req.valid('query'), 3)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/traits/{key}',
      tags: [TAG],
      summary: 'Quality of one trait, with examples of values its rule fails on',
      middleware: [read] as const,
      request: { params: KeyParam, query: ReportQuery },
      responses: {
        200: json(TraitReportSchema, 'The trait’s quality'),
        404: json(ErrorSchema, 'No profile has this trait and it has no rule'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const r = await report(c, [key], c.req.valid('query'), 10);
      const trait = r.traits[0];
      if (!trait) throw apiError(404, 'not_found', `no profile has the trait "${key}" and it has no rule`);
      const { traits: _t, ...rest } = r;
      return c.json({ ...rest, trait } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/rules',
      tags: [TAG],
      summary: 'List the rules per trait',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(StoredRuleSchema) }), 'Rules by trait key'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listTraitRules(sql)).map(ruleView) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/rules/{key}',
      tags: [TAG],
      summary: 'A trait’s rule',
      middleware: [read] as const,
      request: { params: KeyParam },
      responses: { 200: json(StoredRuleSchema, 'The rule'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const r = await getTraitRule(sql, key);
      if (!r) throw apiError(404, 'not_found', `no rule for the trait "${key}"`);
      return c.json(ruleView(r) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/rules/{key}',
      tags: [TAG],
      summary: 'Create or replace a trait’s rule',
      description:
        'Applies to values folded from now on, by stage 2 and by bulk import (a refold of a profile applies it to ' +
        'its past events too). A value the rule fails on is kept as received and counted in the report. ' +
        '`?backfill=apply` (or `dry-run`) also queues a backfill of this trait over the stored profiles ' +
        '(POST /data-quality/backfills), returned as `backfill`.',
      middleware: [write] as const,
      request: {
        params: KeyParam,
        query: z.object({
          backfill: z.enum(['none', 'apply', 'dry-run']).default('none').openapi({
            description: 'Also apply the rule to the profiles already stored (`apply`), or report what it would change',
          }),
        }),
        body: { content: { 'application/json': { schema: RuleBodySchema } }, required: true },
      },
      responses: {
        200: json(StoredRuleSchema.extend({ backfill: BackfillSchema.optional() }), 'Replaced'),
        201: json(StoredRuleSchema.extend({ backfill: BackfillSchema.optional() }), 'Created'),
        400: json(ErrorSchema, 'Invalid rule (the reason names the field)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const body = c.req.valid('json');
      const parsed = TraitQualityRuleSchema.safeParse(body);
      if (!parsed.success) {
        const details = describeIssues(parsed.error, body);
        const first = details[0]!;
        throw apiError(400, 'invalid_request', `${first.path || 'rule'}: ${first.message}`, details);
      }
      const rule = parsed.data as TraitQualityRule;
      const conflict = ruleConflict(key, rule, await listTraitRules(sql), deps.pii);
      if (conflict) throw apiError(400, 'invalid_request', conflict);
      const created = await putTraitRule(sql, key, rule, c.get('principal').id);
      await deps.identify.reloadTraitRules();
      const stored = (await getTraitRule(sql, key))!;
      const { backfill } = c.req.valid('query');
      const queued =
        backfill === 'none'
          ? undefined
          : await deps.identify.requestBackfill(
              { keys: [key], dryRun: backfill === 'dry-run', triggerFlows: false },
              c.get('principal').id,
            );
      const answer = {
        ...ruleView(stored),
        ...(queued ? { backfill: backfillView(queued, deps.pii, c.get('principal'), deps.now()) } : {}),
      };
      return c.json(answer as never, created ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/rules/{key}',
      tags: [TAG],
      summary: 'Delete a trait’s rule (stored values stay as they are)',
      middleware: [write] as const,
      request: { params: KeyParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      if (!(await deleteTraitRule(sql, key))) throw apiError(404, 'not_found', `no rule for the trait "${key}"`);
      await deps.identify.reloadTraitRules();
      return c.body(null, 204);
    },
  );

  return app;
}
