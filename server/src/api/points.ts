import { randomUUID } from 'node:crypto';
import { MAX_POINTS, pointsBalance } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, actorOf, requirePermission } from '../auth/middleware.ts';
import type { Sql, Tx } from '../db/index.ts';
import { adjustPoints, couponsOf, entriesOf, ledgers } from '../pipeline/automate/index.ts';
import { liveProfileId } from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const Param = z.object({
  id: z.string().uuid().openapi({ description: 'A profile id (merged ones lead to the survivor)' }),
});
const Entry = z.object({
  id: z.string(),
  delta: z.number(),
  reason: z.string(),
  source: z.string().openapi({ description: "A flow's effect key (flow:<run>:<node>:<iteration>) or api:<key>" }),
  at: z.string(),
  expiresAt: z.string().nullable(),
  actor: z.string().nullable(),
});
const Points = z
  .object({
    profileId: z.string(),
    balance: z.number().openapi({ description: 'Now: expired credits do not count (computed.points_balance)' }),
    expiring: z.array(z.object({ amount: z.number(), at: z.string() })),
    ledger: z.array(Entry),
    coupons: z.array(
      z.object({
        pool: z.string(),
        code: z.string(),
        status: z.string(),
        issuedAt: z.string().nullable(),
        redeemedAt: z.string().nullable(),
        expiresAt: z.string().nullable(),
      }),
    ),
  })
  .openapi('Points');
const Adjust = z.object({
  delta: z
    .number()
    .int()
    .min(-MAX_POINTS)
    .max(MAX_POINTS)
    .refine((n) => n !== 0, 'a delta of 0 changes nothing'),
  reason: z.string().min(1).max(500),
  expiresInDays: z.number().int().min(1).max(3660).optional(),
  key: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: 'An idempotency key: the same key again writes nothing (answers 200)' }),
});
const notFound = { description: 'No such profile', content: { 'application/json': { schema: ErrorSchema } } };
const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

async function pointsView(tx: Tx, profileId: string, now: number) {
  const rows = (await ledgers(tx, [profileId])).get(profileId) ?? [];
  const { balance, expiring } = pointsBalance(entriesOf(rows), now);
  return {
    profileId,
    balance,
    expiring: expiring.map((e) => ({ amount: e.amount, at: new Date(e.at).toISOString() })),
    ledger: rows.map((r) => ({ ...r, delta: Number(r.delta), at: iso(r.at)!, expiresAt: iso(r.expiresAt) })),
    coupons: (await couponsOf(tx, profileId)).map((c) => ({
      ...c,
      issuedAt: iso(c.issuedAt),
      redeemedAt: iso(c.redeemedAt),
      expiresAt: iso(c.expiresAt),
    })),
  };
}

/**
 * `/api/profiles/:id/points`: a person's points — the balance now (what flows read as
 * `computed.points_balance`), the credits about to expire, the ledger, and the coupons issued to them —
 * and adjustments by staff (audited; once per `key`).
 *
 * @example
 * api.route('/profiles', profilePointsApi({ sql, now: () => new Date() }));
 */
export function profilePointsApi(deps: { sql: Sql; now: () => Date }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/points',
      tags: ['Profiles'],
      summary: 'A person’s points balance, ledger and coupons',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: Param },
      responses: { 200: json(Points, 'The points'), 404: notFound, ...AUTH_ERRORS },
    }),
    async (c) => {
      const id = await liveProfileId(sql, c.req.valid('param').id);
      return c.json((await pointsView(sql, id, deps.now().getTime())) as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/points',
      tags: ['Profiles'],
      summary: 'Add or subtract points (an adjustment, audited)',
      middleware: [requirePermission('profiles:write')] as const,
      request: { params: Param, body: { content: { 'application/json': { schema: Adjust } } } },
      responses: {
        201: json(Points, 'Written'),
        200: json(Points, 'Written before with this key'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const now = deps.now();
      const written = await sql.begin(async (tx) => {
        const id = await liveProfileId(tx, c.req.valid('param').id);
        const wrote = await adjustPoints(tx, id, {
          delta: body.delta,
          reason: body.reason,
          source: `api:${body.key ?? randomUUID()}`,
          at: now,
          expiresAt: body.expiresInDays ? new Date(now.getTime() + body.expiresInDays * 86_400_000) : null,
          actor: actorOf(c.get('principal')),
        });
        return { id, wrote };
      });
      return c.json((await pointsView(sql, written.id, now.getTime())) as never, (written.wrote ? 201 : 200) as never);
    },
  );

  return app;
}
