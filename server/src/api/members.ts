import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AuthVariables } from '../auth/middleware.ts';
import { requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { limitParam, nextCursor } from '../infra/paging.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import { membersPage } from '../pipeline/compute/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const csvCell = (v: string | null) => {
  if (v === null) return '';
  // Quote always; a leading = + - @ would be read as a formula by spreadsheets.
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return `"${safe.replaceAll('"', '""')}"`;
};

/**
 * `GET /{key}/members`: current members, keyset-paged by profile id; `format=csv` streams them all
 * as CSV (profile_id, since, user_id, email). The email is masked for callers without `pii:read`.
 *
 * @example
 * membersRoute(app, sql, pii, 'audience', existing);
 */
export function membersRoute(
  app: OpenAPIHono<{ Variables: AuthVariables }>,
  sql: Sql,
  pii: Pii,
  kind: 'audience' | 'tag',
  existing: (key: string) => Promise<unknown>,
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/members',
      tags: [kind === 'audience' ? 'Audiences' : 'Tags'],
      summary: `Current members (paged; format=csv exports them all)`,
      middleware: [requirePermission('audiences:read')] as const,
      request: {
        params: z.object({ key: z.string() }),
        query: z.object({
          limit: limitParam(1000, 100),
          cursor: z.string().uuid().optional().openapi({ description: 'The last profile id of the previous page' }),
          format: z.enum(['json', 'csv']).default('json'),
        }),
      },
      responses: {
        200: {
          description: 'Members',
          content: {
            'application/json': {
              schema: z.object({
                data: z.array(
                  z.object({
                    profileId: z.string(),
                    since: z.string(),
                    userId: z.string().nullable(),
                    email: z.string().nullable(),
                  }),
                ),
                next: z.string().nullable(),
              }),
            },
            'text/csv': { schema: z.string() },
          },
        },
        404: json(ErrorSchema, `No such ${kind}`),
        ...AUTH_ERRORS,
      },
    }),
    // biome-ignore lint/suspicious/noExplicitAny: the CSV branch returns a plain Response, which the typed route cannot express
    (async (c: any) => {
      const { key } = c.req.valid('param');
      const q = c.req.valid('query');
      await existing(key);
      const view = piiView(pii, c.get('principal'));
      const show = <M extends { email: string | null }>(m: M): M => ({
        ...m,
        email: m.email === null ? null : view.identity('email', m.email),
      });
      if (q.format === 'csv') {
        const encoder = new TextEncoder();
        const stream = new ReadableStream({
          async start(controller) {
            controller.enqueue(encoder.encode('profile_id,since,user_id,email\n'));
            let after: string | null = null;
            for (;;) {
              const page = await membersPage(sql, kind, key, after, 5000);
              for (const m of page.map(show))
                controller.enqueue(
                  encoder.encode(`${m.profileId},${m.since.toISOString()},${csvCell(m.userId)},${csvCell(m.email)}\n`),
                );
              if (page.length < 5000) break;
              after = page[page.length - 1]!.profileId;
            }
            controller.close();
          },
        });
        return new Response(stream, {
          headers: {
            'content-type': 'text/csv; charset=utf-8',
            'content-disposition': `attachment; filename="${kind}-${key}-members.csv"`,
          },
        });
      }
      const page = await membersPage(sql, kind, key, q.cursor ?? null, q.limit);
      return c.json(
        {
          data: page.map((m) => ({ ...show(m), since: m.since.toISOString() })),
          next: nextCursor(page, q.limit, (m) => m.profileId),
        },
        200,
      );
    }) as never,
  );
}
