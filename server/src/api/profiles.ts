import { type IdentityType, normalizeIdentity } from '@cairn/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { piiView } from '../pii/view.ts';
import type { IdentifyStage } from '../pipeline/identify/index.ts';
import {
  consentHistory,
  liveProfileId,
  profileEvents,
  profileIdByIdentity,
  profileMerges,
  profileView,
} from '../pipeline/identify/index.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const ProfileSchema = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
    identities: z.array(z.object({ type: z.string(), value: z.string(), createdAt: z.string() })),
    traits: z.record(
      z.string(),
      z.object({
        value: z.unknown(),
        updatedAt: z.string().openapi({ description: 'Timestamp of the event that last changed it' }),
        source: z
          .string()
          .openapi({ description: 'identify, context.traits, computed, or derived (filled by a data-quality rule)' }),
        eventId: z.string(),
      }),
    ),
    accounts: z.array(
      z.object({
        id: z.string(),
        traits: z.record(z.string(), z.unknown()),
        firstSeenAt: z.string(),
        lastSeenAt: z.string(),
      }),
    ),
    consent: z.record(
      z.string(),
      z.object({ granted: z.boolean(), at: z.string(), source: z.string(), actor: z.string().nullable() }),
    ),
    mergedFrom: z.array(z.string()).openapi({ description: 'Profiles merged into this one; their ids redirect here' }),
  })
  .openapi('Profile');

const MergeSchema = z
  .object({
    id: z.string(),
    kind: z.enum(['merge', 'split', 'unmerge']),
    survivorId: z.string(),
    mergedId: z.string(),
    reason: z.string(),
    eventId: z.string().nullable(),
    actor: z.string().nullable(),
    before: z.unknown().openapi({ description: 'Identity keys of both sides before the change' }),
    at: z.string(),
    undoneAt: z.string().nullable(),
    undoneBy: z.string().nullable(),
  })
  .openapi('Merge');

const notFound = { description: 'No such profile', content: { 'application/json': { schema: ErrorSchema } } };
const gone = { description: 'The profile was erased', content: { 'application/json': { schema: ErrorSchema } } };
const redirect = { description: 'A merged-away id: Location names the surviving profile' };
const IdParam = z.object({ id: z.string().uuid() });

/**
 * `/api/profiles`: lookups by identity, the profile with identities, traits, accounts and consent,
 * its events, merge log, unmerge, consent changes and erasure.
 *
 * @example
 * api.route('/profiles', profilesApi({ sql, pii, identify: pipeline.identify }));
 */
export function profilesApi(deps: { sql: Sql; pii: Pii; identify: IdentifyStage }) {
  const { sql, identify, pii } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  // Sensitive traits and identities: clear for callers with pii:read, masked for the others.
  const shown = (c: Context<{ Variables: AuthVariables }>) => piiView(pii, c.get('principal'));

  // A merged-away id answers with a redirect to the survivor (GET only); erased ones with 410.
  async function live(_c: { req: { path: string } }, id: string): Promise<{ id: string; moved: boolean }> {
    const target = await liveProfileId(sql, id);
    return { id: target, moved: target !== id };
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['Profiles'],
      summary: 'Find the profile holding an identity',
      description:
        'Give exactly one of userId, anonymousId, email, phone or externalId (`type:value`, e.g. `crm_id:C-9`). ' +
        'Values are normalised as on events (emails lower-cased, phones to E.164 where known). Merged-away ' +
        'identities resolve to the surviving profile.',
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        query: z.object({
          userId: z.string().optional(),
          anonymousId: z.string().optional(),
          email: z.string().optional(),
          phone: z.string().optional(),
          externalId: z.string().optional(),
        }),
      },
      responses: { 200: json(z.object({ data: z.array(ProfileSchema) }), 'Zero or one profile'), ...AUTH_ERRORS },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const given = Object.entries(q).filter(([, v]) => v !== undefined) as [string, string][];
      if (given.length !== 1) {
        throw apiError(400, 'invalid_request', 'give exactly one of userId, anonymousId, email, phone, externalId');
      }
      const [name, raw] = given[0]!;
      let type = name as IdentityType;
      let value = raw;
      if (name === 'externalId') {
        const i = raw.indexOf(':');
        if (i < 1) throw apiError(400, 'invalid_request', 'externalId: write it as type:value, e.g. crm_id:C-9');
        type = `x:${raw.slice(0, i).trim().toLowerCase()}`;
        value = raw.slice(i + 1);
      }
      const id = normalizeIdentity(type, value, identify.identity);
      if (!id) return c.json({ data: [] }, 200);
      // Sensitive identities are stored by blind index: the lookup computes the same index.
      const profileId = await profileIdByIdentity(sql, pii.identityKey(id));
      const view = profileId ? await profileView(sql, profileId, shown(c)) : undefined;
      return c.json({ data: view ? [view] : [] }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}',
      tags: ['Profiles'],
      summary: 'A profile: identities, traits (with time and source), accounts, consent',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: { 200: json(ProfileSchema, 'The profile'), 308: redirect, 404: notFound, 410: gone, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const target = await live(c, id);
      if (target.moved) return c.redirect(`/api/profiles/${target.id}`, 308);
      const view = await profileView(sql, target.id, shown(c));
      if (!view) throw apiError(404, 'not_found', `no profile ${id}`);
      return c.json(view, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/events',
      tags: ['Profiles'],
      summary: "A profile's events, newest first (paged)",
      middleware: [requirePermission('profiles:read')] as const,
      request: {
        params: IdParam,
        query: z.object({
          before: z
            .string()
            .regex(/^\d+_\d+$/)
            .optional()
            .openapi({ description: 'The `next` of the previous page' }),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
      responses: {
        200: json(
          z.object({ data: z.array(z.record(z.string(), z.unknown())), next: z.string().nullable() }),
          'A page',
        ),
        308: redirect,
        404: notFound,
        410: gone,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const target = await live(c, id);
      if (target.moved) return c.redirect(`/api/profiles/${target.id}/events${new URL(c.req.url).search}`, 308);
      return c.json(await profileEvents(sql, target.id, c.req.valid('query'), shown(c)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/merges',
      tags: ['Profiles'],
      summary: 'The merge log of a profile (merges, automatic splits, unmerges), newest first',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ data: z.array(MergeSchema) }), 'Merge log'),
        308: redirect,
        404: notFound,
        410: gone,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const target = await live(c, id);
      if (target.moved) return c.redirect(`/api/profiles/${target.id}/merges`, 308);
      return c.json({ data: (await profileMerges(sql, target.id)) as z.infer<typeof MergeSchema>[] }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/unmerge',
      tags: ['Profiles'],
      summary: 'Undo a merge: restore the merged profile, its identities, events and traits',
      description:
        'The links that joined the two sides stop counting as evidence, also for later events that carry the same ' +
        'identities together. A new event that joins the two through different identities merges them again (new ' +
        'evidence). Traits of both profiles are recomputed from their events.',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: { 'application/json': { schema: z.object({ mergeId: z.string().regex(/^\d+$/) }) } },
          required: true,
        },
      },
      responses: {
        200: json(z.object({ survivor: z.string(), restored: z.string(), unmergeId: z.string() }), 'Unmerged'),
        404: notFound,
        409: {
          description: 'Already undone, or not a merge into this profile',
          content: { 'application/json': { schema: ErrorSchema } },
        },
        410: gone,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { mergeId } = c.req.valid('json');
      const result = await identify.unmerge(id, mergeId, c.get('principal').id);
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/consent',
      tags: ['Profiles'],
      summary: 'Consent history (proof of consent), newest first',
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ data: z.array(z.record(z.string(), z.unknown())) }), 'Every recorded change'),
        308: redirect,
        404: notFound,
        410: gone,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const target = await live(c, id);
      if (target.moved) return c.redirect(`/api/profiles/${target.id}/consent`, 308);
      return c.json({ data: await consentHistory(sql, target.id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}/consent',
      tags: ['Profiles'],
      summary: 'Record consent choices per purpose',
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: z.object({
                purposes: z
                  .record(z.string().min(1).max(100), z.boolean())
                  .refine((p) => Object.keys(p).length > 0, 'name at least one purpose')
                  .openapi({ example: { marketing: false, analytics: true } }),
              }),
            },
          },
          required: true,
        },
      },
      responses: { 200: json(ProfileSchema, 'The profile after the change'), 404: notFound, 410: gone, ...AUTH_ERRORS },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { purposes } = c.req.valid('json');
      const unknown = identify.purposes
        ? Object.keys(purposes).filter((p) => !identify.purposes!.includes(p.trim().toLowerCase()))
        : [];
      if (unknown.length) throw apiError(400, 'invalid_request', `unknown purposes: ${unknown.join(', ')}`);
      const target = await identify.setConsent(id, purposes, c.get('principal').id);
      return c.json((await profileView(sql, target, shown(c)))!, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      tags: ['Profiles'],
      summary: 'Erase a profile (right to be forgotten) and suppress its identities',
      description:
        'Deletes the profile, its identities, traits, consent history, events and merge history (also of profiles ' +
        'merged into it); keeps only keyed hashes of its identities so later events carrying them are dropped and ' +
        'counted; records who asked; queues a `profile.erased` notice for destinations.',
      middleware: [requirePermission('profiles:erase')] as const,
      request: { params: IdParam },
      responses: {
        200: json(
          z.object({
            erasureId: z.string(),
            profileIds: z.array(z.string()),
            identities: z.number(),
            events: z.number(),
          }),
          'Erased',
        ),
        404: notFound,
        410: gone,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      return c.json(await identify.erase(id, c.get('principal').id), 200);
    },
  );
  return app;
}
