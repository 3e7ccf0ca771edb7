import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Principal } from '../auth/keys.ts';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import { type BackfillRow, getBackfill, type IdentifyStage, listBackfills } from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const TAG = 'Data quality';

const Counts = z.object({
  normalized: z.number().int().openapi({ description: 'Stored values the rule rewrote (dry run: would rewrite)' }),
  filled: z.number().int().openapi({ description: 'Missing values filled, or derived values derived anew' }),
  cleared: z.number().int().openapi({ description: 'Derived values removed (an input of the template is missing)' }),
  failed: z.number().int().openapi({ description: 'Values the rule fails on: kept as they are' }),
});

/** A backfill as the API shows it. */
export const BackfillSchema = z
  .object({
    id: z.string(),
    keys: z.array(z.string()).openapi({ description: 'The traits whose rules it applies' }),
    rules: z.record(z.string(), z.unknown()).openapi({
      description: 'The rules applied, as they were when it was queued (fills reading those traits included)',
    }),
    dryRun: z.boolean(),
    triggerFlows: z.boolean(),
    importId: z
      .string()
      .nullable()
      .openapi({
        description:
          'The id its consequences carry as an import’s (events.import_id, reason `import:<id>`): flows and ' +
          'destinations hold them back unless triggerFlows. Reserved from the imports sequence; no import has it.',
      }),
    status: z.enum(['queued', 'running', 'done', 'failed', 'cancelled']).openapi({
      description:
        '`failed`: an attempt failed (pg-boss retries it, up to 10 times); `cancelled`: stopped by ' +
        'POST …/cancel at a chunk boundary. Both can be resumed (POST …/resume); `done` is final',
    }),
    total: z.number().int().openapi({ description: 'Live profiles to visit (counted when it began)' }),
    rowsDone: z.number().int().openapi({ description: 'Profiles visited (committed chunks)' }),
    profilesChanged: z.number().int(),
    changes: z.record(z.string(), Counts).openapi({ description: 'Per trait' }),
    sample: z
      .array(
        z.object({
          profileId: z.string(),
          key: z.string(),
          kind: z.enum(['normalized', 'filled', 'cleared']),
          from: z.unknown(),
          to: z.unknown(),
        }),
      )
      .openapi({ description: 'Up to 20 changes (masked without pii:read)' }),
    rowsPerSecond: z.number(),
    etaSeconds: z.number().int().nullable(),
    chunks: z.number().int(),
    attempts: z.number().int().openapi({ description: 'Attempts begun (a retry after a crash resumes the cursor)' }),
    resumes: z.number().int().openapi({ description: 'Resumes asked for by POST …/resume' }),
    error: z.string().nullable(),
    cancelledAt: z.string().nullable(),
    cancelledBy: z.string().nullable().openapi({ description: 'The key that cancelled it' }),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi('TraitBackfill');

/**
 * A backfill row as the API shows it: progress (rate over the time spent, ETA from the total) and the
 * sample opened and masked per the caller's view.
 *
 * @example
 * c.json(backfillView(row, pii, principal, new Date()));
 */
export function backfillView(b: BackfillRow, pii: Pii, principal: Pick<Principal, 'role'>, now: Date) {
  const view = piiView(pii, principal);
  const running = b.status === 'running' && b.attempt_started_at;
  const seconds =
    (Number(b.elapsed_ms) + (running ? Math.max(0, now.getTime() - b.attempt_started_at!.getTime()) : 0)) / 1000;
  const rate = seconds > 0 ? b.rows_done / seconds : 0;
  const left = Math.max(0, b.total - b.rows_done);
  return {
    id: b.id,
    keys: b.keys,
    rules: b.rules,
    dryRun: b.dry_run,
    triggerFlows: b.trigger_flows,
    importId: b.import_id,
    status: b.status,
    total: b.total,
    rowsDone: b.rows_done,
    profilesChanged: b.profiles_changed,
    changes: b.changes,
    sample: b.sample.map((s) => ({
      profileId: s.profileId,
      key: s.key,
      kind: s.kind,
      from: view.value(s.key, s.from),
      to: view.value(s.key, s.to),
    })),
    rowsPerSecond: Math.round(rate),
    etaSeconds: b.status === 'done' ? 0 : rate === 0 || b.status === 'cancelled' ? null : Math.ceil(left / rate),
    chunks: b.chunks,
    attempts: b.attempts,
    resumes: b.resumes,
    error: b.error,
    cancelledAt: b.cancelled_at?.toISOString() ?? null,
    cancelledBy: b.cancelled_by,
    createdAt: b.created_at.toISOString(),
    updatedAt: b.updated_at.toISOString(),
    finishedAt: b.finished_at?.toISOString() ?? null,
  };
}

const IdParam = z.object({
  id: z
    .string()
    .regex(/^\d{1,18}$/)
    .openapi({ example: '3' }),
});

const BackfillBody = z
  .object({
    keys: z
      .array(z.string().min(1).max(200))
      .min(1)
      .max(50)
      .openapi({ description: 'Traits whose rules to apply', example: ['country'] }),
    dryRun: z.boolean().default(false).openapi({ description: 'Count and sample what would change; write nothing' }),
    triggerFlows: z.boolean().default(false).openapi({
      description: 'Let flows and destinations react to the changes as to live ones (default: held back, as imports)',
    }),
  })
  .strict();

/**
 * `/api/data-quality/backfills`: rules applied to the profiles stored before them, as a background job
 * (pipeline/identify/backfill.ts), with progress, a dry run, and resumption after a crash.
 *
 * @example
 * app.route('/', backfillApi({ sql, pii, identify, now }));
 */
export function backfillApi(deps: { sql: Sql; pii: Pii; identify: IdentifyStage; now: () => Date }) {
  const { sql, pii } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/backfills',
      tags: [TAG],
      summary: 'Apply trait rules to the profiles already stored (background job)',
      description:
        'Queues a job that visits every live profile in id order, 500 per transaction, and applies the rules of ' +
        '`keys` (and the fills reading those traits) to the stored values, as the fold would have on ingest. ' +
        'Idempotent (a second run changes nothing); resumes after a crash from the last committed chunk. ' +
        'Changes are written as stage 2 writes traits: audiences re-evaluate; `trait.changed` is recorded for ' +
        'traits live flows watch; flows and destinations hold them back unless `triggerFlows`.',
      middleware: [requirePermission('quality:write')] as const,
      request: { body: { content: { 'application/json': { schema: BackfillBody } }, required: true } },
      responses: {
        202: json(BackfillSchema, 'Queued; poll GET /data-quality/backfills/{id}'),
        400: json(ErrorSchema, 'Invalid body, or a key without a rule'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const row = await deps.identify.requestBackfill(b, c.get('principal').id);
      return c.json(backfillView(row, pii, c.get('principal'), deps.now()) as never, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/backfills',
      tags: [TAG],
      summary: 'Backfills, newest first',
      middleware: [requirePermission('profiles:read')] as const,
      responses: { 200: json(z.object({ data: z.array(BackfillSchema) }), 'The last 100'), ...AUTH_ERRORS },
    }),
    async (c) =>
      c.json(
        {
          data: (await listBackfills(sql, 100)).map((b) => backfillView(b, pii, c.get('principal'), deps.now())),
        } as never,
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/backfills/{id}',
      tags: [TAG],
      summary: 'A backfill: progress (profiles done / total, rate, ETA), counts, sample',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(BackfillSchema, 'The backfill'),
        404: json(ErrorSchema, 'No such backfill'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = await getBackfill(sql, id);
      if (!b) throw apiError(404, 'not_found', `no backfill ${id}`);
      return c.json(backfillView(b, pii, c.get('principal'), deps.now()) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/backfills/{id}/cancel',
      tags: [TAG],
      summary: 'Cancel a backfill: it stops at the next chunk boundary',
      description:
        'A queued, running or failed backfill becomes `cancelled`. The answer comes once the chunk in flight ' +
        'has committed (the cancel waits for its row lock), so `rowsDone` and the counts are final: those of ' +
        'the chunks committed, whose writes stay. Cancelling a cancelled backfill again returns it unchanged. ' +
        'POST …/resume continues it from its cursor.',
      middleware: [requirePermission('quality:write')] as const,
      request: { params: IdParam },
      responses: {
        200: json(BackfillSchema, 'Cancelled (or cancelled already)'),
        404: json(ErrorSchema, 'No such backfill'),
        409: json(ErrorSchema, 'It is done: nothing to cancel (`backfill_finished`)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const row = await deps.identify.cancelBackfill(c.req.valid('param').id, c.get('principal').id);
      return c.json(backfillView(row, pii, c.get('principal'), deps.now()) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/backfills/{id}/resume',
      tags: [TAG],
      summary: 'Resume a failed or cancelled backfill from its cursor (background job)',
      description:
        'Queues a new job for the backfill, which continues after the last committed chunk with the rules it ' +
        'was queued with; its counts and sample so far are kept, and `resumes` counts the call. A backfill ' +
        'that is queued or running is under way, and a done one has nothing left: both are refused with 409.',
      middleware: [requirePermission('quality:write')] as const,
      request: { params: IdParam },
      responses: {
        202: json(BackfillSchema, 'Queued again; poll GET /data-quality/backfills/{id}'),
        404: json(ErrorSchema, 'No such backfill'),
        409: json(
          ErrorSchema,
          'Not resumable: queued or running (`backfill_in_progress`), or done (`backfill_finished`)',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const row = await deps.identify.resumeBackfill(c.req.valid('param').id);
      return c.json(backfillView(row, pii, c.get('principal'), deps.now()) as never, 202);
    },
  );

  return app;
}
