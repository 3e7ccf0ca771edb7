import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { limitParam, pageSchema } from '../infra/paging.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import {
  dismissDuplicate,
  getDuplicate,
  type IdentifyStage,
  latestScan,
  listDuplicates,
  scanDuplicates,
} from '../pipeline/identify/index.ts';
import { duplicateScheduleApi } from './duplicates-schedule.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const DuplicateProfileSchema = z.object({
  id: z.string(),
  name: z.string().nullable().openapi({ description: 'The `name` trait, else `first_name last_name`' }),
  emails: z.array(z.string()).openapi({ description: 'Email identities and trait; masked without pii:read' }),
  phones: z.array(z.string()).openapi({ description: 'Phone identities and trait; masked without pii:read' }),
});

const DuplicateSchema = z
  .object({
    id: z.string(),
    score: z.number().int().min(0).max(100).openapi({
      description: '100 × (1 − Π(1 − weight)) over the reasons: email 0.9, name_phone 0.85',
      example: 90,
    }),
    reasons: z.array(
      z.object({
        kind: z.string().openapi({ description: '`email` or `name_phone`', example: 'email' }),
        description: z.string(),
      }),
    ),
    status: z.enum(['open', 'merged', 'dismissed']),
    profiles: z.array(DuplicateProfileSchema).length(2),
    createdAt: z.string(),
    decidedAt: z.string().nullable(),
    decidedBy: z.string().nullable().openapi({ description: 'The key or user that merged or dismissed it' }),
    mergeId: z.string().nullable().openapi({ description: 'The merge log entry; unmerge with it' }),
  })
  .openapi('DuplicateCandidate');

const ScanSchema = z
  .object({
    id: z.string(),
    profiles: z.number().int().openapi({ description: 'Live profiles read' }),
    changed: z
      .number()
      .int()
      .openapi({ description: 'Profiles whose values changed since the last scan (all in a full scan): re-keyed' }),
    keys: z.number().int().openapi({ description: 'Match keys stored (keyed hashes, never clear values)' }),
    oversizedKeys: z
      .number()
      .int()
      .openapi({ description: 'Keys shared by more than 20 profiles (a shop phone, a placeholder): skipped' }),
    candidates: z.number().int().openapi({ description: 'Open candidates found or refreshed' }),
    newCandidates: z
      .number()
      .int()
      .openapi({ description: 'Open pairs this scan proposed first: `GET /api/duplicates?scan=<id>` lists them' }),
    trigger: z.enum(['api', 'schedule']),
    period: z.string().nullable().openapi({ description: 'The schedule period it scanned for (null: on demand)' }),
    startedAt: z.string(),
    finishedAt: z.string(),
  })
  .openapi('DuplicateScan');

const IdParam = z.object({ id: z.string().regex(/^\d+$/).openapi({ example: '12' }) });
const problem = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });
const CURSOR = /^(\d{1,3})\.(\d+)$/;

/**
 * `/api/duplicates`: likely duplicate profiles for review (docs/duplicates.md): a scan finds pairs
 * by blocking keys, reviewers list them best first, merge them (through identity resolution: logged,
 * undone by `POST /api/profiles/{id}/unmerge`) or dismiss them (never proposed again).
 *
 * @example
 * api.route('/duplicates', duplicatesApi({ sql, pii, identify }));
 */
export function duplicatesApi(deps: { sql: Sql; pii: Pii; identify: IdentifyStage; now: () => Date }) {
  const { sql, pii, identify } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  // Before `/{id}`: `schedule` and `groups` are no candidate ids.
  app.route('/', duplicateScheduleApi(deps));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Duplicates'],
      summary: 'Likely duplicate profiles, best score first',
      description:
        'Pairs the last scan found: the same mailbox (email variants) or the same normalised name and phone. ' +
        'Open pairs are listed while both profiles are live. Emails and phones are masked without pii:read.',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        query: z.object({
          status: z.enum(['open', 'merged', 'dismissed']).default('open'),
          minScore: z.coerce.number().int().min(0).max(100).default(0).openapi({ description: 'Lowest score listed' }),
          cursor: z
            .string()
            .regex(CURSOR, 'the `next` of the previous page (`<score>.<id>`)')
            .optional()
            .openapi({ description: 'The `next` of the previous page' }),
          limit: limitParam(500, 50),
          scan: z
            .string()
            .regex(/^(\d+|latest)$/, 'a scan id or `latest`')
            .optional()
            .openapi({
              description:
                'Only pairs this scan proposed first (`latest`: the last finished scan): what is new since the scan before it',
            }),
        }),
      },
      responses: {
        200: json(
          pageSchema(DuplicateSchema).extend({
            scan: z
              .object({
                id: z.string(),
                finishedAt: z.string(),
                profiles: z.number().int(),
                trigger: z.enum(['api', 'schedule']),
                period: z.string().nullable(),
                newCandidates: z.number().int().openapi({ description: 'Open pairs it proposed first' }),
              })
              .nullable()
              .openapi({ description: 'The scan the list comes from; null before the first' }),
          }),
          'A page of candidates',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const m = q.cursor ? CURSOR.exec(q.cursor) : null;
      const cursor = m ? { score: Number(m[1]), id: m[2]! } : undefined;
      const view = piiView(pii, c.get('principal'));
      const scan = await latestScan(sql);
      // `latest` before any scan: nothing is new.
      const scanId = q.scan === 'latest' ? (scan?.id ?? '0') : q.scan;
      const data = await listDuplicates(sql, { ...q, cursor, scanId }, view);
      const last = data.at(-1);
      const next = data.length === q.limit && last ? `${last.score}.${last.id}` : null;
      return c.json({ data, next, scan }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/scan',
      tags: ['Duplicates'],
      summary: 'Scan every live profile for duplicates now',
      description:
        'Brings the match keys (keyed hashes of canonical emails, of names with phone digits) up to date, ' +
        're-keying only profiles whose values changed since the last scan, and rewrites the open pairs in one ' +
        'transaction, by blocking on equal keys (never all pairs). Merged and dismissed pairs keep their status. ' +
        'Cost: docs/benchmarks.md, "Duplicate detection".',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        query: z.object({
          full: z
            .enum(['true', 'false'])
            .default('false')
            .openapi({ description: 'Re-key every profile, not only those whose values changed since the last scan' }),
        }),
      },
      responses: {
        200: json(ScanSchema, 'What the scan read and found'),
        409: problem('A scan is already running'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const r = await scanDuplicates(sql, pii, c.get('principal').id, c.req.valid('query').full === 'true');
      // Only a scheduled period's retried scan is skipped (null); an on-demand scan always runs.
      return c.json(r!, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Duplicates'],
      summary: 'One candidate pair',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: { 200: json(DuplicateSchema, 'The candidate'), 404: problem('No such candidate'), ...AUTH_ERRORS },
    }),
    async (c) => c.json(await getDuplicate(sql, c.req.valid('param').id, piiView(pii, c.get('principal'))), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/merge',
      tags: ['Duplicates'],
      summary: 'Merge the pair into one profile (logged; undone by unmerge)',
      description:
        'Recorded as one more identity link between the two profiles and resolved like any other: the same ' +
        'guards apply (two different userIds stay apart: 409 merge_refused), the survivor is chosen as for ' +
        'any merge, events, traits and consent move, and the merge log names the caller. ' +
        '`POST /api/profiles/{survivor}/unmerge` with `mergeId` restores both.',
      middleware: [requirePermission('profiles:write')] as const,
      request: { params: IdParam },
      responses: {
        200: json(
          z.object({
            survivor: z.string(),
            merged: z.string().openapi({ description: 'Now redirects to the survivor' }),
            mergeId: z.string(),
          }),
          'Merged',
        ),
        404: problem('No such candidate'),
        409: problem('Already merged or dismissed, already one profile, or refused by an identity guard'),
        410: problem('One of the profiles was erased'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json(await identify.mergeDuplicate(c.req.valid('param').id, c.get('principal').id), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/dismiss',
      tags: ['Duplicates'],
      summary: 'Not the same person: dismiss the pair (never proposed again)',
      middleware: [requirePermission('profiles:write')] as const,
      request: { params: IdParam },
      responses: {
        200: json(DuplicateSchema, 'The dismissed candidate'),
        404: problem('No such candidate'),
        409: problem('Already merged or dismissed'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await dismissDuplicate(sql, id, c.get('principal').id);
      return c.json(await getDuplicate(sql, id, piiView(pii, c.get('principal'))), 200);
    },
  );

  return app;
}
