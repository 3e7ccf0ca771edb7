import { z } from '@hono/zod-openapi';

// The admin API's lists are paged by keyset, newest first: a page holds up to `limit` rows, and its
// `next` is the key of its last row when the page came back full (there may be more), else null. The
// client passes that `next` back as the cursor parameter (`before` for ids, `cursor` for members).

/**
 * The `limit` query parameter of a list: an integer in 1..`max`, `fallback` when absent.
 *
 * @example
 * query: z.object({ before: idCursor(), limit: limitParam(500, 50) })
 */
export function limitParam(max: number, fallback: number) {
  return z.coerce.number().int().min(1).max(max).default(fallback);
}

/**
 * The cursor of a list paged by descending bigint id (events, refusals, audit entries, deliveries):
 * the `next` of the previous page; the page holds the rows whose id is below it.
 *
 * @example
 * query: z.object({ before: idCursor('The `next` of the previous page'), limit: limitParam(500, 50) })
 */
export function idCursor(description?: string) {
  const cursor = z.string().regex(/^\d+$/).optional();
  return description === undefined ? cursor : cursor.openapi({ description });
}

/**
 * The answer of a list endpoint: `{ data: item[], next: string | null }`.
 *
 * @example
 * 200: json(pageSchema(StoredEventSchema), 'A page of events')
 */
export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), next: z.string().nullable() });
}

/**
 * The `next` of a page: the key of its last row when it came back full, else null (the last page).
 *
 * @example
 * nextCursor(rows, q.limit, (r) => r.id); // '1041' or null
 */
export function nextCursor<R>(rows: readonly R[], limit: number, key: (row: R) => string | number): string | null {
  const last = rows.at(-1);
  return rows.length === limit && last !== undefined ? String(key(last)) : null;
}

/**
 * A page of a list keyed by id: the answer rows (as shown to the client) with the cursor of the next
 * page, the id of the last stored row they came from.
 *
 * @example
 * return c.json(page(rows.map(show), rows, q.limit), 200);
 */
export function page<T>(
  data: T[],
  rows: readonly { id: string | number }[],
  limit: number,
): { data: T[]; next: string | null } {
  return { data, next: nextCursor(rows, limit, (r) => r.id) };
}
