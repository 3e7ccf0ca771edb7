import { profileSlices, ruleSql as sql } from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnalyticsReader, createAnalyticsReader } from '../../pipeline/measure/reader.ts';
import type { Cairn } from '../../server.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../../testing/db.ts';
import { startTestCairn } from '../../testing/server.ts';
import { balancedSlices, readSliced } from './slices.ts';

describe('profile slices', () => {
  it('partition every profile id: each id falls in exactly one slice', () => {
    const ids = [
      '00000000-0000-0000-0000-000000000000',
      '7fffffff-ffff-ffff-ffff-ffffffffffff',
      '80000000-0000-0000-0000-000000000000',
      'ffffffff-ffff-ffff-ffff-ffffffffffff',
      ...Array.from({ length: 500 }, () => crypto.randomUUID()),
    ];
    for (const n of [1, 2, 3, 7, 256]) {
      const slices = profileSlices(n);
      expect(slices).toHaveLength(n);
      // uuid text (lowercase, fixed width) sorts as Postgres sorts uuids.
      const holds = (s: (typeof slices)[number], id: string) =>
        (s.from === undefined || id >= s.from) && (s.to === undefined || id < s.to);
      for (const id of ids)
        expect(
          slices.filter((s) => holds(s, id)),
          `${n}: ${id}`,
        ).toHaveLength(1);
    }
    expect(profileSlices(1)).toEqual([{}]);
    expect(profileSlices(0)).toEqual([{}]);
  });
});

// Slices of one answer share its cancel; PGlite runs in this thread and can neither time out nor cancel
// (reader.ts), so these run on Postgres only.
describe.skipIf(POSTGRES_SKIP_REASON !== null)('sliced reads on Postgres', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let reader: AnalyticsReader;
  let short: AnalyticsReader;
  beforeAll(async () => {
    db = await createTestDatabase('slices.test.ts', 'postgres');
    cairn = await startTestCairn(db.env);
    const open = (timeoutMs: number) =>
      createAnalyticsReader({
        sql: cairn.sql,
        dbKind: 'postgres',
        databaseUrl: db.env.DATABASE_URL,
        replicaUrl: undefined,
        timeoutMs,
      });
    reader = open(60_000);
    short = open(300);
  });
  afterAll(async () => {
    await reader?.close();
    await short?.close();
    await cairn?.close();
    await db?.drop();
  });

  // Statements of one test carry a tag, so pg_stat_activity tells which are still running.
  const running = async (tag: string) => {
    const [row] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE ${`%${tag}%`} AND state = 'active'
        AND pid <> pg_backend_pid()`;
    return row!.n;
  };
  const until = async (tag: string, n: number) => {
    for (let i = 0; i < 200 && (await running(tag)) !== n; i++) await new Promise((r) => setTimeout(r, 50));
    return running(tag);
  };

  it('puts the rows of every slice together', async () => {
    const rows = await readSliced(profileSlices(3), (s, signal) =>
      reader.rows<{ from: string | null }>(sql`SELECT ${s.from ?? null}::text AS from`, signal),
    );
    expect(rows.map((r) => r.from)).toEqual([
      null,
      '55000000-0000-0000-0000-000000000000',
      'aa000000-0000-0000-0000-000000000000',
    ]);
  });

  it('cuts even slices of time-ordered (v7) ids, which a first-byte cut puts all in one slice', async () => {
    // 3,000 profiles as a bulk import creates them: ids whose first 48 bits are the milliseconds of one minute.
    await cairn.sql`
      INSERT INTO profiles (id)
      SELECT (lpad(to_hex(1733500000000 + g * 20), 12, '0') || '7' || substr(md5(g::text), 1, 19))::uuid
      FROM generate_series(1, 3000) g`;
    await cairn.sql`ANALYZE profiles`;
    const ids = (await cairn.sql<{ id: string }[]>`SELECT id::text FROM profiles`).map((r) => r.id);
    const share = (slices: Awaited<ReturnType<typeof balancedSlices>>) =>
      slices.map(
        (s) => ids.filter((id) => (s.from === undefined || id >= s.from) && (s.to === undefined || id < s.to)).length,
      );
    expect(Math.max(...share(profileSlices(3)))).toBe(ids.length);
    const even = await balancedSlices(reader, 3);
    expect(even).toHaveLength(3);
    const counts = share(even);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(ids.length);
    for (const n of counts) expect(n).toBeGreaterThan(ids.length / 5);
    expect(await balancedSlices(reader, 1)).toEqual([{}]);
  });

  it('answers the first failure and cancels the slices still running', async () => {
    // The first slice fails once the second is running in Postgres.
    const err = await readSliced(profileSlices(2), async (s, signal) => {
      if (s.from !== undefined) return reader.rows(sql`SELECT 'slices-fail', pg_sleep(30)`, signal);
      expect(await until('slices-fail', 1)).toBe(1);
      return reader.rows(sql`SELECT 1 / g FROM generate_series(0, 0) g`, signal);
    }).catch((e) => e);
    expect(err.code).toBe('22012'); // division by zero: the failing slice's own error
    expect(await until('slices-fail', 0)).toBe(0);
  });

  it('answers 422 when a slice runs past the statement timeout, and leaves nothing running', async () => {
    const err = await readSliced(profileSlices(2), (s, signal) =>
      short.rows(sql`SELECT 'slices-timeout', pg_sleep(${s.from === undefined ? 5 : 30})`, signal),
    ).catch((e) => e);
    expect(err.status).toBe(422);
    expect(err.cause.code).toBe('query_too_broad');
    expect(await until('slices-timeout', 0)).toBe(0);
  });

  it('cancels every slice in Postgres when the client goes away', async () => {
    const abort = new AbortController();
    const pending = readSliced(
      profileSlices(2),
      (_s, signal) => reader.rows(sql`SELECT 'slices-abort', pg_sleep(30)`, signal),
      abort.signal,
    ).catch((e) => e);
    expect(await until('slices-abort', 2)).toBe(2);
    abort.abort();
    const err = await pending;
    expect(err.cause.code).toBe('client_closed');
    expect(await until('slices-abort', 0)).toBe(0);
    // The pool's connections are usable afterwards.
    expect(await reader.rows(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
  });
});
