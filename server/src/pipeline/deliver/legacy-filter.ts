/**
 * The destination filter of before the rule language took over (`{ types, events, where: [{ path,
 * op, value }] }`), converted to an event filter. Accepted on input for one release so that scripts
 * keep working (deprecated: README "Destinations"); migration 0014_event_match_filters.sql converts
 * stored filters by the same table, in SQL — change both together, and remove both with the form.
 *
 * | before                         | now                                                         |
 * | ------------------------------ | ----------------------------------------------------------- |
 * | `types`, `events`              | `type`, `event` (an empty list: no condition, as before)      |
 * | `path: 'properties.x.y'`       | `property: 'x.y'`; any other path: `field: <path>`          |
 * | `exists`                       | `exists`                                                    |
 * | `eq v` / `neq v` (v a scalar)  | `= v` / `{ not: = v }`                                      |
 * | `eq` / `neq` null or no value  | `{ not: exists }` / `exists` (null and absent are one now)  |
 * | `gt` `gte` `lt` `lte` (v text or number) | `>` `>=` `<` `<=`                                 |
 * | `contains v` (v a scalar)      | `contains` its text (`""`: `exists`)                        |
 * | `in [..]`                      | `in` its scalars                                            |
 * | `neq` an array or object       | dropped (it held for nearly every event)                    |
 * | anything else                  | never holds (`exists` and `not exists`), as it never did     |
 *
 * Comparisons now follow the rule language: `=` ignores case and reads "42" as 42, `!=` is
 * written `{ not: ... }` when a missing value must pass, as `neq` let it.
 */

type Json = unknown;
type Legacy = { path?: unknown; op?: unknown; value?: Json };

const ORDER = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
const isScalar = (v: Json): v is string | number | boolean =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

function convertCondition(c: Legacy): Json[] {
  const path = String(c.path);
  const target =
    path.startsWith('properties.') && path.length > 'properties.'.length
      ? { property: path.slice('properties.'.length) }
      : { field: path };
  const exists = { ...target, cmp: 'exists' };
  const never = [exists, { not: exists }];
  const v = c.value;
  switch (c.op) {
    case 'exists':
      return [exists];
    case 'eq':
      return isScalar(v)
        ? [{ ...target, cmp: '=', value: v }]
        : v === undefined || v === null
          ? [{ not: exists }]
          : never;
    case 'neq':
      if (isScalar(v)) return [{ not: { ...target, cmp: '=', value: v } }];
      return v === undefined || v === null ? [exists] : [];
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return typeof v === 'string' || typeof v === 'number' ? [{ ...target, cmp: ORDER[c.op], value: v }] : never;
    case 'contains':
      if (v === '') return [exists];
      return isScalar(v) ? [{ ...target, cmp: 'contains', value: String(v) }] : never;
    case 'in': {
      const scalars = Array.isArray(v) ? v.filter(isScalar) : [];
      return scalars.length ? [{ ...target, cmp: 'in', value: scalars }] : never;
    }
    default:
      // Not a legacy operator: left as it is, for the schema to name what is wrong.
      return [c];
  }
}

/**
 * The filter with its legacy parts converted (anything else as given, for the schema to judge).
 *
 * @example
 * fromLegacyFilter({ events: ['Order Completed'], where: [{ path: 'properties.total', op: 'gte', value: 100 }] });
 * // { event: ['Order Completed'], where: [{ property: 'total', cmp: '>=', value: 100 }] }
 */
export function fromLegacyFilter(input: Json): Json {
  if (!isObject(input)) return input;
  const { types, events, where, ...rest } = input;
  const out: Record<string, Json> = { ...rest };
  // A list given in both forms is left for the schema to refuse (which one was meant is unknown).
  for (const [legacy, value, key] of [
    ['types', types, 'type'],
    ['events', events, 'event'],
  ] as const) {
    if (value === undefined) continue;
    if (key in rest) out[legacy] = value;
    else if (!Array.isArray(value) || value.length) out[key] = value;
  }
  if (Array.isArray(where)) {
    const converted = where.flatMap((c) => (isObject(c) && 'path' in c && 'op' in c ? convertCondition(c) : [c]));
    if (converted.length) out.where = converted;
  } else if (where !== undefined) out.where = where;
  return out;
}
