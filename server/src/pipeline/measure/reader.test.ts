import { ruleSql as sql } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import { createTestDatabase, type TestDatabase } from '../../testing/db.ts';
import { describeOnDatabases } from '../../testing/flows.ts';
import { startTestCairn } from '../../testing/server.ts';
import { type AnalyticsReader, createAnalyticsReader } from './reader.ts';

describeOnDatabases('the analytics reader', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let reader: AnalyticsReader;
  beforeAll(async () => {
    db = await createTestDatabase(`reader.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    reader = createAnalyticsReader({
      sql: cairn.sql,
      dbKind: mode,
      databaseUrl: db.env.DATABASE_URL,
      replicaUrl: undefined,
      timeoutMs: 300,
    });
  });
  afterAll(async () => {
    await reader?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('answers a statement with parameters', async () => {
    const rows = await reader.rows<{ n: number; s: string }>(sql`SELECT ${41}::int + 1 AS n, ${'x'}::text AS s`);
    expect(rows).toEqual([{ n: 42, s: 'x' }]);
    const meta = await reader.meta();
    expect(meta).toEqual({ source: 'primary', lagSeconds: 0, dataAsOf: expect.any(String), fallback: null });
    expect(Date.parse(meta.dataAsOf)).not.toBeNaN();
  });

  it('refuses to write', async () => {
    await expect(reader.rows(sql`INSERT INTO settings (key, value) VALUES ('analytics-wrote', '1')`)).rejects.toThrow(
      /read-only transaction/,
    );
    expect(await cairn.sql`SELECT 1 FROM settings WHERE key = 'analytics-wrote'`).toHaveLength(0);
  });

  // PGlite runs in this thread's WASM: statement_timeout never fires there (measured: pg_sleep(5) ran its 5 s), so
  // the embedded database has no timeout — a documented limit of the embedded start (docs/analytics.md).
  it.skipIf(mode === 'embedded')(
    'cancels a statement past the timeout with a 422 that says what to narrow',
    async () => {
      const err = await reader.rows(sql`SELECT pg_sleep(5)`).catch((e) => e);
      expect(err.status).toBe(422);
      expect(err.cause.code).toBe('query_too_broad');
      expect(err.message).toMatch(/narrow the date range/);
      // The connection is usable afterwards (the timeout ended the statement, not the session).
      expect(await reader.rows(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
    },
  );

  it.skipIf(mode === 'embedded')('cancels the statement in Postgres when the client goes away', async () => {
    const long = createAnalyticsReader({
      sql: cairn.sql,
      dbKind: mode,
      databaseUrl: db.env.DATABASE_URL,
      replicaUrl: undefined,
      timeoutMs: 60_000,
    });
    try {
      const abort = new AbortController();
      const started = Date.now();
      const pending = long.rows(sql`SELECT pg_sleep(30)`, abort.signal).catch((e) => e);
      setTimeout(() => abort.abort(), 200);
      const err = await pending;
      expect(err.cause.code).toBe('client_closed');
      // Cancelled in Postgres: nothing of the statement is left running.
      expect(Date.now() - started).toBeLessThan(20_000);
      const running = await cairn.sql`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'`;
      expect(running[0]!.n).toBe(0);
    } finally {
      await long.close();
    }
  });

  it('streams rows in batches; leaving early closes the cursor and keeps the connection', async () => {
    const batches: number[][] = [];
    for await (const rows of reader.stream<{ g: number }>(sql`SELECT g FROM generate_series(1, 5) g`, undefined, 2))
      batches.push(rows.map((r) => r.g));
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
    for await (const rows of reader.stream<{ g: number }>(
      sql`SELECT g FROM generate_series(1, 100000) g`,
      undefined,
      10,
    )) {
      expect(rows).toHaveLength(10);
      break;
    }
    expect(await reader.rows(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
  });

  it.skipIf(mode === 'embedded')('streams under the same timeout: past it, a 422 mid-read', async () => {
    const seen: number[] = [];
    const err = await (async () => {
      const slow = sql`SELECT g, pg_sleep(CASE WHEN g = 3 THEN 5 ELSE 0 END) FROM generate_series(1, 5) g`;
      for await (const rows of reader.stream<{ g: number }>(slow, undefined, 2)) seen.push(...rows.map((r) => r.g));
    })().catch((e) => e);
    expect(err.status).toBe(422);
    expect(err.cause.code).toBe('query_too_broad');
    expect(seen).toEqual([1, 2]);
    expect(await reader.rows(sql`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
  });

  it.skipIf(mode === 'embedded')('cancels a stream in Postgres when the client goes away', async () => {
    const long = createAnalyticsReader({
      sql: cairn.sql,
      dbKind: mode,
      databaseUrl: db.env.DATABASE_URL,
      replicaUrl: undefined,
      timeoutMs: 60_000,
    });
    try {
      const abort = new AbortController();
      const err = await (async () => {
        const slow = sql`SELECT g, pg_sleep(CASE WHEN g = 2 THEN 30 ELSE 0 END) FROM generate_series(1, 3) g`;
        for await (const _rows of long.stream(slow, abort.signal, 1)) setTimeout(() => abort.abort(), 200);
      })().catch((e) => e);
      expect(err.cause.code).toBe('client_closed');
      const running = await cairn.sql`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT g, pg_sleep(CASE WHEN g = 2 THEN 30%' AND state = 'active'`;
      expect(running[0]!.n).toBe(0);
    } finally {
      await long.close();
    }
  });
});
