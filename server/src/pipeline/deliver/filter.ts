import { EVENT_TYPES, isEventType } from '@cairn/core';
import { z } from 'zod';

const OPS = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'exists', 'contains', 'in'] as const;

/** Which events a destination gets, on top of the event types its plugin accepts. */
export const FilterSchema = z
  .strictObject({
    // Event types only: the events Cairn records itself (audience.entered, tag.added, ...) are `track`
    // events with that name, so they go under `events`. A type nothing can have was accepted before and
    // silently matched nothing.
    types: z
      .array(
        z.string().refine(isEventType, {
          error: (issue) =>
            `"${String(issue.input)}" is not an event type (one of ${EVENT_TYPES.join(', ')})` +
            (String(issue.input).includes('.') ? `; "${String(issue.input)}" is a track event name: use events` : ''),
        }),
      )
      .optional(),
    events: z.array(z.string()).optional(),
    where: z
      .array(
        z.strictObject({
          path: z.string().regex(/^[A-Za-z0-9_$.-]+$/, 'a dotted path such as properties.total'),
          op: z.enum(OPS),
          value: z.unknown().optional(),
        }),
      )
      .max(20)
      .optional(),
  })
  .default({});

export type Filter = z.infer<typeof FilterSchema>;

function at(payload: Record<string, unknown>, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function compare(a: unknown, b: unknown): number | null {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  return null;
}

/**
 * Whether an event passes a destination's filter: its type and name are listed (when lists are
 * given) and every `where` condition holds (paths into the stored event, e.g. `properties.total`).
 *
 * @example
 * matchesFilter({ type: 'track', event: 'Order Completed', properties: { total: 120 } },
 *   { events: ['Order Completed'], where: [{ path: 'properties.total', op: 'gte', value: 100 }] }); // true
 */
export function matchesFilter(event: Record<string, unknown>, filter: Filter): boolean {
  if (filter.types?.length && !(isEventType(event.type) && filter.types.includes(event.type))) return false;
  if (filter.events?.length) {
    const name = event.type === 'track' ? event.event : event.name;
    if (typeof name !== 'string' || !filter.events.includes(name)) return false;
  }
  for (const c of filter.where ?? []) {
    const v = at(event, c.path);
    const cmp = compare(v, c.value);
    const ok =
      c.op === 'exists'
        ? v !== undefined && v !== null
        : c.op === 'eq'
          ? JSON.stringify(v) === JSON.stringify(c.value)
          : c.op === 'neq'
            ? JSON.stringify(v) !== JSON.stringify(c.value)
            : c.op === 'contains'
              ? (typeof v === 'string' && typeof c.value === 'string' && v.includes(c.value)) ||
                (Array.isArray(v) && v.some((x) => JSON.stringify(x) === JSON.stringify(c.value)))
              : c.op === 'in'
                ? Array.isArray(c.value) && c.value.some((x) => JSON.stringify(x) === JSON.stringify(v))
                : cmp !== null &&
                  ((c.op === 'gt' && cmp > 0) ||
                    (c.op === 'gte' && cmp >= 0) ||
                    (c.op === 'lt' && cmp < 0) ||
                    (c.op === 'lte' && cmp <= 0));
    if (!ok) return false;
  }
  return true;
}
