import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { PgBoss } from 'pg-boss';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import {
  type Clustering,
  type ClusteringFields,
  type ClusteringRun,
  deleteClustering,
  getClustering,
  getRun,
  insertClustering,
  listClusterings,
  listRuns,
  requestClusteringRun,
  syncClusteringSchedule,
  updateClustering,
} from '../pipeline/compute/index.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Feature = z
  .object({
    source: z.enum(['computed', 'trait']).openapi({ description: 'A computed trait or a profile trait' }),
    key: z.string().min(1).max(200),
    path: z
      .string()
      .regex(/^[\w-]+(\.[\w-]+)*$/)
      .optional()
      .openapi({ description: 'Dot path to a number inside an object value (e.g. `score` of `rfm`)' }),
  })
  .openapi('ClusteringFeature');

const Fields = z
  .object({
    name: z.string().min(1).max(200),
    traitKey: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/, 'lower-case letters, digits and _, starting with a letter')
      .default('cluster')
      .openapi({ description: 'The computed trait each profile’s cluster id is written to (fixed once created)' }),
    features: z.array(Feature).min(1).max(32).openapi({ description: 'Numeric features, standardised before K-means' }),
    k: z.number().int().min(2).max(50).nullable().default(null).openapi({ description: 'k, or null to choose it' }),
    kRange: z
      .tuple([z.number().int().min(2).max(50), z.number().int().min(2).max(50)])
      .nullable()
      .default(null)
      .openapi({ description: 'When k is null: k is chosen by silhouette in [min, max] (default [2, 8])' }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2_147_483_647)
      .default(42)
      .openapi({ description: 'Seed: runs are reproducible' }),
    schedule: z
      .string()
      .regex(/^\S+( \S+){4,5}$/, 'a cron expression of 5 or 6 fields')
      .nullable()
      .default(null)
      .openapi({ description: 'A cron expression (UTC) to run on, or null: on demand only', example: '0 3 * * *' }),
  })
  .openapi('ClusteringFields');

function checkFields(f: ClusteringFields): void {
  if (f.k !== null && f.kRange !== null) throw apiError(400, 'invalid_request', 'k, kRange: give one or neither');
  if (f.kRange && f.kRange[0] > f.kRange[1]) throw apiError(400, 'invalid_request', 'kRange: min is above max');
}

const Description = z
  .object({
    id: z.number().int(),
    size: z.number().int(),
    centroid: z.record(z.string(), z.number()).openapi({ description: 'In the features’ own units' }),
    standardised: z.record(z.string(), z.number()).openapi({ description: 'z-scores' }),
    distinguishing: z.array(z.object({ feature: z.string(), z: z.number(), direction: z.enum(['high', 'low']) })),
  })
  .openapi('ClusterDescription');

const RunSchema = z
  .object({
    id: z.string(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed']),
    by: z.string(),
    step: z.string().nullable(),
    progress: z.number().openapi({ description: '0..1' }),
    k: z.number().nullable(),
    profiles: z.number().nullable(),
    skipped: z.number().nullable().openapi({ description: 'Live profiles left out: a feature had no numeric value' }),
    scores: z.array(z.object({ k: z.number(), silhouette: z.number() })).nullable(),
    clusters: z.array(Description).nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
  })
  .openapi('ClusteringRun');

const ClusteringSchema = Fields.extend({
  id: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastRun: RunSchema.nullable(),
}).openapi('Clustering');

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const runView = ({ clusteringId: _c, ...r }: ClusteringRun) => ({
  ...r,
  createdAt: iso(r.createdAt)!,
  startedAt: iso(r.startedAt),
  finishedAt: iso(r.finishedAt),
});
const fieldsOf = (c: Clustering): ClusteringFields => ({
  name: c.name,
  traitKey: c.traitKey,
  features: c.features,
  k: c.k,
  kRange: c.kRange,
  seed: c.seed,
  schedule: c.schedule,
});

const IdParam = z.object({ id: z.string() });
const notFound = { description: 'No such clustering', content: { 'application/json': { schema: ErrorSchema } } };
const TAG = 'Clustering';

/**
 * `/api/clusterings`: K-means clusterings over numeric features (computed or profile traits). A run is a
 * background job (`POST /{id}/run`, progress at `GET /{id}` and `/{id}/runs`); its result is the
 * `traitKey` computed trait on every profile (a stable cluster id) and cluster descriptions.
 *
 * @example
 * api.route('/clusterings', clusteringApi({ sql, boss }));
 */
export function clusteringApi(deps: { sql: Sql; boss: PgBoss }) {
  const { sql } = deps;
  const read = requirePermission('audiences:read');
  const write = requirePermission('audiences:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const c = await getClustering(sql, id);
    if (!c) throw apiError(404, 'not_found', `no clustering ${id}`);
    return c;
  };
  const view = async (c: Clustering) => {
    const [last] = await listRuns(sql, c.id, 1);
    return {
      ...fieldsOf(c),
      id: c.id,
      createdAt: iso(c.createdAt)!,
      updatedAt: iso(c.updatedAt)!,
      lastRun: last ? runView(last) : null,
    };
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: [TAG],
      summary: 'List clusterings (with each one’s latest run)',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(ClusteringSchema) }), 'Clusterings by name'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const all = await listClusterings(sql);
      return c.json({ data: await Promise.all(all.map(view)) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: [TAG],
      summary: 'Define a clustering (and its computed trait)',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Fields } }, required: true } },
      responses: {
        201: json(ClusteringSchema, 'Created'),
        400: json(ErrorSchema, 'Invalid clustering'),
        409: json(ErrorSchema, 'The trait key or name is taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json') as ClusteringFields;
      checkFields(body);
      const id = await insertClustering(sql, body).catch((err) => {
        if (/duplicate key/.test(String(err?.message))) return null;
        throw err;
      });
      if (!id) throw apiError(409, 'conflict', `name or traitKey: "${body.name}" / "${body.traitKey}" is taken`);
      const created = await existing(id);
      await syncClusteringSchedule(deps.boss, created);
      return c.json((await view(created)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: [TAG],
      summary: 'One clustering, with its latest run (progress while it runs, clusters once done)',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: { 200: json(ClusteringSchema, 'The clustering'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json((await view(await existing(c.req.valid('param').id))) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: [TAG],
      summary: 'Change a clustering (fields not given are kept; traitKey is fixed)',
      middleware: [write] as const,
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: patchOf(Fields.omit({ traitKey: true })) } } },
      },
      responses: {
        200: json(ClusteringSchema, 'Changed'),
        400: json(ErrorSchema, 'Invalid'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const current = await existing(c.req.valid('param').id);
      const next = applyPatch(fieldsOf(current), c.req.valid('json') as Partial<ClusteringFields>);
      checkFields(next);
      await updateClustering(sql, current.id, next).catch((err) => {
        if (/duplicate key/.test(String(err?.message)))
          throw apiError(409, 'conflict', `name: "${next.name}" is taken`);
        throw err;
      });
      const changed = await existing(current.id);
      await syncClusteringSchedule(deps.boss, changed);
      return c.json((await view(changed)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: [TAG],
      summary: 'Delete a clustering, its runs, and its computed trait',
      middleware: [write] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const current = await existing(c.req.valid('param').id);
      await deleteClustering(sql, current);
      await syncClusteringSchedule(deps.boss, { id: current.id, schedule: null });
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/run',
      tags: [TAG],
      summary: 'Run a clustering now, as a background job',
      middleware: [write] as const,
      request: { params: IdParam },
      responses: {
        202: json(RunSchema, 'Queued: follow it at GET /{id} or /{id}/runs'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const current = await existing(c.req.valid('param').id);
      const principal = c.get('principal') as { kind: string; id: string };
      const runId = await requestClusteringRun(deps, current.id, `api:${principal.kind}:${principal.id}`);
      return c.json(runView((await getRun(sql, runId))!) as never, 202);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/runs',
      tags: [TAG],
      summary: 'A clustering’s runs, newest first (the last 20)',
      middleware: [read] as const,
      request: { params: IdParam },
      responses: { 200: json(z.object({ data: z.array(RunSchema) }), 'Runs'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const current = await existing(c.req.valid('param').id);
      return c.json({ data: (await listRuns(sql, current.id)).map(runView) } as never, 200);
    },
  );

  return app;
}
