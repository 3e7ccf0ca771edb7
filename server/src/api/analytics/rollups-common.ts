import { z } from '@hono/zod-openapi';
import { IANAZone } from 'luxon';

// What the routes of the per-day rollups (rollups-people.ts, rollups-traits.ts) take and answer alike:
// the zone an entry cuts days in, and what a keep answers about its fill.

/**
 * The IANA time zone a kept per-day rollup cuts its days in.
 *
 * @example
 * const EntrySchema = z.strictObject({ zone: RollupZoneSchema });
 */
export const RollupZoneSchema = z
  .string()
  .min(1)
  .max(100)
  .refine((z) => IANAZone.isValidZone(z), 'an IANA time zone (e.g. Europe/Berlin)')
  .openapi({ description: 'An IANA time zone: days, ISO weeks (Mondays) and months are cut there' });

/**
 * The fields a keep answers besides the entry: whether it was new, the rows it filled (`rows` says which)
 * and the time taken.
 *
 * @example
 * const Added = RegistrySchema.extend(filledFields('Presence rows filled from the attached events'));
 */
export const filledFields = (rows: string) => ({
  added: z.boolean().openapi({ description: 'false: it was kept already (nothing was filled)' }),
  rows: z.number().int().openapi({ description: rows }),
  tookMs: z.number().int(),
});

/**
 * The answer's fill fields from what a keep returned.
 *
 * @example
 * return c.json({ ...view, ...filledOf(await keepTraitRollup(sql, entry)) }, 200);
 */
export const filledOf = (r: { added: boolean; rows: number; ms: number }) => ({
  added: r.added,
  rows: r.rows,
  tookMs: r.ms,
});
