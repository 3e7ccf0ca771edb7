import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import type { IdentifyStage } from '../pipeline/identify/index.ts';
import {
  checkImportTags,
  getImport,
  type ImportMapping,
  type ImportView,
  importErrors,
  insertImport,
  parseMapping,
  restartImport,
  runImport,
} from '../pipeline/identify/index.ts';
import {
  type EventMapping,
  ImportRefused,
  importKindOf,
  insertEventImport,
  parseEventMapping,
  runEventImport,
} from '../pipeline/ingest/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const ImportSchema = z
  .object({
    id: z.string(),
    kind: z.enum(['profiles', 'events']),
    format: z.enum(['csv', 'ndjson']),
    // Events: null for a column mapped to skip.
    mapping: z.record(z.string(), z.union([z.record(z.string(), z.unknown()), z.null()])),
    dryRun: z.boolean(),
    status: z.enum(['running', 'interrupted', 'done', 'failed']),
    lastLine: z.number().int().openapi({ description: 'Last line (header = line 1) whose rows are committed' }),
    rowsDone: z.number().int(),
    rowsBad: z.number().int(),
    rowsUnchanged: z.number().int(),
    profilesCreated: z.number().int(),
    profilesUpdated: z.number().int(),
    eventsStored: z.number().int().openapi({
      description: 'Events import: events stored (rowsUnchanged counts those stored before, by messageId)',
    }),
    triggerFlows: z.boolean().openapi({ description: 'Events import: its events may start and move flows' }),
    deliver: z.boolean().openapi({ description: 'Events import: its events are fanned out to destinations' }),
    rowsExpected: z.number().int().nullable(),
    rowsPerSecond: z.number(),
    etaSeconds: z.number().nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi('Import');

const Flag = z.enum(['true', 'false']).or(z.boolean()).optional();
const CreateSchema = z.object({
  kind: z
    .enum(['profiles', 'events'])
    .default('profiles')
    .openapi({ description: 'profiles (traits, identities, consent, tags) or events (historical Segment events)' }),
  format: z.enum(['csv', 'ndjson']).default('csv'),
  map: z
    .string()
    .min(3)
    .optional()
    .openapi({
      description:
        'Profiles (required): column=target, comma-separated; target is trait:<name>[:string|number|boolean|date], ' +
        'identity:userId|anonymousId|email|phone, consent:<purpose>, tag:<static tag> or skip. ' +
        'Events, CSV only (optional: else the header names the places): column=path[:string|number|boolean|json], ' +
        'path a top-level field (type, event, name, userId, anonymousId, messageId, timestamp, ...) or ' +
        'properties.<name>, traits.<name>, context.<name>; or skip',
      example: 'id=identity:userId,mail=identity:email,born=trait:birthday:date,news=consent:marketing,vip=tag:vip',
    }),
  dryRun: Flag,
  triggerFlows: Flag.openapi({ description: 'Events: let the imported events start and move flows (default false)' }),
  deliver: Flag.openapi({ description: 'Events: fan the imported events out to destinations (default false)' }),
  rows: z.coerce.number().int().min(0).optional().openapi({ description: 'Rows in the file, for the ETA' }),
});

const IdParam = z.object({ id: z.string().regex(/^\d{1,18}$/) });
const FILE_BODY = {
  content: {
    'text/csv': { schema: z.string().openapi({ description: 'CSV with a header line' }) },
    'application/x-ndjson': { schema: z.string().openapi({ description: 'One JSON object per line' }) },
  },
  required: true,
};
const notFound = { description: 'No such import', content: { 'application/json': { schema: ErrorSchema } } };
const invalid = {
  description: 'Bad mapping or parameters',
  content: { 'application/json': { schema: ErrorSchema } },
};

/**
 * `/api/imports`: bulk import of profiles (traits, identities, consent, static tags) from CSV or
 * NDJSON, streamed and written in chunked transactions by stage 2 (pipeline/identify/import.ts).
 *
 * @example
 * api.route('/imports', importsApi({ sql, pii, identify, config, now }));
 */
export function importsApi(deps: {
  sql: Sql;
  pii: Pii;
  identify: IdentifyStage;
  config: Readonly<Config>;
  now: () => Date;
  handOff: HandOff;
}) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const ctx = {
    identity: deps.identify.identity,
    traits: deps.identify.traits,
    purposes: deps.identify.purposes,
    pii: deps.pii,
  };

  const flag = (v: 'true' | 'false' | boolean | undefined) => v === true || v === 'true';
  // Either kind, as the API shows it: stage 2's view of the row, and the kind with its events options.
  const viewOf = async (id: string) => {
    const [imp, kind] = await Promise.all([getImport(sql, id), importKindOf(sql, id)]);
    return imp && kind ? { ...imp, ...kind } : undefined;
  };
  const createEvents = async (c: Context<{ Variables: AuthVariables }>, body: z.infer<typeof CreateSchema>) => {
    let mapping: EventMapping | null = null;
    try {
      if (body.map && body.format === 'ndjson') throw new Error('an NDJSON events file needs no map');
      if (body.map) mapping = parseEventMapping(body.map);
    } catch (err) {
      throw apiError(400, 'invalid_request', `map: ${(err as Error).message}`);
    }
    const id = await insertEventImport(sql, {
      format: body.format,
      mapping,
      dryRun: flag(body.dryRun),
      rowsExpected: body.rows ?? null,
      actor: actorOf(c.get('principal')),
      triggerFlows: flag(body.triggerFlows),
      deliver: flag(body.deliver),
    });
    return (await viewOf(id))!;
  };
  const create = async (c: Context<{ Variables: AuthVariables }>, body: z.infer<typeof CreateSchema>) => {
    if (body.kind === 'events') return createEvents(c, body);
    if (!body.map) throw apiError(400, 'invalid_request', 'map: required for a profile import');
    let mapping: ImportMapping;
    try {
      mapping = parseMapping(body.map);
    } catch (err) {
      throw apiError(400, 'invalid_request', `map: ${(err as Error).message}`);
    }
    const badTag = await checkImportTags(sql, mapping);
    if (badTag) throw apiError(400, 'invalid_request', `map: ${badTag}`);
    const imp = await insertImport(sql, {
      format: body.format,
      mapping,
      dryRun: body.dryRun === true || body.dryRun === 'true',
      rowsExpected: body.rows ?? null,
      actor: actorOf(c.get('principal')),
    });
    return (await viewOf(imp.id))!;
  };
  const runEvents = async (stream: ReadableStream<Uint8Array>, imp: ImportView) => {
    try {
      await runEventImport(sql, stream, {
        importId: imp.id,
        format: imp.format,
        mapping: Object.keys(imp.mapping).length ? (imp.mapping as unknown as EventMapping) : null,
        dryRun: imp.dryRun,
        skipThrough: imp.dryRun ? 0 : imp.lastLine,
        handOff: deps.handOff,
        facts: { maxFutureSkewMs: deps.config.maxFutureSkewMs, pii: deps.pii },
        clock: deps.now,
      });
    } catch (err) {
      if (err instanceof ImportRefused) throw apiError(400, 'invalid_request', err.message);
      throw err;
    }
  };
  const run = async (c: Context, imp: ImportView & { kind: 'profiles' | 'events' }) => {
    const stream = c.req.raw.body;
    if (!stream) throw apiError(400, 'invalid_request', 'body: the file is missing');
    if (imp.kind === 'events') {
      await runEvents(stream, imp);
      return (await viewOf(imp.id))!;
    }
    await runImport(sql, stream, {
      importId: imp.id,
      format: imp.format,
      mapping: imp.mapping,
      dryRun: imp.dryRun,
      skipThrough: imp.dryRun ? 0 : imp.lastLine,
      ctx,
      clock: deps.now,
    });
    return (await viewOf(imp.id))!;
  };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Imports'],
      summary:
        'Import profiles or historical events from a CSV or NDJSON file (streamed); or, with a JSON body, create an import to upload later',
      description:
        'With a text/csv or application/x-ndjson body, the parameters (format, map, dryRun, rows) come in the query and the answer comes when the ' +
        'file is done (progress meanwhile at GET /api/imports/{id}). With an application/json body (the same ' +
        'parameters) the import is only created: upload with PUT /api/imports/{id}/data. Rows are committed in chunks; ' +
        'every bad row is kept with its line and reason (GET /api/imports/{id}/errors). A row whose content was ' +
        'imported before changes nothing. No flow and no delivery reacts to an import. With kind=events, each row is a ' +
        "Segment event with its original timestamp, stored by the tracking API's insert (an event whose messageId is " +
        'stored already is skipped; a row without one gets a keyed hash of its content) and processed by the ' +
        'pipeline (identities, traits by event time, computed traits, audiences); flows and destinations ignore ' +
        'the imported events unless triggerFlows / deliver say otherwise.',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        query: CreateSchema.partial(),
        body: FILE_BODY,
      },
      responses: {
        200: json(ImportSchema, 'The import, finished'),
        201: json(ImportSchema, 'Created, waiting for its file'),
        400: invalid,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      if ((c.req.header('content-type') ?? '').startsWith('application/json')) {
        const parsed = CreateSchema.safeParse(await c.req.json());
        if (!parsed.success) throw apiError(400, 'invalid_request', parsed.error.issues[0]?.message ?? 'invalid');
        return c.json(await create(c, parsed.data), 201);
      }
      const parsed = CreateSchema.safeParse(c.req.query());
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw apiError(400, 'invalid_request', `${issue?.path.join('.') ?? 'query'}: ${issue?.message ?? 'invalid'}`);
      }
      const imp = await create(c, parsed.data);
      return c.json(await run(c, imp), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}/data',
      tags: ['Imports'],
      summary: 'Upload (or upload again, to resume) the file of an import',
      description:
        "Lines up to the import's lastLine are committed already and skipped: after a crash or a cut connection, " +
        'send the same file again. The answer comes when the file is done.',
      middleware: [requirePermission('profiles:write')] as const,
      request: { params: IdParam, body: FILE_BODY },
      responses: {
        200: json(ImportSchema, 'The import, finished'),
        404: notFound,
        409: { description: 'Already done', content: { 'application/json': { schema: ErrorSchema } } },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const imp = await viewOf(id);
      if (!imp) throw apiError(404, 'not_found', `no import ${id}`);
      if (imp.status === 'done') throw apiError(409, 'conflict', `import ${id} is done`);
      await restartImport(sql, id);
      return c.json(await run(c, imp), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Imports'],
      summary: 'An import and its progress (rows done, rows/s, ETA)',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: { 200: json(ImportSchema, 'The import'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const imp = await viewOf(c.req.valid('param').id);
      if (!imp) throw apiError(404, 'not_found', `no import ${c.req.valid('param').id}`);
      return c.json(imp, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/errors',
      tags: ['Imports'],
      summary: 'The bad rows of an import by line, with the reason (never the value)',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        params: IdParam,
        query: z.object({
          after: z.coerce.number().int().min(0).default(0).openapi({ description: 'Cursor: the last line seen' }),
          limit: z.coerce.number().int().min(1).max(10_000).default(1000),
        }),
      },
      responses: {
        200: json(
          z.object({
            data: z.array(z.object({ line: z.number().int(), reason: z.string() })),
            next: z.number().int().nullable(),
          }),
          'Bad rows, by line',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await getImport(sql, id))) throw apiError(404, 'not_found', `no import ${id}`);
      const page = c.req.valid('query');
      const data = await importErrors(sql, id, page);
      return c.json({ data, next: data.length === page.limit ? data.at(-1)!.line : null }, 200);
    },
  );
  return app;
}
