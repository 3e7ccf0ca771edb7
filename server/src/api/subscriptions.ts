import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../auth/middleware.ts';
import type { Sql, Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Pii } from '../pii/index.ts';
import { type PiiView, piiView } from '../pii/view.ts';
import { setSubscription } from '../pipeline/deliver/index.ts';
import { identitiesOf, liveProfileId, subscriptionStates } from '../pipeline/identify/index.ts';
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

/** A contact point as subscriptions key it (`key`: blind index for email/phone) and as shown. */
interface Contact {
  key: string;
  shown: string;
}

/** The contact points of a live profile, per channel, as subscriptions are keyed. */
async function contactsOf(tx: Tx, profileId: string, view: PiiView): Promise<Record<string, Contact[]>> {
  const ids = await identitiesOf(tx, profileId);
  // An identity key is `type:value` with the value in its stored form: the subscription key as well.
  const of = (type: string, prefix: string) =>
    ids.filter((i) => i.type === type).map((i) => ({ key: i.key, shown: `${prefix}:${view.identity(type, i.value)}` }));
  const users = of('userId', 'userId');
  const others = users.length ? users : [{ key: `profile:${profileId}`, shown: `profile:${profileId}` }];
  return { email: of('email', 'email'), sms: of('phone', 'phone'), push: others, chat: others, webhook: others };
}

/**
 * `/api/profiles/:id/subscriptions`: subscription state per contact point, channel and topic. Kept by
 * contact point (not profile), so it survives merges and re-identification.
 *
 * @example
 * api.route('/profiles', subscriptionsApi(sql, pii));
 */
export function subscriptionsApi(sql: Sql, pii: Pii) {
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
      const live = await liveProfileId(sql, c.req.valid('param').id);
      const known = Object.values(await contactsOf(sql, live, piiView(pii, c.get('principal')))).flat();
      const shown = new Map(known.map((k) => [k.key, k.shown]));
      const contacts = [...shown.keys()];
      const rows = await subscriptionStates(sql, contacts);
      return c.json(
        {
          data: rows.map((r) => ({
            contact: shown.get(r.contact) ?? r.contact,
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
      const live = await liveProfileId(sql, c.req.valid('param').id);
      const contacts = (await contactsOf(sql, live, piiView(pii, c.get('principal'))))[channel] ?? [];
      if (!contacts.length) throw apiError(409, 'no_contact_point', `the profile has no ${channel} contact point`);
      const actor = c.get('principal').id;
      await sql.begin(async (tx) => {
        for (const { key } of contacts) {
          await setSubscription(tx, {
            contact: key,
            channel,
            topic,
            subscribed,
            profileId: live,
            source: 'api',
            actor,
          });
        }
      });
      return c.json({ contacts: contacts.map((k) => k.shown) }, 200);
    },
  );
  return app;
}
