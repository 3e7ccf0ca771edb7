import { z } from 'zod';
import { EVENT_TYPES, isEventType } from '../limits.ts';
import type { EventCondition, EventFilter } from './ast.ts';
import { conditionPath } from './evaluate.ts';
import { comparisonSql, describeComparison } from './ops/compare.ts';
import { comparisonIssues, pathSchema, RULE_LIMITS, withComparison } from './schema.ts';
import { type Fragment, ident, join, sql } from './sql.ts';

// A refined string, not an enum, so that a wrong type inside a list is reported at its index (an
// enum fails the single-value branch of the union too, and the union reports neither); the JSON
// Schema lists the types all the same.
const eventType = z
  .string()
  .refine(isEventType, {
    error: (issue) =>
      `"${String(issue.input)}" is not an event type (one of ${EVENT_TYPES.join(', ')})` +
      // The events Cairn records itself (audience.entered, ...) are track events by that name.
      (String(issue.input).includes('.') ? `; "${String(issue.input)}" is a track event name: use event` : ''),
  })
  .meta({ enum: [...EVENT_TYPES] });
const eventName = z.string().min(1).max(255);
const oneOrMany = <T extends z.ZodType>(one: T) => z.union([one, z.array(one).min(1).max(RULE_LIMITS.inValues)]);

const condition = z.union([
  ...withComparison({ property: pathSchema }),
  ...withComparison({ field: pathSchema.describe("a dot path from the event's root: context.locale, userId") }),
]);

/**
 * The zod schema of an event filter (`EventFilter`): structure, then what a schema cannot say about
 * each condition (dates that exist, the regex subset, bounds in order), as `validateRule` checks leaves.
 *
 * @example
 * eventFilterSchema.parse({ event: ['Order Completed'], where: [{ property: 'total', cmp: '>=', value: 100 }] });
 */
export const eventFilterSchema = z
  .strictObject({
    event: oneOrMany(eventName).optional(),
    type: oneOrMany(eventType).optional(),
    where: z
      .array(z.union([condition, z.strictObject({ not: condition })]))
      .max(20)
      .optional(),
  })
  .superRefine((filter, ctx) => {
    for (const [i, c] of (filter.where ?? []).entries()) {
      const at = 'not' in c ? ['where', i, 'not'] : ['where', i];
      for (const issue of comparisonIssues('not' in c ? c.not : c, at, false))
        ctx.addIssue({ code: 'custom', path: issue.path.split('.').map(asKey), message: issue.message });
    }
  }) as unknown as z.ZodType<EventFilter>;

const asKey = (k: string) => (/^\d+$/.test(k) ? Number(k) : k);

/**
 * An event filter as a JSON Schema (draft 2020-12), generated from `eventFilterSchema`, for the
 * OpenAPI description of whatever holds one (a destination's `filter`).
 *
 * @example
 * components.schemas.EventFilter = eventFilterJsonSchema();
 */
export function eventFilterJsonSchema(): { [key: string]: unknown } {
  const { $schema: _dialect, ...schema } = z.toJSONSchema(eventFilterSchema, {
    target: 'draft-2020-12',
    io: 'input',
  }) as { [key: string]: unknown };
  return schema;
}

const listOf = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

function conditionSql(c: EventCondition, alias: string, nowMs: number): Fragment {
  const plain = 'not' in c ? c.not : c;
  const v = sql`(${ident(alias)}.payload #> ${conditionPath(plain)}::text[])`;
  const holds = sql`coalesce(${comparisonSql(v, plain, nowMs)}, false)`;
  return 'not' in c ? sql`NOT ${holds}` : holds;
}

/**
 * The SQL condition (over an events row: its `type`, `event` and `payload` columns) that an event
 * matches the filter, for the instant `now`: the compiler `matchEvent` is held to (the same value
 * forms and comparisons as every rule).
 *
 * @example
 * const where = compileEventFilter({ type: 'track', event: 'Signed Up' }, { now: new Date() });
 * const { text, values } = sql`SELECT id FROM events e WHERE ${where}`.render();
 */
export function compileEventFilter(filter: EventFilter, options: { now: Date; alias?: string }): Fragment {
  const alias = options.alias ?? 'e';
  const parts: Fragment[] = [];
  if (filter.type !== undefined) parts.push(sql`${ident(alias)}.type = ANY(${listOf(filter.type)}::text[])`);
  if (filter.event !== undefined) parts.push(sql`${ident(alias)}.event = ANY(${listOf(filter.event)}::text[])`);
  for (const c of filter.where ?? []) parts.push(conditionSql(c, alias, options.now.getTime()));
  return parts.length ? sql`(${join(parts, sql` AND `)})` : sql`true`;
}

/**
 * An event filter in words.
 *
 * @example
 * describeEventFilter({ event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 100 }] });
 * // '"Order Completed" where total is at least 100'
 */
export function describeEventFilter(filter: EventFilter): string {
  const words = (c: Exclude<EventCondition, { not: unknown }>) =>
    `${'property' in c ? c.property : c.field} ${describeComparison(c)}`;
  const names =
    filter.event === undefined
      ? 'any event'
      : listOf(filter.event)
          .map((n) => JSON.stringify(n))
          .join(' or ');
  const types = filter.type === undefined ? '' : ` of type ${listOf(filter.type).join(' or ')}`;
  const where = filter.where?.length
    ? ` where ${filter.where.map((c) => ('not' in c ? `not (${words(c.not)})` : words(c))).join(' and ')}`
    : '';
  return `${names}${types}${where}`;
}
