import { extractIdentities, type JsonObject, type TrackingEvent } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { checkImportTags, type IdentifyStage, upsertProfile } from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const TYPES = ['userId', 'anonymousId', 'email', 'phone'] as const;
const Scalar = z.union([z.string().max(10_000), z.number(), z.boolean(), z.null()]);
const UpsertSchema = z
  .object({
    traits: z.record(z.string().min(1).max(128), Scalar).optional(),
    identities: z.object({ userId: z.string(), email: z.string(), phone: z.string() }).partial().optional(),
    consent: z.record(z.string().min(1).max(100), z.boolean()).optional(),
    tags: z.array(z.string().min(1)).max(100).optional(),
  })
  .openapi({ example: { traits: { name: 'Ann', plan: 'pro' }, consent: { marketing: true }, tags: ['vip'] } });

/**
 * `PUT /api/profiles/by/{identityType}/{value}`: CRM-style upsert of one person, by the same code as a
 * bulk import row (identity resolution, traits folded as stage 2 folds them, consent, static tags,
 * PII sealed). The same body twice changes nothing; no flow and no delivery reacts.
 *
 * @example
 * api.route('/profiles', profileUpsertApi({ sql, pii, identify, config, now }));
 */
export function profileUpsertApi(deps: {
  sql: Sql;
  pii: Pii;
  identify: IdentifyStage;
  config: Readonly<Config>;
  now: () => Date;
}) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const ctx = {
    identity: deps.identify.identity,
    traits: deps.identify.traits,
    purposes: deps.identify.purposes,
    pii: deps.pii,
  };
  app.openapi(
    createRoute({
      method: 'put',
      path: '/by/{identityType}/{value}',
      tags: ['Profiles'],
      summary: 'Create or update the person holding an identity (CRM sync)',
      description:
        'Traits are set (not unset) as an identify call would set them; other identities join the profile; consent ' +
        'is recorded when it differs; static tags are added. Identities of two different profiles are refused (409): ' +
        'merging stays with the pipeline and its guards.',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: z.object({ identityType: z.enum(TYPES), value: z.string().min(1).max(1000) }),
        body: { content: { 'application/json': { schema: UpsertSchema } }, required: true },
      },
      responses: {
        200: json(
          z.object({ profileId: z.string(), created: z.boolean(), changed: z.boolean() }),
          'The profile, and what changed',
        ),
        400: {
          description: 'Invalid identity, trait or tag',
          content: { 'application/json': { schema: ErrorSchema } },
        },
        409: {
          description: 'The identities belong to different profiles',
          content: { 'application/json': { schema: ErrorSchema } },
        },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { identityType, value } = c.req.valid('param');
      const body = c.req.valid('json');
      const traits: JsonObject = { ...(body.traits ?? {}) };
      const payload: JsonObject = { type: 'identify' };
      const ids = { ...(body.identities ?? {}), [identityType]: value };
      for (const [type, v] of Object.entries(ids)) {
        if (type === 'email' || type === 'phone') traits[type] = v;
        else payload[type] = v;
      }
      if (Object.keys(traits).length) payload.traits = traits;
      if (body.consent) payload.context = { consent: { categoryPreferences: body.consent } };
      const identities = extractIdentities(payload as unknown as TrackingEvent, ctx.identity);
      for (const type of Object.keys(ids)) {
        if (!identities.some((i) => i.type === type))
          throw apiError(400, 'invalid_request', `${type}: not a valid ${type}`);
      }
      const tags = body.tags ?? [];
      const badTag = await checkImportTags(
        deps.sql,
        Object.fromEntries(tags.map((t) => [t, { kind: 'tag' as const, name: t }])),
      );
      if (badTag) throw apiError(400, 'invalid_request', `tags: ${badTag}`);
      const row = { line: 0, payload, consent: body.consent ?? {}, tags, identities };
      const result = await upsertProfile(deps.sql, row, ctx, deps.now());
      if (!result.profileId)
        throw apiError(409, 'conflict', result.reason ?? 'identities belong to different profiles');
      return c.json({ profileId: result.profileId, created: result.created, changed: result.changed }, 200);
    },
  );
  return app;
}
