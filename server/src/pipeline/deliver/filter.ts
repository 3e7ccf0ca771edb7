import { type EventFilter, eventFilterSchema, matchEvent } from '@cairn/core';
import { z } from '@hono/zod-openapi';
import { fromLegacyFilter } from './legacy-filter.ts';

/**
 * Which events a destination gets, on top of the event types its plugin accepts: an event filter of
 * the rule language (`EventFilter`: `event`, `type`, `where`), the same that flow triggers use.
 * The form of before (`{ types, events, where: [{ path, op }] }`) is still accepted on input for one
 * release and converted (legacy-filter.ts; migration 0014 converted the stored ones).
 */
export const FilterSchema = z
  .preprocess(fromLegacyFilter, eventFilterSchema)
  .default({})
  .openapi('EventFilter', {
    description:
      'Which events a destination gets: an event filter of the rule language (`event`: a name or any of several; ' +
      '`type`: an event type or any of several; `where`: conditions on `property` (inside properties) or `field` ' +
      '(from the event root), or `{ not: condition }`, all of which must hold). Deprecated, accepted on input ' +
      'until the next release and converted: `{ types, events, where: [{ path, op, value }] }`.',
    example: { event: ['Order Completed'], where: [{ property: 'total', cmp: '>=', value: 100 }] },
  });

export type Filter = EventFilter;

/**
 * Whether an event (its stored payload, PII opened) passes a destination's filter, decided by the
 * rule language's in-memory evaluator. `nowMs` is what relative dates (`within_last`) compare against.
 *
 * @example
 * matchesFilter({ type: 'track', event: 'Order Completed', properties: { total: 120 } },
 *   { event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 100 }] }); // true
 */
export function matchesFilter(event: Record<string, unknown>, filter: Filter, nowMs = Date.now()): boolean {
  return matchEvent(filter, event, nowMs);
}
