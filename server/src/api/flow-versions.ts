import { diffFlows } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Role } from '../auth/keys.ts';
import { type AuthVariables, actorOf, can, requirePermission } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { type AutomateStage, getFlow, listVersions, versionOf } from '../pipeline/automate/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const count = z.number().int();
const Id = z.string().min(1).max(100);
const VersionNo = z.coerce.number().int().min(1);
const VersionSchema = z
  .object({
    version: count,
    publishedAt: z.string(),
    publishedBy: z.string().nullable().openapi({ description: '`<kind>:<id>` of who published it' }),
    active: z
      .object({ waiting: count, awaitingEffect: count })
      .openapi({ description: 'Runs on this version still going (people stay on the version they entered)' }),
  })
  .openapi('FlowVersion');
const Change = z.object({ path: z.string(), before: z.unknown().optional(), after: z.unknown().optional() });
const DiffSchema = z
  .object({
    flowId: z.string(),
    from: count,
    to: count,
    settings: z.array(Change).openapi({ description: 'Flow-level fields that differ: trigger.*, entry.*, goal.*, …' }),
    start: z.object({ before: z.string().optional(), after: z.string().optional() }).optional(),
    nodes: z.object({
      added: z.array(z.record(z.string(), z.unknown())),
      removed: z.array(z.record(z.string(), z.unknown())),
      changed: z.array(z.object({ id: z.string(), type: z.string(), changes: z.array(Change) })),
    }),
    edges: z.object({
      added: z.array(z.object({ from: z.string(), to: z.string(), on: z.string() })),
      removed: z.array(z.object({ from: z.string(), to: z.string(), on: z.string() })),
    }),
  })
  .openapi('FlowDiff');
const MigrateBody = z.object({
  from: count.min(1).openapi({ description: 'The version whose waiting runs move' }),
  to: count.min(1).openapi({ description: 'The version they move to (an earlier one: a rollback)' }),
  map: z
    .record(z.string().min(1).max(100), z.string().min(1).max(100))
    .openapi({ description: 'Node of `from` → node of `to`; runs at other nodes stay' }),
  dryRun: z.boolean().default(false).openapi({ description: 'Only count what would move where' }),
  reason: z.string().max(2000).optional().openapi({ description: 'Why, for the journal and the audit log' }),
});
const ReportSchema = z
  .object({
    flowId: z.string(),
    from: count,
    to: count,
    dryRun: z.boolean(),
    moves: z
      .array(z.object({ from: z.string(), to: z.string(), toType: z.string(), runs: count, atOnce: z.boolean() }))
      .openapi({
        description: 'Waiting runs per mapped node; atOnce: the target does not wait, so they go on when moved',
      }),
    stays: z
      .array(z.object({ node: z.string().nullable(), reason: z.enum(['unmapped', 'awaiting_effect']), runs: count }))
      .openapi({
        description: 'Runs that stay on `from`: at an unmapped node, or awaiting a webhook’s or action’s result',
      }),
    moved: count.openapi({ description: 'Runs this call moved (0 when dry)' }),
    movedOnMeanwhile: count.openapi({ description: 'Runs that moved on by themselves before they were locked' }),
  })
  .openapi('FlowMigration');

/**
 * `/api/flows/:id/versions` and `/api/flows/:id/migrate`: a flow's published versions (history with the
 * runs active on each, a version's definition, the structural diff of two), and moving waiting people from
 * one version to another by a node map (a dry run previews it; a rollback is the same call reversed).
 * Moving live people is an approver's act: a dry run takes flows:write, the move itself flows:approve (admins,
 * or CAIRN_FLOW_APPROVER_ROLE), as approving a change does.
 *
 * @example
 * api.route('/flows', flowVersionsApi({ sql, automate }));
 */
export function flowVersionsApi(deps: {
  sql: Sql;
  automate: Pick<AutomateStage, 'migrate'>;
  config?: Pick<Config, 'flowApproverRole'>;
}) {
  const { sql } = deps;
  const approvers: Role[] = deps.config?.flowApproverRole ? [deps.config.flowApproverRole] : [];
  const read = requirePermission('flows:read');
  const write = requirePermission('flows:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    if (!(await getFlow(sql, id))) throw apiError(404, 'not_found', `no flow ${id}`);
  };
  const version = async (id: string, v: number) => {
    const found = await versionOf(sql, id, v);
    if (!found) throw apiError(404, 'not_found', `flow ${id} has no version ${v}`);
    return found;
  };
  const notFound = json(ErrorSchema, 'No such flow or version');

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/versions',
      tags: ['Flows'],
      summary: 'A flow’s published versions, newest first, with the runs still going on each',
      middleware: [read] as const,
      request: { params: z.object({ id: Id }) },
      responses: { 200: json(z.object({ data: z.array(VersionSchema) }), 'Versions'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await existing(id);
      const data = (await listVersions(sql, id)).map((v) => ({
        ...v,
        publishedAt: new Date(v.publishedAt).toISOString(),
      }));
      return c.json({ data }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/versions/{version}',
      tags: ['Flows'],
      summary: 'One published version: its definition (immutable), when and by whom',
      middleware: [read] as const,
      request: { params: z.object({ id: Id, version: VersionNo }) },
      responses: {
        200: json(
          z.object({
            flowId: z.string(),
            version: count,
            publishedAt: z.string(),
            publishedBy: z.string().nullable(),
            definition: z.record(z.string(), z.unknown()),
          }),
          'The version',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id, version: v } = c.req.valid('param');
      const found = await version(id, v);
      return c.json(
        {
          flowId: id,
          version: found.version,
          publishedAt: new Date(found.publishedAt).toISOString(),
          publishedBy: found.publishedBy,
          definition: found.definition,
        } as never,
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/versions/{a}/diff/{b}',
      tags: ['Flows'],
      summary: 'What changed from version a to version b: settings, start node, nodes and their fields, edges',
      middleware: [read] as const,
      request: { params: z.object({ id: Id, a: VersionNo, b: VersionNo }) },
      responses: { 200: json(DiffSchema, 'The structural diff'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id, a, b } = c.req.valid('param');
      const [before, after] = [await version(id, a), await version(id, b)];
      return c.json({ flowId: id, from: a, to: b, ...diffFlows(before.definition, after.definition) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/migrate',
      tags: ['Flows'],
      summary:
        'Move waiting people from one version to another by a node map (dryRun: preview, flows:write; the move: flows:approve); a rollback is the same call reversed',
      description:
        'Runs of `from` waiting at a mapped node move to the mapped node of `to`, planned again as if they had entered it when they began waiting (a shortened wait re-plans from then; a wait that would be over, or a node that does not wait, goes on at once). Runs awaiting a webhook’s or action’s result, and runs at unmapped nodes, stay. Each move is journaled (`migrated`) with who and why. A repeated call moves only the runs still on `from`.',
      middleware: [write] as const,
      request: {
        params: z.object({ id: Id }),
        body: { content: { 'application/json': { schema: MigrateBody } } },
      },
      responses: {
        200: json(ReportSchema, 'What moved (or would move) where, and what stays and why'),
        400: json(ErrorSchema, 'A map naming nodes the versions do not have, or from = to'),
        404: notFound,
        ...AUTH_ERRORS,
        403: json(ErrorSchema, 'The role lacks the permission; moving people (not a dry run) takes flows:approve'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      await existing(id);
      const principal = c.get('principal');
      if (!body.dryRun && !can(principal.role, 'flows:approve') && !approvers.includes(principal.role))
        throw apiError(403, 'forbidden', `role ${principal.role} lacks flows:approve: moving people takes an approver`);
      const report = await deps.automate.migrate({
        flowId: id,
        from: body.from,
        to: body.to,
        map: body.map,
        dryRun: body.dryRun,
        by: actorOf(principal),
        reason: body.reason ?? null,
      });
      return c.json(report, 200);
    },
  );
  return app;
}
