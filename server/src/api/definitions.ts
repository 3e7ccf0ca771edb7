import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, type Permission, requirePermission } from '../auth/middleware.ts';
import type { Sql, Transaction, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import { rulesReading } from '../pipeline/compute/index.ts';
import type { DefinitionKind } from '../pipeline/topics.ts';
import { patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

// Audiences, tags and computed traits are one kind of resource: a keyed definition that stage 3
// computes over every profile once it is saved, and keeps current afterwards. Flows, reports and
// experiments are the same shape. Their CRUD routes are made here, once: what differs (the body, its
// checks, the store, the view, the words of the reference) is passed in.

/**
 * The key of a definition: lower-case letters, digits and `_`, starting with a letter (at most 64).
 *
 * @example
 * const Create = z.object({ key: definitionKey(), name: z.string() });
 */
export function definitionKey() {
  return z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'a key: lower-case letters, digits and _, starting with a letter');
}

/** Reads and writes of one kind of definition (its queries module's functions). */
export interface DefinitionStore<Row, Rec> {
  list(sql: Tx): Promise<Row[]>;
  get(sql: Tx, key: string): Promise<Row | undefined>;
  /** false when the key is taken (nothing written). */
  insert(tx: Transaction, key: string, record: Rec): Promise<boolean>;
  /** `recomputed`: the definition now selects differently and is computed over every profile again. */
  update(tx: Transaction, key: string, record: Rec, options: { recomputed: boolean }): Promise<void>;
  remove(sql: Tx, key: string): Promise<void>;
}

/** What routes added beside the CRUD ones (members, presets, previews) may use. */
export interface DefinitionHelpers<Row, Rec, View> {
  /** The definition, or a 404 naming it. */
  existing(key: string): Promise<Row>;
  /** Stores a new definition and hands it to stage 3 in the same transaction; 409 when the key is taken. */
  create(key: string, record: Rec): Promise<View>;
}

/** Everything that tells one kind of definition from another. */
export interface DefinitionResource<
  Row,
  Rec,
  View,
  Create extends z.ZodObject<z.ZodRawShape>,
  Patch extends z.ZodRawShape,
> {
  /** The kind named in `definition.changed` hand-offs and in rule dependencies. */
  kind: DefinitionKind;
  /** How messages name one (`no computed trait x`). */
  noun: string;
  /** The OpenAPI tag of every route. */
  tag: string;
  /** The named schema of a definition as shown. */
  schema: z.ZodType<View>;
  view(row: Row): View;
  /** The stored fields of a shown row, which a PATCH starts from. */
  record(row: Row): Rec;
  store: DefinitionStore<Row, Rec>;
  /** Whether stage 3 computes a definition so stored (a disabled audience or a static tag is not). */
  computes(record: Rec): boolean;
  /** Whether a change selects other profiles than before (and is therefore recomputed). */
  changed(before: Rec, after: Rec): boolean;
  /** Defaults to `audiences:read` and `audiences:write`. */
  permissions?: { read: Permission; write: Permission };
  /** Descriptions of the reference, route by route. */
  describe: {
    notFound: string;
    list: { summary: string; description: string };
    get: { summary: string; description: string };
    create: { summary: string; created: string; invalid: string; refused?: string };
    update: { summary: string; invalid: string; conflict?: string; refused?: string };
    remove: { summary: string; inUse: string; verb?: string };
    /** Adds `POST /{key}/recompute` with this summary. */
    recompute?: string;
  };
  create: {
    schema: Create;
    /** Checks a create body (a 400 naming the field) and returns what to store under which key. */
    prepare(body: z.infer<Create>): Promise<{ key: string; record: Rec }>;
  };
  update: {
    /** The fields a PATCH may name, as in a create body; made partial (without defaults) by patchOf. */
    schema: z.ZodObject<Patch>;
    /** Checks a patch and returns the record after it (applyPatch), or refuses it (4xx). */
    prepare(before: Rec, patch: Partial<z.infer<z.ZodObject<Patch>>>, key: string): Promise<Rec>;
  };
  /** Routes of this resource besides the CRUD ones: `first` before `/{key}` routes (so static paths win), `last` after. */
  routes?: {
    first?(app: DefinitionApp, helpers: DefinitionHelpers<Row, Rec, View>): void;
    last?(app: DefinitionApp, helpers: DefinitionHelpers<Row, Rec, View>): void;
  };
}

/** The Hono sub-app a definition's routes are registered on. */
export type DefinitionApp = OpenAPIHono<{ Variables: AuthVariables }>;

const Param = z.object({ key: z.string() });

/**
 * The admin API of one kind of definition: `GET /` (list), `POST /` (create: 201, 400, 409),
 * `GET /{key}`, `PATCH /{key}` (patchOf: only the named fields change), `DELETE /{key}` (409 while a
 * rule reads it), and `POST /{key}/recompute` when asked. A create, or a change that selects other
 * profiles, hands `definition.changed` to stage 3 in the transaction that writes it: a definition
 * saved is a definition computed.
 *
 * @example
 * const app = definitionRoutes({ sql, handOff }, {
 *   kind: 'tag', noun: 'tag', tag: 'Tags', schema: TagSchema, view, record, store: tagStore,
 *   computes: (t) => t.rule !== null, changed: (a, b) => JSON.stringify(a.rule) !== JSON.stringify(b.rule),
 *   describe: { ... }, create: { schema: CreateTag, prepare }, update: { schema: TagFields, prepare },
 * });
 */
export function definitionRoutes<
  Row,
  Rec,
  View,
  Create extends z.ZodObject<z.ZodRawShape>,
  Patch extends z.ZodRawShape,
>(deps: { sql: Sql; handOff: HandOff }, r: DefinitionResource<Row, Rec, View, Create, Patch>): DefinitionApp {
  const { sql, handOff } = deps;
  const { describe: d } = r;
  const read = requirePermission(r.permissions?.read ?? 'audiences:read');
  const write = requirePermission(r.permissions?.write ?? 'audiences:write');
  const notFound = { description: d.notFound, content: { 'application/json': { schema: ErrorSchema } } };
  const app: DefinitionApp = new OpenAPIHono<{ Variables: AuthVariables }>();

  // Inside a transaction, read through it: the embedded database is one session, and a read on the
  // pool while the transaction holds it would wait for ever.
  const existing = async (key: string, db: Tx = sql) => {
    const row = await r.store.get(db, key);
    if (!row) throw apiError(404, 'not_found', `no ${r.noun} ${key}`);
    return row;
  };
  const shown = async (key: string) => r.view(await existing(key));
  // In the transaction that writes the definition: a definition saved is a definition computed.
  const recompute = (tx: Transaction, key: string) => handOff(tx, 'definition.changed', { kind: r.kind, key });
  const create = async (key: string, record: Rec) => {
    const created = await sql.begin(async (tx) => {
      const inserted = await r.store.insert(tx, key, record);
      if (inserted && r.computes(record)) await recompute(tx, key);
      return inserted;
    });
    if (!created) throw apiError(409, 'conflict', `${r.noun} ${key} exists`);
    return shown(key);
  };
  const helpers: DefinitionHelpers<Row, Rec, View> = { existing, create };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: [r.tag],
      summary: d.list.summary,
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(r.schema) }), d.list.description), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await r.store.list(sql)).map(r.view) } as never, 200),
  );

  r.routes?.first?.(app, helpers);

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: [r.tag],
      summary: d.create.summary,
      middleware: [write] as const,
      // Widened: a generic body schema leaves Hono's validated-input type unresolved; prepare gets it typed.
      request: { body: { content: { 'application/json': { schema: r.create.schema as z.ZodObject<z.ZodRawShape> } } } },
      responses: {
        201: json(r.schema, d.create.created),
        400: json(ErrorSchema, d.create.invalid),
        409: json(ErrorSchema, 'Key taken'),
        ...(d.create.refused ? { 422: json(ErrorSchema, d.create.refused) } : {}),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key, record } = await r.create.prepare(c.req.valid('json') as z.infer<Create>);
      return c.json((await create(key, record)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: [r.tag],
      summary: d.get.summary,
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(r.schema, d.get.description), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => c.json((await shown(c.req.valid('param').key)) as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{key}',
      tags: [r.tag],
      summary: d.update.summary,
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: patchOf(r.update.schema) } } } },
      responses: {
        200: json(r.schema, 'Changed'),
        400: json(ErrorSchema, d.update.invalid),
        404: notFound,
        ...(d.update.conflict ? { 409: json(ErrorSchema, d.update.conflict) } : {}),
        ...(d.update.refused ? { 422: json(ErrorSchema, d.update.refused) } : {}),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const before = r.record(await existing(key));
      const after = await r.update.prepare(before, c.req.valid('json') as Partial<z.infer<z.ZodObject<Patch>>>, key);
      const changed = r.changed(before, after);
      await sql.begin(async (tx) => {
        await r.store.update(tx, key, after, { recomputed: changed });
        if (changed && r.computes(after)) await recompute(tx, key);
      });
      return c.json((await shown(key)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: [r.tag],
      summary: d.remove.summary,
      middleware: [write] as const,
      request: { params: Param },
      responses: {
        204: { description: 'Deleted' },
        404: notFound,
        409: json(ErrorSchema, d.remove.inUse),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const readers = await rulesReading(sql, r.kind, key);
      if (readers.length) {
        const names = readers.map((x) => `${x.kind} ${x.key}`).join(', ');
        throw apiError(409, 'conflict', `${r.noun} ${key} is ${d.remove.verb ?? 'used by'} ${names}`);
      }
      await r.store.remove(sql, key);
      return c.body(null, 204);
    },
  );

  if (d.recompute) {
    app.openapi(
      createRoute({
        method: 'post',
        path: '/{key}/recompute',
        tags: [r.tag],
        summary: d.recompute,
        middleware: [write] as const,
        request: { params: Param },
        responses: { 202: json(z.object({ queued: z.boolean() }), 'Queued'), 404: notFound, ...AUTH_ERRORS },
      }),
      async (c) => {
        const { key } = c.req.valid('param');
        // A lone hand-off still goes through a transaction: the type refuses the pool (jobs/handoff.ts).
        await sql.begin(async (tx) => {
          await existing(key, tx);
          await recompute(tx, key);
        });
        return c.json({ queued: true }, 202);
      },
    );
  }

  r.routes?.last?.(app, helpers);
  return app;
}
