import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import { setSubscription } from '../pipeline/deliver/unsubscribe.ts';
import { liveProfileId, ProfileError } from '../pipeline/identify/admin.ts';
import { AUTH_ERRORS, ErrorSchema, json } from './schemas.ts';

const CHANNELS = ['email', 'sms', 'push', 'chat', 'webhook'] as const;

const SubscriptionSchema = z
  .object({
    contact: z.string().openapi({ description: 'email:<address>, phone:<number>, userId:<id> or profile:<id>' }),
    channel: z.string(),
    topic: z.string().openapi({ description: "'' = every topic of the channel" }),
    subscribed: z.boolean(),
    source: z.string().openapi({ description: 'link (one-click unsubscribe) or api' }),
    actor: z.string().nullable(),
    updatedAt: z.string(),
  })
  .openapi('Subscription');

/** The contact points of a live profile, per channel, as subscriptions are keyed. */
async function contactsOf(tx: Tx, profileId: string): Promise<Record<string, string[]>> {
  const ids = await tx<
    { type: string; value: string }[]
  >`SELECT type, value FROM identities WHERE profile_id = ${profileId}`;
  const emails = ids.filter((i) => i.type === 'email').map((i) => `email:${i.value}`);
  const phones = ids.filter((i) => i.type === 'phone').map((i) => `phone:${i.value}`);
  const users = ids.filter((i) => i.type === 'userId').map((i) => `userId:${i.value}`);
  const others = users.length ? users : [`profile:${profileId}`];
  return { email: emails, sms: phones, push: others, chat: others, webhook: others };
}

function rethrow(err: unknown): never {
  if (err instanceof ProfileError) throw apiError(err.status, err.code, err.message);
  throw err;
}

/**
 * `/api/profiles/:id/subscriptions`: subscription state per contact point, channel and topic. Kept by
 * contact point (not profile), so it survives merges and re-identification.
 *
 * @example
 * api.route('/profiles', subscriptionsApi(sql));
 */
export function subscriptionsApi(sql: Sql) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const IdParam = z.object({ id: z.string().uuid() });
  const notFound = { description: 'No such profile', content: { 'application/json': { schema: ErrorSchema } } };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/subscriptions',
      tags: ['Profiles'],
      summary: "Subscription state of the profile's contact points",
      middleware: [requirePermission('profiles:read')] as const,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ data: z.array(SubscriptionSchema) }), 'Recorded states'),
        404: notFound,
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const live = await liveProfileId(sql, c.req.valid('param').id).catch(rethrow);
      const contacts = [...new Set(Object.values(await contactsOf(sql, live)).flat())];
      const rows = await sql<
        {
          contact: string;
          channel: string;
          topic: string;
          subscribed: boolean;
          source: string;
          actor: string | null;
          updated_at: Date;
        }[]
      >`
        SELECT contact, channel, topic, subscribed, source, actor, updated_at FROM subscriptions
        WHERE contact = ANY(${contacts}::text[]) ORDER BY channel, topic, contact`;
      return c.json(
        {
          data: rows.map((r) => ({
            contact: r.contact,
            channel: r.channel,
            topic: r.topic,
            subscribed: r.subscribed,
            source: r.source,
            actor: r.actor,
            updatedAt: r.updated_at.toISOString(),
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{id}/subscriptions',
      tags: ['Profiles'],
      summary: "Subscribe or unsubscribe the profile's contact points of a channel (optionally one topic)",
      middleware: [requirePermission('profiles:write')] as const,
      request: {
        params: IdParam,
        body: {
          content: {
            'application/json': {
              schema: z.object({
                channel: z.enum(CHANNELS),
                topic: z.string().max(100).default(''),
                subscribed: z.boolean(),
              }),
            },
          },
          required: true,
        },
      },
      responses: {
        200: json(z.object({ contacts: z.array(z.string()) }), 'The contact points changed'),
        404: notFound,
        409: {
          description: 'The profile has no contact point for that channel',
          content: { 'application/json': { schema: ErrorSchema } },
        },
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const { channel, topic, subscribed } = c.req.valid('json');
      const live = await liveProfileId(sql, c.req.valid('param').id).catch(rethrow);
      const contacts = (await contactsOf(sql, live))[channel] ?? [];
      if (!contacts.length) throw apiError(409, 'no_contact_point', `the profile has no ${channel} contact point`);
      const actor = c.get('principal').id;
      await sql.begin(async (tx) => {
        for (const contact of contacts) {
          await setSubscription(tx, { contact, channel, topic, subscribed, profileId: live, source: 'api', actor });
        }
      });
      return c.json({ contacts }, 200);
    },
  );
  return app;
}
