import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import {
  type CouponPoolRecord,
  type CouponPoolRow,
  couponStats,
  deleteCouponPool,
  flowNamingPool,
  getCouponPool,
  importCodes,
  insertCouponPool,
  listCouponPools,
  updateCouponPool,
} from '../pipeline/automate/index.ts';
import { applyPatch, patchOf } from './patch.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Fields = z.object({
  name: z.string().min(1).max(200),
  expiresAfterDays: z
    .number()
    .int()
    .min(1)
    .max(3660)
    .nullable()
    .default(null)
    .openapi({ description: 'A code expires this many days after it is issued' }),
  expiresAt: z
    .string()
    .datetime({ offset: true })
    .nullable()
    .default(null)
    .openapi({ description: 'Every code of the pool expires then (the sooner of the two wins)' }),
  redeemEvent: z
    .string()
    .min(1)
    .max(200)
    .nullable()
    .default(null)
    .openapi({ description: 'The event that redeems a code', example: 'Order Completed' }),
  codePath: z
    .string()
    .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+){0,9}$/, 'a dot path')
    .default('properties.coupon')
    .openapi({ description: 'Where the code is in that event' }),
});
const Create = Fields.extend({
  key: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'a-z, 0-9, _ and -, at most 64')
    .openapi({ example: 'spring' }),
});
const Stats = z.object({ available: z.number(), issued: z.number(), redeemed: z.number(), expired: z.number() });
const PoolSchema = Create.extend({ createdAt: z.string(), updatedAt: z.string() }).openapi('CouponPool');
const Param = z.object({ key: z.string() });
const notFound = { description: 'No such pool', content: { 'application/json': { schema: ErrorSchema } } };
const MAX_CODES = 100_000;
const Code = z.string().trim().min(1).max(200);
const Codes = z
  .union([z.array(Code).max(MAX_CODES), z.object({ codes: z.array(Code).max(MAX_CODES) })])
  .openapi({ description: 'The codes: a JSON array (or { codes }), or text/plain with one code a line' });

const view = (p: CouponPoolRow) => ({
  key: p.key,
  name: p.name,
  expiresAfterDays: p.expiresAfterDays,
  expiresAt: p.expiresAt ? new Date(p.expiresAt).toISOString() : null,
  redeemEvent: p.redeemEvent,
  codePath: p.codePath,
  createdAt: new Date(p.createdAt).toISOString(),
  updatedAt: new Date(p.updatedAt).toISOString(),
});
const record = (b: z.infer<typeof Fields>): CouponPoolRecord => ({
  name: b.name,
  expiresAfterDays: b.expiresAfterDays,
  expiresAt: b.expiresAt ? new Date(b.expiresAt) : null,
  redeemEvent: b.redeemEvent,
  codePath: b.codePath,
});

/**
 * `/api/coupon-pools`: pools of coupon codes flows hand out (`issue_coupon`), one per run, exactly
 * once; an event of the pool's `redeemEvent` with the code at `codePath` redeems it; codes expire.
 * Codes are imported as a JSON array or as text lines (deduplicated), and counted by status.
 *
 * @example
 * api.route('/coupon-pools', couponPoolsApi({ sql, now: () => new Date() }));
 */
export function couponPoolsApi(deps: { sql: Sql; now: () => Date }) {
  const { sql } = deps;
  const read = requirePermission('flows:read');
  const write = requirePermission('flows:write');
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const existing = async (key: string) => {
    const row = await getCouponPool(sql, key);
    if (!row) throw apiError(404, 'not_found', `no coupon pool ${key}`);
    return row;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Flows'],
      summary: 'List coupon pools',
      middleware: [read] as const,
      responses: { 200: json(z.object({ data: z.array(PoolSchema) }), 'Pools by key'), ...AUTH_ERRORS },
    }),
    async (c) => c.json({ data: (await listCouponPools(sql)).map(view) } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      tags: ['Flows'],
      summary: 'Create a coupon pool',
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: Create } } } },
      responses: { 201: json(PoolSchema, 'Created'), 409: json(ErrorSchema, 'The key is taken'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key, ...fields } = c.req.valid('json');
      if (!(await insertCouponPool(sql, key, record(fields))))
        throw apiError(409, 'conflict', `coupon pool ${key} exists`);
      return c.json(view(await existing(key)) as never, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'One coupon pool, with its codes by status',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(PoolSchema.extend({ stats: Stats }), 'The pool'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const pool = view(await existing(key));
      return c.json({ ...pool, stats: await couponStats(sql, key) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'Change a pool (codes not yet issued take its new fixed expiry)',
      middleware: [write] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: patchOf(Fields) } } } },
      responses: { 200: json(PoolSchema, 'Changed'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      const before = view(await existing(key));
      const body = Fields.parse(applyPatch(before as z.input<typeof Fields>, c.req.valid('json')));
      await sql.begin((tx) => updateCouponPool(tx, key, record(body), deps.now()));
      return c.json(view(await existing(key)) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{key}',
      tags: ['Flows'],
      summary: 'Delete a pool and its codes (not while a flow names it)',
      middleware: [write] as const,
      request: { params: Param },
      responses: {
        204: { description: 'Deleted' },
        404: notFound,
        409: json(ErrorSchema, 'A flow names the pool'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const flow = await flowNamingPool(sql, key);
      if (flow) throw apiError(409, 'conflict', `flow ${flow} issues codes of ${key}`);
      await deleteCouponPool(sql, key);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{key}/codes',
      tags: ['Flows'],
      summary: 'Import codes (a JSON array or text lines; codes already in the pool are duplicates)',
      middleware: [write] as const,
      request: {
        params: Param,
        // text/plain (one code a line) is read as text; a JSON body is validated.
        body: {
          content: { 'application/json': { schema: Codes }, 'text/plain': { schema: z.string() } },
          required: false,
        },
      },
      responses: {
        200: json(z.object({ imported: z.number(), duplicate: z.number(), stats: Stats }), 'Imported'),
        400: json(ErrorSchema, 'Not a list of codes'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      const type = c.req.header('content-type') ?? '';
      let codes: string[];
      if (type.startsWith('text/plain')) {
        codes = (await c.req.text())
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter(Boolean);
        const bad = codes.find((x) => x.length > 200);
        if (bad !== undefined) throw apiError(400, 'invalid_request', `a code is longer than 200 characters`);
        if (codes.length > MAX_CODES) throw apiError(400, 'invalid_request', `at most ${MAX_CODES} codes a call`);
      } else {
        const body = c.req.valid('json') as z.infer<typeof Codes>;
        codes = Array.isArray(body) ? body : body.codes;
      }
      const counts = await sql.begin((tx) => importCodes(tx, key, codes));
      return c.json({ ...counts, stats: await couponStats(sql, key) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{key}/stats',
      tags: ['Flows'],
      summary: 'A pool’s codes by status',
      middleware: [read] as const,
      request: { params: Param },
      responses: { 200: json(Stats, 'Counts'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { key } = c.req.valid('param');
      await existing(key);
      return c.json((await couponStats(sql, key)) as never, 200);
    },
  );

  return app;
}
