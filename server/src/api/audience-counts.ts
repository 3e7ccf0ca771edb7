import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { dailyMemberCounts, getAudience, getTag } from '../pipeline/compute/index.ts';
import { type MeasureStage, readHeaders } from '../pipeline/measure/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const DailyCounts = z
  .object({
    days: z.number().int(),
    data: z.array(
      z.object({
        day: z.string().openapi({ description: 'A UTC date (YYYY-MM-DD)', example: '2026-12-07' }),
        members: z.number().int().openapi({ description: 'Members at the end of that day (for today: now)' }),
      }),
    ),
  })
  .openapi('DailyMemberCounts');

/**
 * `GET /{key}/daily-counts?days=30` for audiences and tags: members at the end of each UTC day, read
 * from the membership log, so every definition has a series from its first member on (the console's
 * sparklines), whether or not a sweep or a recompute recorded a point that day.
 *
 * @example
 * api.route('/audiences', dailyCountsApi(deps, 'audience'));
 * api.route('/tags', dailyCountsApi(deps, 'tag'));
 */
export function dailyCountsApi(
  deps: { sql: Sql; now: () => Date; measure: Pick<MeasureStage, 'reader'> },
  kind: 'audience' | 'tag',
) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/daily-counts',
      tags: [kind === 'audience' ? 'Audiences' : 'Tags'],
      summary: `Members of ${kind === 'audience' ? 'an audience' : 'a tag'} at the end of each UTC day (from the membership log)`,
      description:
        'Counted on the analytics replica when one is configured (headers `Cairn-Read-Source`, `Cairn-Replica-Lag`, `Cairn-Data-As-Of`).',
      middleware: [requirePermission('audiences:read')] as const,
      request: {
        params: z.object({ key: z.string() }),
        query: z.object({
          days: z.coerce
            .number()
            .int()
            .min(1)
            .max(366)
            .default(30)
            .openapi({ description: 'How many days, today included' }),
        }),
      },
      responses: {
        200: json(DailyCounts, 'One point per day, oldest first'),
        404: json(ErrorSchema, `No such ${kind}`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const { days } = c.req.valid('query');
      const found = kind === 'audience' ? await getAudience(deps.sql, key) : await getTag(deps.sql, key);
      if (!found) throw apiError(404, 'not_found', `no ${kind} ${key}`);
      // Lag-tolerant: on the analytics replica when there is one (headers say where and how far behind).
      const { value: data, meta } = await deps.measure.reader.read((s) =>
        dailyMemberCounts(s, kind, key, days, deps.now()),
      );
      for (const [k, v] of Object.entries(readHeaders(meta))) c.header(k, v);
      return c.json({ days, data }, 200);
    },
  );
  return app;
}
