import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { loadSnippet, snippetTag } from '../http/sdk.ts';
import { getSource } from '../sources/queries.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const SnippetSchema = z
  .object({
    sourceId: z.string(),
    version: z.string().openapi({ example: '0.1.0' }),
    src: z.string().openapi({ description: 'The exact version of the snippet (what the SRI hash pins)' }),
    integrity: z.string().openapi({ example: 'sha384-…' }),
    tag: z.string().openapi({
      description: "`GET /sdk/snippet`'s tag with this source's write key in `data-write-key`: ready to paste",
      example:
        '<script async src="https://cairn.example.com/sdk/0.1.0/cairn.min.js" integrity="sha384-…" crossorigin="anonymous" data-write-key="wk_…"></script>',
    }),
  })
  .openapi('SourceSnippet');

const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

const escapeAttr = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/**
 * `GET /api/sources/{id}/snippet`: the browser snippet's `<script>` tag for one source, its write key
 * filled in — the tag `GET /sdk/snippet` answers, for `CAIRN_PUBLIC_URL` (else the origin asked).
 * The snippet's files are read once, when the routes are made.
 *
 * @example
 * api.route('/sources', sourceSnippetApi(deps.sql, deps.config.publicUrl));
 */
export function sourceSnippetApi(sql: Sql, publicUrl: string | undefined) {
  const snippet = loadSnippet();
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/snippet',
      tags: ['Sources'],
      summary: "The snippet tag for a source's websites, ready to paste",
      middleware: [requirePermission('sources:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(SnippetSchema, 'The tag'),
        404: json(ErrorSchema, 'No such source, or the snippet is not built'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const source = await getSource(sql, id);
      if (!source) throw apiError(404, 'not_found', `no source ${id}`);
      if (!snippet)
        throw apiError(404, 'not_found', 'the browser snippet is not built (npm run build -w @cairn/sdk-web)');
      const info = snippetTag(snippet, publicUrl ?? new URL(c.req.url).origin);
      const tag = info.tag.replace(
        'data-write-key="YOUR_WRITE_KEY"',
        `data-write-key="${escapeAttr(source.writeKey)}"`,
      );
      return c.json({ sourceId: source.id, version: info.version, src: info.src, integrity: info.integrity, tag }, 200);
    },
  );
  return app;
}
