import {
  COMPUTED_PRESETS,
  type ComputedTraitDefinition,
  computedTraitSchema,
  describeComputedTrait,
  describeIssues,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import { sealedUseInDefinition } from '../pii/rules.ts';
import {
  type ComputedTraitRecord,
  type ComputedTraitRow,
  computedValuesOf,
  deleteComputedTrait,
  getComputedTrait,
  insertComputedTrait,
  listComputedTraits,
  updateComputedTrait,
} from '../pipeline/compute/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { type DefinitionApp, type DefinitionHelpers, definitionKey, definitionRoutes } from './definitions.ts';
import { applyPatch } from './patch.ts';
import {
  guardDefinition,
  type RetentionDeps,
  RetentionWarningsSchema,
  WINDOW_BEYOND_RETENTION,
  withWarnings,
} from './rule-windows.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const KEY = definitionKey();
const Schema = z
  .object({
    key: z.string(),
    name: z.string(),
    definition: z.unknown(),
    words: z.string(),
    warnings: RetentionWarningsSchema,
    profiles: z.number().int().openapi({ description: 'Profiles with a value' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('ComputedTrait');
const notFound = { description: 'Not found', content: { 'application/json': { schema: ErrorSchema } } };

const view = (r: ComputedTraitRow) => ({
  key: r.key,
  name: r.name,
  definition: r.definition,
  words: describeComputedTrait(r.definition),
  profiles: r.profiles,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

function parseDefinition(input: unknown, sensitive: (key: string) => boolean): ComputedTraitDefinition {
  const parsed = computedTraitSchema.safeParse(input);
  if (parsed.success) {
    const sealed = sealedUseInDefinition(parsed.data, sensitive);
    if (sealed) throw apiError(400, 'invalid_definition', `definition.${sealed.path}: ${sealed.message}`, [sealed]);
    return parsed.data;
  }
  const details = describeIssues(parsed.error, input).map((d) => ({
    path: d.path ? `definition.${d.path}` : 'definition',
    message: d.message,
  }));
  throw apiError(400, 'invalid_definition', `${details[0]!.path}: ${details[0]!.message}`, details);
}

/**
 * `/api/computed-traits`: per-profile values computed from events (count, sum, avg, min, max,
 * first, last, most frequent, unique count in a window; RFM; lifecycle stage; most active hour; behaviour
 * preferences and scores, docs/design/compute.md),
 * kept current by stage 3 and readable by rules (`{ op: 'computed' }`); the brief's built-ins as presets.
 *
 * @example
 * api.route('/computed-traits', computedTraitsApi({ sql, handOff, pii }));
 */
export function computedTraitsApi(deps: { sql: Sql; handOff: HandOff; pii: Pii } & RetentionDeps) {
  const sensitive = deps.pii.isSensitive;
  return definitionRoutes(deps, {
    kind: 'computed',
    noun: 'computed trait',
    tag: 'Computed traits',
    schema: Schema,
    view: (r) => withWarnings(deps, view(r), { definition: r.definition }),
    record: (r): ComputedTraitRecord => ({ name: r.name, definition: r.definition }),
    store: {
      list: listComputedTraits,
      get: getComputedTrait,
      insert: insertComputedTrait,
      update: updateComputedTrait,
      remove: deleteComputedTrait,
    },
    computes: () => true,
    changed: (before, after) => JSON.stringify(after.definition) !== JSON.stringify(before.definition),
    describe: {
      notFound: notFound.description,
      list: { summary: 'List computed traits', description: 'Computed traits' },
      get: { summary: 'One computed trait', description: 'The computed trait' },
      create: {
        summary: 'Create a computed trait (computed for every profile at once, then kept current)',
        created: 'Created',
        invalid: 'Invalid definition',
        refused: WINDOW_BEYOND_RETENTION,
      },
      update: {
        summary: 'Rename or redefine (a new definition is recomputed for every profile)',
        invalid: 'Invalid',
        refused: WINDOW_BEYOND_RETENTION,
      },
      remove: {
        summary: 'Delete a computed trait and its values (refused while a rule reads it)',
        inUse: 'In use',
        verb: 'read by',
      },
    },
    create: {
      schema: z.object({ key: KEY, name: z.string().min(1).max(200), definition: z.unknown() }),
      prepare: async (body) => ({
        key: body.key,
        record: { name: body.name, definition: guardDefinition(deps, parseDefinition(body.definition, sensitive)) },
      }),
    },
    update: {
      schema: z.object({ name: z.string().min(1).max(200), definition: z.unknown() }),
      prepare: async (before, patch) =>
        applyPatch(before, {
          name: patch.name,
          definition:
            patch.definition === undefined
              ? undefined
              : guardDefinition(deps, parseDefinition(patch.definition, sensitive)),
        }),
    },
    routes: { first: presetRoutes },
  });
}

// The presets, before the `/{key}` routes: `GET /presets` is not the computed trait named "presets".
function presetRoutes(
  app: DefinitionApp,
  { create }: DefinitionHelpers<ComputedTraitRow, ComputedTraitRecord, ReturnType<typeof view>>,
) {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/presets',
      tags: ['Computed traits'],
      summary: "The brief's built-ins (RFM, lifecycle stage, AOV, last order date, preferred category, active hour)",
      middleware: [requirePermission('audiences:read')] as const,
      responses: {
        200: json(
          z.object({
            data: z.array(
              z.object({ preset: z.string(), name: z.string(), definition: z.unknown(), words: z.string() }),
            ),
          }),
          'Presets',
        ),
        ...AUTH_ERRORS,
      },
    }),
    async (c) =>
      c.json(
        {
          data: Object.entries(COMPUTED_PRESETS).map(([preset, p]) => ({
            preset,
            name: p.name,
            definition: p.definition,
            words: describeComputedTrait(p.definition),
          })),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/presets/{preset}',
      tags: ['Computed traits'],
      summary: 'Install a preset (its key is the preset name unless one is given)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        params: z.object({ preset: z.string() }),
        body: { content: { 'application/json': { schema: z.object({ key: KEY.optional() }) } }, required: false },
      },
      responses: { 201: json(Schema, 'Installed'), 404: notFound, 409: json(ErrorSchema, 'Key taken'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const { preset } = c.req.valid('param');
      const p = COMPUTED_PRESETS[preset];
      if (!p)
        throw apiError(404, 'not_found', `no preset ${preset}; one of ${Object.keys(COMPUTED_PRESETS).join(', ')}`);
      const body = (await c.req.json().catch(() => ({}))) as { key?: string };
      const key = body.key && KEY.safeParse(body.key).success ? body.key : preset;
      return c.json(await create(key, { name: p.name, definition: p.definition }), 201);
    },
  );
}

/**
 * `GET /api/profiles/:id/computed-traits`: the profile's computed values.
 *
 * @example
 * api.route('/profiles', profileComputedApi(sql));
 */
export function profileComputedApi(sql: Sql) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/computed-traits',
      tags: ['Profiles'],
      summary: "A profile's computed traits",
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: z.object({ id: z.string().uuid() }) },
      responses: {
        200: json(z.record(z.string(), z.object({ value: z.unknown(), computedAt: z.string() })), 'Values by key'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const values = await computedValuesOf(sql, await liveProfileId(sql, c.req.valid('param').id));
      return c.json(
        Object.fromEntries(values.map((v) => [v.key, { value: v.value, computedAt: v.computedAt.toISOString() }])),
        200,
      );
    },
  );
  return app;
}
