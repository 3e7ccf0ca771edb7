import { diffFlows, type FlowDefinition } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Role } from '../auth/keys.ts';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import { apiError } from '../http/errors.ts';
import {
  archiveFlow,
  type ConflictReport,
  findConflicts,
  flowReachOut,
  getFlowVersion,
  type ReviewStep,
  reviewFlow,
  staleFlows,
  storeConflicts,
  storedConflicts,
  triggerReach,
} from '../pipeline/automate/index.ts';
import { listDestinations } from '../pipeline/deliver/index.ts';
import { type FlowDeps, FlowSchema, flowChecks, NoteBody, noteOf, notFound, Param, transition, view } from './flows.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Reason = z.object({ kind: z.string(), text: z.string() }).catchall(z.unknown()).openapi('FlowConflictReason', {
  description:
    'Why they overlap (kind): same_event, same_audience, same_tag, same_trait_change, same_date, same_calendar, schedules_close, shared_people (different trigger kinds: only through the people they share), same_destination, same_channel, close_in_time (gapMs between their earliest sends, null when their entries are not tied to one moment; sends: each side’s send node and how long after entry)',
});
const FlowConflictSchema = z
  .object({
    flowId: z.string(),
    name: z.string(),
    version: z.number().int().openapi({ description: 'The live version compared with' }),
    priority: z.number().openapi({ description: 'The live flow’s priority (higher wins a capped slot)' }),
    reasons: z.array(Reason),
    measured: z
      .object({
        overlapCount: z.number().int().nullable().openapi({ description: 'People who would enter both today' }),
        submittedCount: z.number().int().nullable().openapi({ description: 'People who would enter this flow' }),
        liveCount: z.number().int().nullable().openapi({ description: 'People who would enter the live flow' }),
        capped: z
          .boolean()
          .openapi({ description: 'A side had more than 20,000 people: counted among the lowest ids (lower bounds)' }),
        note: z
          .string()
          .openapi({ description: 'How they were counted (event senders in 30 days, members now…), or why not' }),
      })
      .openapi({ description: 'null counts: an API trigger (not countable ahead), or not counted (timeout, limit)' }),
    slot: z.object({
      caps: z.array(
        z.object({ channel: z.string(), max: z.number(), windowHours: z.number(), audience: z.string().optional() }),
      ),
      winner: z.enum(['submitted', 'live', 'tie']).openapi({ description: 'Who takes a capped slot both want' }),
      text: z.string(),
    }),
  })
  .openapi('FlowConflict');
const ConflictsSchema = z.array(FlowConflictSchema).openapi({
  description:
    'Live flows that can message the same people on the same channel close in time (sends within 24 h of each other), most shared people first',
});
const ConflictCheckSchema = z.object({
  checkedAt: z.string(),
  windowHours: z.number(),
  asSubmitted: z
    .boolean()
    .openapi({ description: 'true: found at submit and kept with it; false: found now (a draft)' }),
});

const Conflict = json(ErrorSchema, 'Not in a state this step leaves (or archived, or changed meanwhile)');

const ReviewSchema = z
  .object({
    flowId: z.string(),
    state: z.enum(['draft', 'in_review', 'approved', 'published']),
    against: z.number().int().nullable().openapi({ description: 'The live version compared with; null: none yet' }),
    diff: z.record(z.string(), z.unknown()).openapi({
      description:
        'settings (trigger, entry, goal, exit, zone, name: changed fields with before/after), start, nodes added/removed/changed (fields), edges added/removed',
    }),
    preview: z.object({
      reach: z.object({
        trigger: z.string(),
        people: z.number().int().nullable(),
        basis: z.string(),
        nextFiring: z.string().optional(),
      }),
      sends: z.object({
        destinations: z.array(
          z.object({
            id: z.string(),
            name: z.string().nullable(),
            plugin: z.string().nullable(),
            channel: z.string().nullable(),
            nodes: z.array(z.string()),
          }),
        ),
        webhooks: z.array(z.object({ host: z.string(), nodes: z.array(z.string()) })),
      }),
    }),
    conflicts: ConflictsSchema,
    conflictCheck: ConflictCheckSchema,
  })
  .openapi('FlowReview');

const changed = (id: string) => apiError(409, 'conflict', `flow ${id} changed meanwhile: read it again`);

// Compared with nothing (never published), every node, edge and setting is added.
const NOTHING = { nodes: [], edges: [] } as unknown as FlowDefinition;

/**
 * `/api/flows`: review and lifecycle. A flow's working copy is submitted for review (`flows:submit`),
 * approved or rejected by another person (`flows:approve`: admins, or CAIRN_FLOW_APPROVER_ROLE; never its
 * last editor), then published; archived for good. Each step takes a note (why), kept with who did it
 * in the audit log. A reviewer reads the diff against the live version and a preview of whom it enters
 * and where it sends; `GET /stale` lists live flows nobody entered in 30 days.
 * Mounted before `flowsApi`, so `/stale` is not taken for a flow id.
 *
 * @example
 * api.route('/flows', flowReviewApi(deps));
 */
export function flowReviewApi(deps: FlowDeps & { config?: Pick<Config, 'flowApproverRole' | 'databaseUrl'> }) {
  const { sql } = deps;
  const { existing, checked, runnable } = flowChecks(deps);
  const dbKind = deps.config?.databaseUrl ? 'postgres' : 'embedded';
  // Each destination with its own channel, else its plugin's (message plugins have one).
  const destinations = async () =>
    new Map(
      (await listDestinations(sql)).map((d) => [
        d.id,
        { name: d.name, plugin: d.plugin, channel: d.channel ?? deps.plugins?.get(d.plugin)?.channel ?? null },
      ]),
    );
  const conflictsOf = async (flow: { id: string; definition: FlowDefinition }) => {
    const known = await destinations();
    const channelOf = (id: string) => known.get(id)?.channel;
    return findConflicts(sql, flow.id, flow.definition, { now: deps.now(), channelOf, dbKind });
  };
  const approvers: Role[] = deps.config?.flowApproverRole ? [deps.config.flowApproverRole] : [];
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/stale',
      tags: ['Flows'],
      summary: 'Live flows nobody entered in the last `days` days (default 30), live since before then',
      middleware: [requirePermission('flows:read')] as const,
      request: { query: z.object({ days: z.coerce.number().int().min(1).max(365).default(30) }) },
      responses: {
        200: json(
          z.object({
            data: z.array(
              z.object({ id: z.string(), name: z.string(), version: z.number().int(), liveSince: z.string() }),
            ),
          }),
          'Stale flows, longest live first',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json({ data: await staleFlows(sql, deps.now(), c.req.valid('query').days) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/review',
      tags: ['Flows'],
      summary: 'What a reviewer sees: the working copy’s diff against the live version, whom it enters, where it sends',
      middleware: [requirePermission('flows:read')] as const,
      request: { params: Param },
      responses: { 200: json(ReviewSchema, 'The review'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const flow = await existing(id);
      const live = flow.version === null ? undefined : await getFlowVersion(sql, id, flow.version);
      const known = await destinations();
      const sends = flowReachOut(flow.definition, (did) => known.get(did));
      // In review or approved: the conflicts found at submit, as the submitter saw them; else found now.
      const kept = ['in_review', 'approved'].includes(flow.reviewState) ? await storedConflicts(sql, id) : undefined;
      const report: ConflictReport = kept ?? (await conflictsOf(flow));
      const review = {
        flowId: id,
        state: flow.reviewState,
        against: live ? flow.version : null,
        diff: diffFlows(live ?? NOTHING, flow.definition),
        preview: { reach: await triggerReach(sql, flow.definition, deps.now()), sends },
        conflicts: report.flows,
        conflictCheck: {
          checkedAt: report.checkedAt,
          windowHours: report.windowHours,
          asSubmitted: kept !== undefined,
        },
      };
      return c.json(review as never, 200);
    },
  );

  const steps: [ReviewStep, string, string][] = [
    ['submit', 'flows:submit', 'Send the working copy for review (checked as publish checks it)'],
    ['approve', 'flows:approve', 'Approve the working copy under review (not its last editor’s to approve)'],
    ['reject', 'flows:approve', 'Send the working copy under review back to draft, saying why'],
  ];
  for (const [step, permission, summary] of steps) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${step}`,
        tags: ['Flows'],
        summary,
        middleware: [
          step === 'submit' ? requirePermission('flows:submit') : requirePermission('flows:approve', approvers),
        ] as const,
        request: {
          params: Param,
          body: {
            content: {
              'application/json': {
                schema: step === 'reject' ? z.object({ note: z.string().trim().min(1).max(2000) }) : NoteBody,
              },
            },
            required: step === 'reject',
          },
        },
        responses: {
          200:
            step === 'submit'
              ? json(
                  FlowSchema.extend({ conflicts: ConflictsSchema }),
                  'In review, with the live flows it may conflict with (kept for the reviewer)',
                )
              : json(FlowSchema, step === 'approve' ? 'Approved' : 'A draft again'),
          400: json(ErrorSchema, step === 'submit' ? 'Invalid, or not runnable here (node and reason)' : 'No note'),
          ...AUTH_ERRORS,
          403: json(ErrorSchema, `Lacks ${permission}, or (self_approval) is the working copy's last editor`),
          404: notFound,
          409: Conflict,
        },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        const flow = await existing(id);
        const principal = c.get('principal');
        const expected = step === 'submit' ? 'draft' : 'in_review';
        if (flow.status === 'archived') throw apiError(409, 'conflict', `flow ${id} is archived`);
        if (flow.reviewState !== expected) {
          const now = flow.reviewState === 'published' ? 'the live version: nothing to review' : flow.reviewState;
          throw apiError(409, 'conflict', `flow ${id}'s working copy is ${now}, not ${expected}`);
        }
        if (step === 'approve' && flow.lastEditedBy === actorOf(principal))
          throw apiError(
            403,
            'self_approval',
            `${flow.lastEditedBy} last edited flow ${id}'s working copy: another person approves it`,
          );
        if (step === 'submit') await runnable(await checked(flow.definition));
        const t = transition(step, principal, deps.now(), noteOf(c));
        const report = step === 'submit' ? await conflictsOf(flow) : undefined;
        const taken = await sql.begin(async (tx) => {
          if (!(await reviewFlow(tx, id, step, t))) return false;
          // Kept with the submission, for the definition it was found for (an edit meanwhile: 409).
          if (report && !(await storeConflicts(tx, id, flow.definition, report))) throw changed(id);
          return true;
        });
        if (!taken) throw changed(id);
        const after = view(await existing(id));
        return c.json((report ? { ...after, conflicts: report.flows } : after) as never, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/archive',
      tags: ['Flows'],
      summary: 'Archive: nobody enters the flow again (its planned firings are dropped); people in it go on',
      middleware: [requirePermission('flows:write')] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: NoteBody } }, required: false } },
      responses: { 200: json(FlowSchema, 'Archived'), 404: notFound, 409: Conflict, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await existing(id);
      const t = transition('archive', c.get('principal'), deps.now(), noteOf(c));
      if (!(await sql.begin((tx) => archiveFlow(tx, id, t))))
        throw apiError(409, 'conflict', `flow ${id} is archived already`);
      return c.json(view(await existing(id)) as never, 200);
    },
  );

  return app;
}
