import type { PluginDefinition } from '@cairn/plugin-api';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { idCursor, limitParam, page, pageSchema } from '../infra/paging.ts';
import type { DeliverCommands, DestinationDirectory } from '../pipeline/deliver/index.ts';
import {
  BUILTIN_REGISTRY,
  DELIVERY_STATUSES,
  type Destination,
  type DestinationInput,
  deleteDestination,
  deliveryCounts,
  FilterSchema,
  getDestination,
  insertDestination,
  listDeliveries,
  listDestinations,
  type PluginRegistry,
  updateDestination,
} from '../pipeline/deliver/index.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const MASK = '********';

const InputSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    plugin: z.string().openapi({ description: 'An installed plugin: GET /api/destinations/plugins lists them' }),
    settings: z.record(z.string(), z.unknown()).default({}),
    filter: FilterSchema,
    purposes: z.array(z.string().trim().toLowerCase().min(1)).default([]).openapi({
      description: "Consent purposes required on top of the plugin's own",
    }),
    channel: z.enum(['email', 'sms', 'push', 'chat', 'webhook']).nullable().default(null).openapi({
      description: 'Honour unsubscribes of this channel (message plugins default to their own)',
    }),
    topic: z.string().max(100).default(''),
    enabled: z.boolean().default(true),
    concurrency: z.number().int().min(1).max(32).default(2),
    rateLimit: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .nullable()
      .default(null)
      .openapi({ description: 'Items per second per server' }),
    retryWindowSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(4 * 3600),
  })
  .openapi('DestinationInput');

// Only the fields a PATCH names change (a rename must never reset `purposes` or the filter).
const PatchSchema = patchOf(InputSchema.omit({ plugin: true })).openapi('DestinationPatch');

const DestinationSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    plugin: z.string(),
    settings: z.record(z.string(), z.unknown()).openapi({ description: 'Secret fields are masked' }),
    filter: FilterSchema,
    purposes: z.array(z.string()),
    requiredPurposes: z.array(z.string()),
    channel: z.string().nullable(),
    topic: z.string(),
    enabled: z.boolean(),
    concurrency: z.number(),
    rateLimit: z.number().nullable(),
    retryWindowSeconds: z.number(),
    circuit: z.object({ failures: z.number(), openUntil: z.string().nullable() }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Destination');

const DeliveryStatusSchema = z.enum(DELIVERY_STATUSES).openapi('DeliveryStatus', {
  description:
    '`pending`: queued to be sent; `waiting`: an ordered destination holds it behind an earlier unfinished ' +
    'event of the same profile (no job until those are finished); `retrying`: an attempt failed, the next ' +
    'one is scheduled; `delivered`; `dead`: refused for good or out of retry window (replayable); ' +
    '`skipped`: not sent (filter, consent, unsubscribe; see reason)',
});

const DeliverySchema = z
  .object({
    id: z.string(),
    eventId: z.string().nullable().openapi({ description: "Null for a flow's message" }),
    messageId: z.string().nullable(),
    profileId: z.string().nullable(),
    idempotencyKey: z.string(),
    status: DeliveryStatusSchema,
    reason: z.string().nullable().openapi({
      description: 'Why skipped, the last error, or for `waiting`: "behind an earlier event of this profile"',
    }),
    attempts: z.number(),
    lastStatus: z.number().int().nullable().openapi({
      description: "The receiver's status code on the last failed attempt (HTTP status, SMTP reply code)",
    }),
    lastError: z
      .string()
      .nullable()
      .openapi({
        description:
          "The last failed attempt's error with an excerpt of the receiver's answer (at most 1 KB, " +
          'secret settings masked); kept when the row goes dead on an exhausted retry window',
      }),
    firstAttemptAt: z.string().nullable(),
    lastAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Delivery');

const IdParam = z.object({ id: z.string() });
const notFound = { description: 'No such destination', content: { 'application/json': { schema: ErrorSchema } } };

function pluginOf(plugins: PluginRegistry, name: string): Readonly<PluginDefinition> {
  const plugin = plugins.get(name);
  if (!plugin)
    throw apiError(
      400,
      'invalid_request',
      `plugin: unknown plugin "${name}" (installed: ${plugins.names().join(', ')})`,
    );
  return plugin;
}

function validSettings(plugin: Readonly<PluginDefinition>, settings: unknown): Record<string, unknown> {
  const parsed = plugin.settings.safeParse(settings);
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => ({ path: ['settings', ...i.path].join('.'), message: i.message }));
    throw apiError(400, 'invalid_request', `${details[0]!.path}: ${details[0]!.message}`, details);
  }
  return settings as Record<string, unknown>;
}

/**
 * A destination as the admin API shows it, secret settings masked (the audit log records this too).
 *
 * @example
 * destinationView(await getDestination(sql, id), plugins);
 */
export function destinationView(d: Destination, plugins: PluginRegistry = BUILTIN_REGISTRY) {
  const plugin = plugins.get(d.plugin);
  const settings = { ...d.settings };
  // A plugin this registry does not know has unknown secrets: every setting is masked.
  for (const key of plugin ? (plugin.secrets ?? []) : Object.keys(settings)) {
    if (settings[key] !== undefined) settings[key] = MASK;
  }
  return {
    id: d.id,
    name: d.name,
    plugin: d.plugin,
    settings,
    filter: d.filter,
    purposes: d.purposes,
    requiredPurposes: [...new Set([...(plugin?.purposes ?? []), ...d.purposes])],
    channel: d.channel,
    topic: d.topic,
    enabled: d.enabled,
    concurrency: d.concurrency,
    rateLimit: d.rateLimit,
    retryWindowSeconds: d.retryWindowSeconds,
    circuit: { failures: d.failures, openUntil: d.circuitOpenUntil?.toISOString() ?? null },
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

/**
 * `/api/destinations`: configure destinations, test them, read their delivery ledger, replay.
 *
 * @example
 * api.route('/destinations', destinationsApi({ sql, destinations, plugins, deliver: pipeline.deliver }));
 */
export function destinationsApi(deps: {
  sql: Sql;
  destinations: DestinationDirectory;
  plugins: PluginRegistry;
  /** Stage 5's commands: test send, replay, queue set-up. */
  deliver: DeliverCommands;
}) {
  const { sql } = deps;
  const view = (d: Destination) => destinationView(d, deps.plugins);
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (id: string) => {
    const d = await getDestination(sql, id);
    if (!d) throw apiError(404, 'not_found', `no destination ${id}`);
    return d;
  };
  app.openapi(
    createRoute({
      method: 'get',
      path: '/plugins',
      tags: ['Destinations'],
      summary: 'Installed plugins',
      middleware: [requirePermission('destinations:read')] as const,
      responses: {
        200: json(z.object({ data: z.array(z.record(z.string(), z.unknown())) }), 'Plugins'),
        ...AUTH_ERRORS,
      },
    }),
    (c) =>
      c.json(
        {
          data: deps.plugins.list().map((p) => ({
            name: p.name,
            version: p.version,
            description: p.description,
            purposes: [...p.purposes],
            channel: p.channel ?? null,
            accepts: [...p.accepts],
            batchSize: p.batchSize ?? 1,
            ordering: p.ordering ?? 'none',
            settings: z.toJSONSchema(p.settings, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
          })),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Destinations'],
      summary: 'Create a destination (settings are validated by its plugin)',
      middleware: [requirePermission('destinations:write')] as const,
      request: { body: { content: { 'application/json': { schema: InputSchema } }, required: true } },
      responses: { 201: json(DestinationSchema, 'Created'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const input = c.req.valid('json') as DestinationInput;
      const plugin = pluginOf(deps.plugins, input.plugin);
      validSettings(plugin, input.settings);
      const created = await insertDestination(sql, input);
      await deps.deliver.prepareQueue(created.id);
      await deps.destinations.refresh();
      return c.json(view(created), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Destinations'],
      summary: 'List destinations',
      middleware: [requirePermission('destinations:read')] as const,
      responses: { 200: json(z.object({ data: z.array(DestinationSchema) }), 'Destinations'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listDestinations(sql)).map(view) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Destinations'],
      summary: 'A destination, with delivery counts per status',
      middleware: [requirePermission('destinations:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(
          DestinationSchema.extend({
            deliveries: z.record(DeliveryStatusSchema, z.number()).openapi({
              description: 'Ledger rows per status, every status present',
            }),
          }),
          'The destination',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const d = await existing(c.req.valid('param').id);
      return c.json({ ...view(d), deliveries: await deliveryCounts(sql, d.id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{id}',
      tags: ['Destinations'],
      summary: 'Change a destination (masked secrets sent back unchanged keep their value)',
      middleware: [requirePermission('destinations:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: { 'application/json': { schema: PatchSchema } },
          required: true,
        },
      },
      responses: { 200: json(DestinationSchema, 'Changed'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const d = await existing(c.req.valid('param').id);
      const patch = c.req.valid('json');
      const plugin = pluginOf(deps.plugins, d.plugin);
      const settings = { ...d.settings, ...(patch.settings ?? {}) };
      for (const key of plugin.secrets ?? []) if (settings[key] === MASK) settings[key] = d.settings[key];
      const next: DestinationInput = { ...applyPatch(d, patch), settings: validSettings(plugin, settings) };
      const updated = await updateDestination(sql, d.id, next);
      await deps.destinations.refresh();
      return c.json(view(updated!), 200);
    },
  );

  for (const [action, enabled] of [
    ['disable', false],
    ['enable', true],
  ] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/{id}/${action}`,
        tags: ['Destinations'],
        summary: enabled ? 'Enable a destination' : 'Disable a destination (queued deliveries wait until enabled)',
        middleware: [requirePermission('destinations:write')] as const,
        request: { params: IdParam },
        responses: { 200: json(DestinationSchema, 'Changed'), 404: notFound, ...AUTH_ERRORS },
      }),
      async (c) => {
        const d = await existing(c.req.valid('param').id);
        const updated = await updateDestination(sql, d.id, { ...d, enabled });
        await deps.destinations.refresh();
        return c.json(view(updated!), 200);
      },
    );
  }

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Destinations'],
      summary: 'Delete a destination (its ledger is kept)',
      middleware: [requirePermission('destinations:write')] as const,
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      if (!(await deleteDestination(sql, id))) throw apiError(404, 'not_found', `no destination ${id}`);
      await deps.destinations.refresh();
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/test',
      tags: ['Destinations'],
      summary: 'Send a sample event now (not through the queue) and say what happened',
      middleware: [requirePermission('destinations:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': { schema: z.object({ event: z.record(z.string(), z.unknown()).optional() }) },
          },
        },
      },
      responses: {
        200: json(
          z.object({
            outcome: z.object({
              status: z.string(),
              error: z.string().optional(),
              detail: z.string().optional(),
              retryAfter: z.number().optional(),
            }),
            idempotencyKey: z.string(),
          }),
          'What the plugin answered',
        ),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const d = await existing(c.req.valid('param').id);
      const plugin = pluginOf(deps.plugins, d.plugin);
      const body = (await c.req.json().catch(() => ({}))) as { event?: Record<string, unknown> };
      return c.json(await deps.deliver.testSend(d, plugin, body.event), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/deliveries',
      tags: ['Destinations'],
      summary: 'The delivery ledger, newest first',
      middleware: [requirePermission('destinations:read')] as const,
      request: {
        params: IdParam,
        query: z.object({
          status: DeliveryStatusSchema.optional(),
          before: idCursor(),
          limit: limitParam(1000, 100),
        }),
      },
      responses: {
        200: json(pageSchema(DeliverySchema), 'A page'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const d = await existing(c.req.valid('param').id);
      const q = c.req.valid('query');
      const rows = await listDeliveries(sql, d.id, q);
      const iso = (t: Date | null) => t?.toISOString() ?? null;
      const data = rows.map((r) => ({
        ...r,
        firstAttemptAt: iso(r.firstAttemptAt),
        lastAttemptAt: iso(r.lastAttemptAt),
        deliveredAt: iso(r.deliveredAt),
        createdAt: r.createdAt.toISOString(),
      }));
      return c.json(page(data, rows, q.limit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/replay',
      tags: ['Destinations'],
      summary: 'Send dead letters again (default), or every delivery of events in a time range',
      middleware: [requirePermission('destinations:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: z.union([
                z.object({ status: z.literal('dead').default('dead') }),
                z.object({ from: z.iso.datetime({ offset: true }), to: z.iso.datetime({ offset: true }) }),
              ]),
            },
          },
        },
      },
      responses: { 200: json(z.object({ replayed: z.number() }), 'Queued again'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const d = await existing(c.req.valid('param').id);
      const plugin = pluginOf(deps.plugins, d.plugin);
      const body = (await c.req.json().catch(() => ({}))) as { from?: string; to?: string };
      const range = body.from && body.to ? { from: new Date(body.from), to: new Date(body.to) } : null;
      if (range && !(range.from < range.to)) throw apiError(400, 'invalid_request', 'from must be before to');
      return c.json({ replayed: await deps.deliver.replay(d, plugin, range) }, 200);
    },
  );
  return app;
}
