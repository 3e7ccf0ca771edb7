import { z } from '@hono/zod-openapi';
import { describe, expect, it } from 'vitest';
import { idCursor, limitParam, nextCursor, page, pageSchema } from './paging.ts';

describe('paging', () => {
  const query = z.object({ before: idCursor('The `next` of the previous page'), limit: limitParam(500, 50) });

  it('parses the cursor and limit of a list query, with the default limit', () => {
    expect(query.parse({})).toEqual({ limit: 50 });
    expect(query.parse({ before: '1041', limit: '20' })).toEqual({ before: '1041', limit: 20 });
  });

  it('refuses a limit out of range and a cursor that is not an id', () => {
    expect(query.safeParse({ limit: '0' }).success).toBe(false);
    expect(query.safeParse({ limit: '501' }).success).toBe(false);
    expect(query.safeParse({ limit: '2.5' }).success).toBe(false);
    expect(query.safeParse({ before: 'abc' }).success).toBe(false);
    expect(query.safeParse({ before: '-1' }).success).toBe(false);
  });

  it('gives next = the last row key when the page is full, null on the last page', () => {
    const rows = [{ id: '30' }, { id: '20' }, { id: '10' }];
    expect(nextCursor(rows, 3, (r) => r.id)).toBe('10');
    expect(nextCursor(rows, 4, (r) => r.id)).toBeNull();
    expect(nextCursor([], 3, (r: { id: string }) => r.id)).toBeNull();
    // Numeric keys (bigint ids read as numbers) go out as strings.
    expect(nextCursor([{ n: 7 }], 1, (r) => r.n)).toBe('7');
  });

  it('builds the answer from the shown rows and the stored rows they came from', () => {
    const rows = [{ id: 9 }, { id: 8 }];
    expect(page(['nine', 'eight'], rows, 2)).toEqual({ data: ['nine', 'eight'], next: '8' });
    expect(page(['nine', 'eight'], rows, 50)).toEqual({ data: ['nine', 'eight'], next: null });
  });

  it('describes the answer as { data, next }', () => {
    const schema = pageSchema(z.object({ id: z.string() }));
    expect(schema.parse({ data: [{ id: '1' }], next: null })).toEqual({ data: [{ id: '1' }], next: null });
    expect(schema.safeParse({ data: [{ id: '1' }] }).success).toBe(false);
  });
});
