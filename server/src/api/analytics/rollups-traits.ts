import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AuthVariables, requirePermission } from '../../auth/middleware.ts';
import type { Sql } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';
import type { Pii } from '../../pii/index.ts';
import {
  dropTraitRollup,
  keepTraitRollup,
  type TraitRollupEntry,
  traitRollups,
} from '../../pipeline/measure/rollup-traits.ts';
import { AUTH_ERRORS, ErrorSchema, json } from '../schemas.ts';
import { filledFields, filledOf, RollupZoneSchema as zone } from './rollups-common.ts';
import { dotPath } from './trends.ts';

// Trait breakdowns kept by the pipeline (migration 0044): a trend of a named event's count, sum or mean
// broken down by a person's current trait, by day, week or month in the entry's zone, reads per-day sums
// instead of scanning the events and joining traits. Each entry makes every attached event of its event
// recount a (person, day) cell, so adding one is an admin write (`analytics:write`, audited) and the
// number of entries is bounded. The fill runs inside the request, in one transaction (as the other rollups').

/** At most this many kept breakdowns: each costs the measure job a recount per event of its event. */
export const TRAIT_ROLLUP_LIMIT = 50;

const EntrySchema = z
  .strictObject({
    trait: z.string().min(1).max(200).openapi({ description: 'The trait a tile breaks down by' }),
    event: z
      .string()
      .min(1)
      .max(255)
      .regex(/\S/, 'an event name, not empty or blank')
      .openapi({ description: 'The event’s name (track events; a page’s name for page events)' }),
    property: dotPath.optional().openapi({
      description: 'A dot path under the event’s properties whose sum and mean are kept (counts always are)',
    }),
    zone,
  })
  .openapi('TraitRollupEntry');

const ViewSchema = z
  .object({
    trait: z.string(),
    event: z.string(),
    property: z.string().nullable().openapi({ description: 'null: counts only' }),
    zone: z.string(),
    createdAt: z.string().openapi({ description: 'When it was filled from the stored events' }),
  })
  .openapi('TraitRollup');
const Added = ViewSchema.extend(filledFields('Person-day cells filled from the attached events')).openapi(
  'TraitRollupAdded',
);
const DeleteQuery = z.object({
  trait: z.string().min(1).max(200),
  event: z.string().min(1).max(255),
  property: dotPath.optional(),
  zone,
});

type View = z.infer<typeof ViewSchema>;
const entryOf = (e: { trait: string; event: string; property?: string; zone: string }): TraitRollupEntry => ({
  trait: e.trait,
  event: e.event,
  property: e.property ?? '',
  zone: e.zone,
});

/**
 * `/api/analytics/rollups/traits`: list (GET), keep and fill from the stored events (PUT), stop keeping and
 * remove the rows (DELETE) trait breakdowns of trend tiles.
 *
 * @example
 * analytics.route('/', rollupTraitsApi({ sql, pii }));
 */
export function rollupTraitsApi(deps: { sql: Sql; pii: Pii }) {
  const { sql } = deps;
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  const path = '/rollups/traits';
  const list = async (): Promise<View[]> =>
    (await traitRollups(sql)).map((r) => ({
      trait: r.trait,
      event: r.event,
      property: r.property || null,
      zone: r.zone,
      createdAt: r.createdAt.toISOString(),
    }));
  const same = (v: View, e: TraitRollupEntry) =>
    v.trait === e.trait && v.event === e.event && (v.property ?? '') === e.property && v.zone === e.zone;

  app.openapi(
    createRoute({
      method: 'get',
      path,
      tags: ['Analytics'],
      summary: 'Trait breakdowns kept for trend tiles',
      middleware: [requirePermission('analytics:read')] as const,
      responses: {
        200: json(z.object({ data: z.array(ViewSchema) }), 'By trait, event, property, zone'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => c.json({ data: await list() } as never, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path,
      tags: ['Analytics'],
      summary: 'Keep a trait breakdown of an event (and a property) in a zone, filled from the stored events now',
      description:
        'Registers the breakdown and fills it from every attached event of the event and the current traits, in one ' +
        'transaction (the answer comes when it is done). From then on the pipeline keeps it as events arrive, traits ' +
        'change and profiles merge; trends of the count, or of the property’s sum or mean, of that event broken down by ' +
        'that trait, by day, week or month in that zone, read it (`meta.sources`: traits).',
      middleware: [requirePermission('analytics:write')] as const,
      request: { body: { content: { 'application/json': { schema: EntrySchema } }, required: true } },
      responses: {
        200: json(Added, 'Kept and filled (or kept already)'),
        400: json(ErrorSchema, 'Invalid body (a sensitive trait or property, not a zone)'),
        422: json(ErrorSchema, `too_many_breakdowns: ${TRAIT_ROLLUP_LIMIT} are kept`),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const entry = entryOf(c.req.valid('json'));
      if (deps.pii.isSensitive(entry.trait))
        throw apiError(
          400,
          'invalid_request',
          `trait: ${entry.trait} is sensitive (stored sealed): it cannot be a breakdown`,
        );
      const top = entry.property.split('.')[0]!;
      if (entry.property && deps.pii.isSensitive(top))
        throw apiError(400, 'invalid_request', `property: ${top} is sensitive (stored sealed): it cannot be summed`);
      const kept = await list();
      if (kept.length >= TRAIT_ROLLUP_LIMIT && !kept.some((v) => same(v, entry)))
        throw apiError(
          422,
          'too_many_breakdowns',
          `${kept.length} trait breakdowns are kept, the most there can be (each is recounted on every event of its event); remove one first`,
        );
      const r = await keepTraitRollup(sql, entry);
      const view = (await list()).find((v) => same(v, entry))!;
      return c.json({ ...view, ...filledOf(r) } as never, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path,
      tags: ['Analytics'],
      summary: 'Stop keeping a trait breakdown: its rows are removed and its tiles scan events again',
      middleware: [requirePermission('analytics:write')] as const,
      request: { query: DeleteQuery },
      responses: {
        204: { description: 'Removed' },
        400: json(ErrorSchema, 'Invalid query'),
        404: json(ErrorSchema, 'Not kept'),
        ...AUTH_ERRORS,
      },
    }),
    async (c) => {
      const entry = entryOf(c.req.valid('query'));
      if (!(await dropTraitRollup(sql, entry)))
        throw apiError(
          404,
          'not_found',
          `${entry.trait} by ${entry.event}${entry.property ? `.${entry.property}` : ''} in ${entry.zone} is not kept`,
        );
      return c.body(null, 204);
    },
  );
  return app;
}
