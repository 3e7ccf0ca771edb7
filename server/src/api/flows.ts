import {
  type FlowContext,
  type FlowDefinition,
  type FlowIssue,
  flowJsonSchema,
  type JsonObject,
  POINTS_BALANCE,
  type ProfileFacts,
  type ScriptItem,
  simulate,
  validateFlow,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { flowEmployeeIssues } from '../employees/checks.ts';
import { apiError } from '../http/errors.ts';
import { maskPayload, maskValue, type Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import {
  type AutomateStage,
  calendarKeys,
  calendarsFor,
  couponPoolKeys,
  type FlowRow,
  type FlowTransition,
  flowRuns,
  getFlow,
  getFlowVersion,
  insertFlow,
  listFlows,
  loadFacts,
  needsOf,
  planFlow,
  publishFlow,
  runnerIssues,
  setFlowStatus,
  updateFlow,
} from '../pipeline/automate/index.ts';
import { allRules } from '../pipeline/compute/index.ts';
import { listDestinations, type PluginRegistry } from '../pipeline/deliver/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// A flow definition is parsed as any JSON here and validated by validateFlow, whose issues name the node
// and the field; the description shows the real schema (generated from the zod schema that validates it).
const FlowDefinitionSchema = z.unknown().openapi('FlowDefinition', {
  ...flowJsonSchema({ ruleRef: '#/components/schemas/Rule' }),
  description:
    'A flow: a trigger, entry rules, and nodes joined by typed edges (packages/core/src/flows/README.md). Rules are the audience rule language.',
});

const TransitionSchema = z.object({
  action: z.enum(['submit', 'approve', 'reject', 'publish', 'pause', 'resume', 'archive']),
  by: z.string(),
  at: z.string(),
  note: z.string().nullable(),
});

export const FlowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    status: z
      .enum(['draft', 'live', 'paused', 'archived'])
      .openapi({ description: 'Whether triggers enter people: draft = never published; archived = never again' }),
    version: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'The published version people enter; null: never published' }),
    definition: FlowDefinitionSchema,
    review: z
      .object({
        state: z.enum(['draft', 'in_review', 'approved', 'published']),
        lastEditedBy: z.string().nullable().openapi({ description: 'Cannot approve it' }),
        submittedBy: z.string().nullable(),
        approvedBy: z.string().nullable(),
        lastTransition: TransitionSchema.nullable().openapi({ description: 'Who did what last, and why' }),
      })
      .openapi({ description: 'The working copy in review: draft → in_review → approved → published (live)' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Flow');

const Fields = z.object({
  definition: FlowDefinitionSchema,
  description: z.string().max(2000).nullable(),
});
const Create = Fields.extend({ description: z.string().max(2000).optional() });
export const Param = z.object({ id: z.string() });
export const notFound = { description: 'No such flow', content: { 'application/json': { schema: ErrorSchema } } };
const Invalid = json(ErrorSchema, 'Invalid flow: `error.details` lists every issue with its node and path');

const Duration = z.object({
  days: z.number().min(0).optional(),
  hours: z.number().min(0).optional(),
  minutes: z.number().min(0).optional(),
  seconds: z.number().min(0).optional(),
});
const When = z.union([z.string().datetime({ offset: true }), z.number().int()]);
const SimulateBody = z.object({
  profile: z
    .object({
      id: z.string().uuid().optional().openapi({ description: 'An existing profile: its traits, audiences, tags' }),
      traits: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({ description: 'Set over (or instead of) the profile’s' }),
      audiences: z.array(z.string()).optional(),
      tags: z.array(z.string()).optional(),
    })
    .openapi({ description: 'Who: an existing profile, made-up traits, or both' }),
  start: When.optional().openapi({ description: 'The virtual clock’s start (default now)' }),
  horizon: Duration.openapi({ description: 'How far ahead to run' }),
  script: z
    .array(
      z.object({
        at: When,
        event: z.record(z.string(), z.unknown()).optional(),
        traits: z.record(z.string(), z.unknown()).optional(),
        audiences: z.array(z.string()).optional(),
        tags: z.array(z.string()).optional(),
      }),
    )
    .max(1000)
    .optional()
    .openapi({ description: 'What happens to the person, when: events, trait, audience and tag changes' }),
  data: z.record(z.string(), z.unknown()).optional().openapi({ description: 'Entry data of an API trigger' }),
  use: z
    .enum(['live', 'draft'])
    .optional()
    .openapi({ description: 'The published version (default when there is one) or the working copy' }),
});

const StepSchema = z.object({
  at: z.number(),
  node: z.string().optional(),
  iteration: z.number().int().nullable(),
  type: z.string(),
  outcome: z.string(),
  to: z.string().optional(),
  reason: z.string(),
  values: z.record(z.string(), z.unknown()).optional(),
  eventId: z.string().nullable(),
});
const RunSchema = z
  .object({
    id: z.string(),
    flowId: z.string(),
    version: z.number().int(),
    profileId: z.string(),
    status: z.string(),
    node: z.string().nullable(),
    enteredAt: z.string(),
    due: z.string().nullable(),
    listen: z.array(z.string()).nullable(),
    endedAt: z.string().nullable(),
    reason: z.string().nullable(),
    steps: z.array(StepSchema),
  })
  .openapi('FlowRun');

export interface FlowDeps {
  sql: Sql;
  pii: Pii;
  now: () => Date;
  automate: Pick<AutomateStage, 'enter'>;
  /** The installed plugins: an action node must name an action of its destination's plugin. */
  plugins?: Pick<PluginRegistry, 'get'>;
}

/** A transition's note (why), optional. */
export const NoteBody = z.object({
  note: z.string().trim().max(2000).optional().openapi({ description: 'Why (kept in the audit log)' }),
});

/** The last transition as the flow keeps it: who (the caller as a person), when, why. */
export function transition(
  action: FlowTransition['action'],
  principal: Parameters<typeof actorOf>[0],
  at: Date,
  note: string | undefined,
): FlowTransition {
  return { action, by: actorOf(principal), at: at.toISOString(), note: note || null };
}

/**
 * The flow as the API shows it.
 *
 * @example
 * c.json(view(await getFlow(sql, id)));
 */
export function view(f: FlowRow) {
  return {
    id: f.id,
    name: f.name,
    description: f.description,
    status: f.status,
    version: f.version,
    definition: f.definition,
    review: {
      state: f.reviewState,
      lastEditedBy: f.lastEditedBy,
      submittedBy: f.submittedBy,
      approvedBy: f.approvedBy,
      lastTransition: f.lastTransition,
    },
    createdAt: new Date(f.createdAt).toISOString(),
    updatedAt: new Date(f.updatedAt).toISOString(),
  };
}

/** A 400 that names the first issue (node, path, what) and lists every issue in `details`. */
function invalid(issues: readonly FlowIssue[]): never {
  const first = issues[0]!;
  const where = `${first.node ? `node ${first.node}: ` : ''}${first.path || 'flow'}`;
  throw apiError(400, 'invalid_flow', `${where}: ${first.message}`, issues);
}

/**
 * A flow's checks: `existing` (404 when there is none), `checked` (valid against what this server knows,
 * else 400 naming every issue), `runnable` (nothing this server cannot run yet, else 400): a flow is
 * checked when saved, submitted for review and published (what it names may be gone by then).
 *
 * @example
 * const { existing, checked, runnable } = flowChecks(deps);
 * await runnable(await checked((await existing(id)).definition));
 */
export function flowChecks(deps: FlowDeps) {
  const { sql } = deps;
  const existing = async (id: string) => {
    const row = await getFlow(sql, id);
    if (!row) throw apiError(404, 'not_found', `no flow ${id}`);
    return row;
  };
  const context = async (): Promise<FlowContext> => {
    const [destinations, rules, calendars] = await Promise.all([
      listDestinations(sql),
      allRules(sql),
      calendarKeys(sql),
    ]);
    const keys = (kind: string) => rules.filter((r) => r.kind === kind).map((r) => r.key);
    return {
      destinations: destinations.map((d) => d.id),
      ...(deps.plugins
        ? {
            actions: Object.fromEntries(
              destinations.map((d) => [d.id, Object.keys(deps.plugins?.get(d.plugin)?.actions ?? {})]),
            ),
          }
        : {}),
      audiences: keys('audience'),
      tags: keys('tag'),
      computed: [...keys('computed'), POINTS_BALANCE],
      couponPools: await couponPoolKeys(sql),
      calendars,
    };
  };
  const checked = async (input: unknown): Promise<FlowDefinition> => {
    const v = validateFlow(input, await context());
    if (!v.ok) invalid(v.issues);
    const employees = await flowEmployeeIssues(sql, v.flow);
    if (employees.length) invalid(employees);
    return v.flow;
  };

  const runnable = async (definition: FlowDefinition): Promise<void> => {
    const staticTags = (await allRules(sql)).filter((r) => r.kind === 'tag' && r.rule === null).map((r) => r.key);
    const unsupported = runnerIssues(definition, { staticTags, sensitive: deps.pii.isSensitive });
    if (unsupported.length) invalid(unsupported);
  };
  return { existing, checked, runnable };
}

/**
 * `/api/flows`: automation flows. A flow is saved as a draft (validated: the graph, templates, and what
 * this server knows — destinations, audiences, tags, computed traits), published as an immutable
 * version people then enter, paused (nobody new enters; people in it go on) and resumed; simulated on a
 * virtual clock with the same engine; and its runs are shown with their journal.
 *
 * @example
 * api.route('/flows', flowsApi({ sql, pii, now: () => new Date() }));
 */
export function flowsApi(deps: FlowDeps) {
  const { sql } = deps;
  const read = requirePermission('flows:read');
  const write = requirePermission('flows:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  const { existing, checked, runnable } = flowChecks(deps);

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Flows'],
      summary: 'List flows',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(FlowSchema) }), 'Flows, newest first'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listFlows(sql)).map(view) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Flows'],
      summary: 'Create a flow (a draft: nobody enters until it is published)',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Create } } } },
      responses: { 201: json(FlowSchema, 'Created'), 400: Invalid, ...AUTH_ERRORS },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const definition = await checked(body.definition);
      const by = actorOf(c.get('principal'));
      const id = await insertFlow(sql, { definition, description: body.description ?? null }, by);
      return c.json(view(await existing(id)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Flows'],
      summary: 'One flow',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(FlowSchema, 'The flow'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').id)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Flows'],
      summary:
        'Change a flow’s working copy (live runs keep their version); a changed definition is a draft again, to be reviewed',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: patchOf(Fields) } } } },
      responses: {
        200: json(FlowSchema, 'Changed'),
        400: Invalid,
        404: notFound,
        409: json(ErrorSchema, 'The flow is archived'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = await existing(id);
      const patch = c.req.valid('json');
      const after = applyPatch(
        { definition: before.definition, description: before.description },
        {
          ...(patch.description === undefined ? {} : { description: patch.description }),
          ...(patch.definition === undefined ? {} : { definition: await checked(patch.definition) }),
        },
      );
      if (!(await updateFlow(sql, id, after, actorOf(c.get('principal')))))
        throw apiError(409, 'conflict', `flow ${id} is archived`);
      return c.json(view(await existing(id)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/publish',
      tags: ['Flows'],
      summary:
        'Publish the approved working copy as a new immutable version and make the flow live on it (review first: submit, then another person approves)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: NoteBody } }, required: false } },
      responses: {
        200: json(FlowSchema, 'Live on the new version'),
        400: json(ErrorSchema, 'Invalid now, or uses what this server cannot run yet (node and reason)'),
        404: notFound,
        409: json(ErrorSchema, 'Not approved (`not_approved`), changed since it was checked, or archived'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const flow = await existing(id);
      // Checked again: a destination or audience it names may be gone since it was approved.
      const definition = await checked(flow.definition);
      await runnable(definition);
      const t = transition('publish', c.get('principal'), deps.now(), noteOf(c));
      const published = await sql.begin(async (tx) => {
        const done = await publishFlow(tx, id, definition, t);
        // A time-based trigger's first firing (or a date trait's sweep) is planned with the version.
        if (done && 'version' in done) await planFlow(tx, id, done.version, definition, deps.now().getTime());
        return done;
      });
      if (published && 'refused' in published) {
        const why =
          published.refused === 'not_approved'
            ? `its working copy is ${flow.reviewState === 'published' ? 'the live version already' : flow.reviewState}: submit it for review and have another person approve it`
            : published.refused === 'changed'
              ? 'its working copy changed while it was being published'
              : 'it is archived';
        throw apiError(409, published.refused === 'not_approved' ? 'not_approved' : 'conflict', `flow ${id}: ${why}`);
      }
      return c.json(view(await existing(id)) as never, 200);
    },
  );

  for (const [verb, from, to, summary] of [
    ['pause', 'live', 'paused', 'Pause: nobody new enters; people already in the flow go on'],
    ['resume', 'paused', 'live', 'Resume a paused flow on its published version'],
  ] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${verb}`,
        tags: ['Flows'],
        summary,
        middleware: [write] as const,
        request: { params: Param, body: { content: { 'application/json': { schema: NoteBody } }, required: false } },
        responses: {
          200: json(FlowSchema, to === 'live' ? 'Live' : 'Paused'),
          404: notFound,
          409: json(ErrorSchema, `The flow is not ${from}`),
          ...AUTH_ERRORS,
        },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        const flow = await existing(id);
        const t = transition(verb, c.get('principal'), deps.now(), noteOf(c));
        if (!(await setFlowStatus(sql, id, [from], to, t)))
          throw apiError(409, 'conflict', `flow ${id} is ${flow.status}, not ${from}`);
        return c.json(view(await existing(id)) as never, 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/simulate',
      tags: ['Flows'],
      summary:
        'Run the flow for one person on a virtual clock: path, decisions, rendered messages; nothing sent or stored',
      middleware: [read] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: SimulateBody } } } },
      responses: {
        200: json(
          z.object({
            flowId: z.string(),
            version: z.number().int().nullable().openapi({ description: 'null: the working copy' }),
            simulation: z.record(z.string(), z.unknown()).openapi({
              description:
                'entered, refused, path, steps (the journal), messages (rendered), effects, end, zone; times in epoch ms',
            }),
          }),
          'What the engine did',
        ),
        400: json(ErrorSchema, 'Invalid request'),
        404: notFound,
        409: json(ErrorSchema, 'use=live on a flow never published'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      const flow = await existing(id);
      const live = body.use !== 'draft' && flow.version !== null;
      if (body.use === 'live' && flow.version === null)
        throw apiError(409, 'conflict', `flow ${id} was never published`);
      const def = live ? await getFlowVersion(sql, id, flow.version!) : flow.definition;
      if (!def) throw apiError(404, 'not_found', `flow ${id} has no version ${flow.version}`);
      const profile = await simulatedProfile(deps, def, body.profile, c.get('principal'));
      const start = body.start === undefined ? deps.now().getTime() : timeOf(body.start);
      // A custom calendar's days, as the planner reads them (yearly days from the year before to two after).
      const t = def.trigger;
      const calendars =
        t.type === 'calendar' && 'custom' in t.calendar
          ? await calendarsFor(sql, [t.calendar.custom], new Date(start).getUTCFullYear())
          : undefined;
      const simulation = simulate(def, {
        profile,
        start,
        ...(calendars ? { calendars } : {}),
        horizon: body.horizon,
        flowId: id,
        ...(body.script ? { script: body.script as ScriptItem[] } : {}),
        ...(body.data ? { data: body.data as never } : {}),
      });
      return c.json({ flowId: id, version: live ? flow.version : null, simulation } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/enter',
      tags: ['Flows'],
      summary: 'Enter a person into a live flow with an API trigger, with entry data; the first step runs at once',
      middleware: [write] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: z.object({
                profile: z
                  .string()
                  .uuid()
                  .openapi({ description: 'The person (a merged profile enters as its survivor)' }),
                data: z
                  .record(z.string(), z.unknown())
                  .default({})
                  .openapi({ description: 'Run data: the fields the trigger declares (`run.<field>` in templates)' }),
                key: z.string().min(1).max(200).optional().openapi({
                  description: 'Enters the person at most once per key (a retried call enters nobody again)',
                }),
              }),
            },
          },
        },
      },
      responses: {
        200: json(
          z.object({ entered: z.boolean(), runId: z.string().optional(), reason: z.string() }),
          'Entered, or why not (the entry rule, the re-entry policy, already in the flow)',
        ),
        400: json(ErrorSchema, 'Data the trigger does not declare'),
        404: notFound,
        409: json(ErrorSchema, 'The flow is not live, or not entered through the API'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      await existing(id);
      const profileId = await liveProfileId(sql, body.profile);
      const entry = await deps.automate.enter(id, profileId, body.data as never, body.key);
      return c.json(entry, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/runs',
      tags: ['Flows'],
      summary:
        'One person’s runs of the flow with their journey: each step, when, and why (the values that decided it)',
      middleware: [read] as const,
      request: {
        params: Param,
        query: z.object({
          profile: z.string().uuid().openapi({ description: 'The person (runs are indexed by person)' }),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
      responses: {
        200: json(z.object({ data: z.array(RunSchema) }), 'Runs, newest first'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const q = c.req.valid('query');
      await existing(id);
      const runs = await flowRuns(sql, id, { limit: q.limit, profileId: q.profile });
      return c.json({ data: runs } as never, 200);
    },
  );

  return app;
}

/** The note of a transition's optional body. */
export const noteOf = (c: { req: { valid(target: 'json'): unknown } }): string | undefined =>
  (c.req.valid('json') as z.infer<typeof NoteBody> | undefined)?.note;

const timeOf = (at: string | number) => (typeof at === 'number' ? at : Date.parse(at));

// The person a simulation runs for: an existing profile's facts (sensitive traits masked for callers
// without pii:read), with the traits, audiences and tags given laid over them.
async function simulatedProfile(
  deps: FlowDeps,
  def: FlowDefinition,
  given: z.infer<typeof SimulateBody>['profile'],
  principal: Parameters<typeof piiView>[1],
): Promise<ProfileFacts> {
  let facts: ProfileFacts = { id: given.id ?? 'simulated', traits: {}, computed: {}, audiences: [], tags: [] };
  if (given.id) {
    // 404 for an unknown profile, 410 for an erased one; a merged one is simulated as who it became.
    const id = await liveProfileId(deps.sql, given.id);
    const loaded = (await loadFacts(deps.sql, deps.pii, [id], needsOf(def))).get(id)!;
    if (!piiView(deps.pii, principal).clear) {
      for (const [k, v] of Object.entries(loaded.traits))
        if (deps.pii.isSensitive(k)) loaded.traits[k] = maskValue(v) as never;
      if (loaded.events) loaded.events = loaded.events.map((e) => maskPayload(e as JsonObject, deps.pii.isSensitive));
    }
    facts = loaded;
  }
  return {
    ...facts,
    traits: { ...facts.traits, ...((given.traits ?? {}) as ProfileFacts['traits']) },
    ...(given.audiences ? { audiences: given.audiences } : {}),
    ...(given.tags ? { tags: given.tags } : {}),
  };
}
