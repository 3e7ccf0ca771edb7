import {
  COMPUTED_PRESETS,
  type ComputedTraitDefinition,
  computedTraitSchema,
  describeComputedTrait,
  describeIssues,
} from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Transaction, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Pii } from '../pii/index.ts';
import { sealedUseInDefinition } from '../pii/rules.ts';
import { rulesReading } from '../pipeline/compute/queries.ts';
import { liveProfileId } from '../pipeline/identify/admin.ts';
import { patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const KEY = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'a key: lower-case letters, digits and _, starting with a letter');
const Schema = z
  .object({
    key: z.string(),
    name: z.string(),
    definition: z.unknown(),
    words: z.string(),
    profiles: z.number().int().openapi({ description: 'Profiles with a value' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('ComputedTrait');
const notFound = { description: 'Not found', content: { 'application/json': { schema: ErrorSchema } } };

interface Row {
  key: string;
  name: string;
  definition: ComputedTraitDefinition;
  profiles: number;
  createdAt: Date;
  updatedAt: Date;
}
const view = (r: Row) => ({
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
 * first, last, most frequent, unique count in a window; RFM; lifecycle stage; most active hour),
 * kept current by stage 3 and readable by rules (`{ op: 'computed' }`); the brief's built-ins as presets.
 *
 * @example
 * api.route('/computed-traits', computedTraitsApi({ sql, handOff, pii }));
 */
export function computedTraitsApi(deps: { sql: Sql; handOff: HandOff; pii: Pii }) {
  const { sql, handOff } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const rows = (key?: string) => sql<Row[]>`
    SELECT c.key, c.name, c.definition, c.created_at AS "createdAt", c.updated_at AS "updatedAt",
      (SELECT count(*)::int FROM computed_trait_values v WHERE v.key = c.key) AS profiles
    FROM computed_traits c ${key ? sql`WHERE c.key = ${key}` : sql``} ORDER BY c.key`;
  const existing = async (key: string) => {
    const [r] = await rows(key);
    if (!r) throw apiError(404, 'not_found', `no computed trait ${key}`);
    return r;
  };
  // In the transaction that writes the definition: a definition saved is a definition computed.
  const recompute = (tx: Transaction, key: string) =>
    handOff(tx, 'definition.changed', { kind: 'computed', key });
  const create = async (key: string, name: string, definition: ComputedTraitDefinition) => {
    const created = await sql.begin(async (tx) => {
      const [row] = await tx`
        INSERT INTO computed_traits (key, name, definition) VALUES (${key}, ${name}, ${sql.json(definition as never)})
        ON CONFLICT (key) DO NOTHING RETURNING key`;
      if (row) await recompute(tx, key);
      return row;
    });
    if (!created) throw apiError(409, 'conflict', `computed trait ${key} exists`);
    return view(await existing(key));
  };
  const Param = z.object({ key: z.string() });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Computed traits'],
      summary: 'List computed traits',
      middleware: [requirePermission('audiences:read')] as const,
      responses: { 200: json(z.object({ data: z.array(Schema) }), 'Computed traits'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await rows()).map(view) }, 200),
  );

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
      return c.json(await create(key, p.name, p.definition), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Computed traits'],
      summary: 'Create a computed trait (computed for every profile at once, then kept current)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        body: {
          content: {
            'application/json': {
              schema: z.object({ key: KEY, name: z.string().min(1).max(200), definition: z.unknown() }),
            },
          },
        },
      },
      responses: {
        201: json(Schema, 'Created'),
        400: json(ErrorSchema, 'Invalid definition'),
        409: json(ErrorSchema, 'Key taken'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      return c.json(await create(body.key, body.name, parseDefinition(body.definition, deps.pii.isSensitive)), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: ['Computed traits'],
      summary: 'One computed trait',
      middleware: [requirePermission('audiences:read')] as const,
      request: { params: Param },
      responses: { 200: json(Schema, 'The computed trait'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json(view(await existing(c.req.valid('param').key)), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{key}',
      tags: ['Computed traits'],
      summary: 'Rename or redefine (a new definition is recomputed for every profile)',
      middleware: [requirePermission('audiences:write')] as const,
      request: {
        params: Param,
        body: {
          content: {
            'application/json': {
              schema: patchOf(z.object({ name: z.string().min(1).max(200), definition: z.unknown() })),
            },
          },
        },
      },
      responses: { 200: json(Schema, 'Changed'), 400: json(ErrorSchema, 'Invalid'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const body = c.req.valid('json');
      const before = await existing(key);
      const definition =
        body.definition === undefined ? before.definition : parseDefinition(body.definition, deps.pii.isSensitive);
      await sql.begin(async (tx) => {
        await tx`
          UPDATE computed_traits SET name = ${body.name ?? before.name}, definition = ${sql.json(definition as never)},
            updated_at = now()
          WHERE key = ${key}`;
        if (JSON.stringify(definition) !== JSON.stringify(before.definition)) await recompute(tx, key);
      });
      return c.json(view(await existing(key)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: ['Computed traits'],
      summary: 'Delete a computed trait and its values (refused while a rule reads it)',
      middleware: [requirePermission('audiences:write')] as const,
      request: { params: Param },
      responses: { 204: { description: 'Deleted' }, 404: notFound, 409: json(ErrorSchema, 'In use'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const users = await rulesReading(sql, 'computed', key);
      if (users.length)
        throw apiError(
          409,
          'conflict',
          `computed trait ${key} is read by ${users.map((d) => `${d.kind} ${d.key}`).join(', ')}`,
        );
      await sql`DELETE FROM computed_traits WHERE key = ${key}`;
      return c.body(null, 204);
    },
  );
  return app;
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
      const id = await liveProfileId(sql, c.req.valid('param').id);
      const values = await sql<{ key: string; value: unknown; computedAt: Date }[]>`
        SELECT key, value, computed_at AS "computedAt" FROM computed_trait_values WHERE profile_id = ${id} ORDER BY key`;
      return c.json(
        Object.fromEntries(values.map((v) => [v.key, { value: v.value, computedAt: v.computedAt.toISOString() }])),
        200,
      );
    },
  );
  return app;
}
