import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { limitParam } from '../infra/paging.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import {
  duplicateGroups,
  getDuplicateSchedule,
  lastScheduleRun,
  periodStart,
  putDuplicateSchedule,
} from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const TAG = 'Duplicates';

const ScheduleSchema = z
  .object({
    enabled: z.boolean(),
    everyHours: z.number().int().nullable().openapi({ description: 'Every N hours from local midnight', example: 6 }),
    dailyAt: z.string().nullable().openapi({ description: 'Once a day at HH:MM local time', example: '03:00' }),
    timeZone: z.string().openapi({ example: 'Europe/Berlin' }),
    full: z.boolean().openapi({ description: 'Re-key every profile (as `?full=true`), not only changed ones' }),
    updatedAt: z.string(),
    updatedBy: z.string().nullable(),
    nextPeriod: z.string().nullable().openapi({ description: 'When the next scheduled scan is due (null: off)' }),
    lastRun: z
      .object({
        period: z.string(),
        claimedAt: z.string(),
        catchUp: z.boolean().openapi({
          description:
            'Claimed more than a minute after its period began: no server was up then, and the first back ran ' +
            'this one scan',
        }),
        missedPeriods: z.number().int().openapi({
          description:
            'Periods before it with no scan of their own (not replayed: one scan re-keys every change since the last)',
        }),
        scanId: z.string().nullable().openapi({ description: 'Its scan, once committed' }),
      })
      .nullable()
      .openapi({ description: 'The last period claimed (null: none yet)' }),
  })
  .openapi('DuplicateSchedule');

// A PUT names the whole schedule (no defaults are merged into a partial body: it replaces the row).
const ScheduleBody = z
  .object({
    enabled: z.boolean(),
    everyHours: z
      .union([
        z.literal(1),
        z.literal(2),
        z.literal(3),
        z.literal(4),
        z.literal(6),
        z.literal(8),
        z.literal(12),
        z.literal(24),
      ])
      .nullable()
      .optional()
      .openapi({ description: 'Every N hours (N divides 24) from midnight in timeZone', example: 6 }),
    dailyAt: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM, 24-hour')
      .nullable()
      .optional()
      .openapi({ example: '03:00' }),
    timeZone: z.string().min(1).max(64).optional().openapi({ description: 'IANA time zone (default UTC)' }),
    full: z.boolean().optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    const given = Number(b.everyHours != null) + Number(b.dailyAt != null);
    if (given > 1) ctx.addIssue({ code: 'custom', message: 'give everyHours or dailyAt, not both', path: ['dailyAt'] });
    if (b.enabled && given === 0)
      ctx.addIssue({
        code: 'custom',
        message: 'an enabled schedule needs everyHours or dailyAt',
        path: ['everyHours'],
      });
  })
  .openapi('DuplicateScheduleBody');

const GroupSchema = z
  .object({
    size: z.number().int(),
    maxScore: z.number().int(),
    profiles: z.array(
      z.object({
        id: z.string(),
        name: z.string().nullable(),
        emails: z.array(z.string()),
        phones: z.array(z.string()),
      }),
    ),
    pairs: z.array(z.object({ id: z.string(), a: z.string(), b: z.string(), score: z.number().int() })),
  })
  .openapi('DuplicateGroup');

/**
 * `/api/duplicates/schedule` (scans as a background job, once per period across servers) and
 * `/api/duplicates/groups` (open pairs as clusters). Mounted by duplicates.ts before `/{id}`.
 *
 * @example
 * app.route('/', duplicateScheduleApi({ sql, pii, now }));
 */
export function duplicateScheduleApi(deps: { sql: Sql; pii: Pii; now: () => Date }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const withNext = async () => {
    const s = await getDuplicateSchedule(sql);
    // The next period: the start of the period after the current one (probed an hour at a time).
    let next: Date | null = null;
    const current = periodStart(s, deps.now());
    if (current) {
      for (let h = 1; h <= 49 && !next; h++) {
        const p = periodStart(s, new Date(deps.now().getTime() + h * 3_600_000));
        if (p && p.getTime() !== current.getTime()) next = p;
      }
    }
    return { ...s, nextPeriod: next?.toISOString() ?? null, lastRun: await lastScheduleRun(sql) };
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/schedule',
      tags: [TAG],
      summary: 'The duplicate scan schedule (off by default)',
      middleware: [requirePermission('profiles:read')] as const,
      responses: { 200: json(ScheduleSchema, 'The schedule'), ...AUTH_ERRORS },
    }),
    async (c) => c.json(await withNext(), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/schedule',
      tags: [TAG],
      summary: 'Set the duplicate scan schedule',
      description:
        'Scans run as a background job, once per period whichever server sees the period first (a claim per ' +
        'period in the database), also across restarts. When every server was down at a period’s start, the ' +
        'first back runs one catch-up scan for the current period (`lastRun.catchUp`, with `missedPeriods`); ' +
        'the periods missed before it are not replayed, since one scan re-keys every change since the last. ' +
        'The first period is the one after this change. Each scan’s new pairs: `GET /api/duplicates?scan=latest`.',
      middleware: [requirePermission('profiles:write')] as const,
      request: { body: { content: { 'application/json': { schema: ScheduleBody } }, required: true } },
      responses: {
        200: json(ScheduleSchema, 'The schedule'),
        400: json(ErrorSchema, 'Invalid schedule (the reason names the field)'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const b = c.req.valid('json');
      await putDuplicateSchedule(
        sql,
        {
          enabled: b.enabled,
          everyHours: b.everyHours ?? null,
          dailyAt: b.dailyAt ?? null,
          timeZone: b.timeZone ?? 'UTC',
          full: b.full ?? false,
        },
        c.get('principal').id,
        deps.now(),
      );
      return c.json(await withNext(), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/groups',
      tags: [TAG],
      summary: 'Open pairs grouped into clusters (A~B, B~C: one group of three)',
      description:
        'Connected components of the open pairs of live profiles, largest first. Built in memory from at most ' +
        '100,000 open pairs (best scores first; `truncated` says when there were more).',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        query: z.object({
          minScore: z.coerce.number().int().min(0).max(100).default(0),
          scan: z
            .string()
            .regex(/^\d+$/)
            .optional()
            .openapi({ description: 'Only groups holding a pair this scan proposed first' }),
          limit: limitParam(500, 50),
        }),
      },
      responses: {
        200: json(
          z.object({ data: z.array(GroupSchema), total: z.number().int(), truncated: z.boolean() }),
          'Groups, largest first',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const r = await duplicateGroups(sql, { ...q, scanId: q.scan }, piiView(deps.pii, c.get('principal')));
      return c.json({ data: r.groups, total: r.total, truncated: r.truncated }, 200);
    },
  );

  return app;
}
