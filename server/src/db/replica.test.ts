import { ruleSql } from '@cairn/core';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.ts';
import { markReplayed } from '../pipeline/ingest/queries.ts';
import { type AnalyticsReader, createAnalyticsReader } from '../pipeline/measure/reader.ts';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { sendEvents, settle } from '../testing/events.ts';
import { adminApi, until } from '../testing/http.ts';
import { REPLICA_SKIP_REASON, type StreamingReplica, startStreamingReplica } from '../testing/replica.ts';
import { startTestCairn, TEST_ADMIN_KEY } from '../testing/server.ts';

it('refuses an analytics replica on the embedded database, saying why', () => {
  expect(() => loadConfig({ CAIRN_ANALYTICS_DATABASE_URL: 'postgres://postgres@127.0.0.1:5433/x' })).toThrow(
    ConfigError,
  );
  expect(() => loadConfig({ CAIRN_ANALYTICS_DATABASE_URL: 'postgres://postgres@127.0.0.1:5433/x' })).toThrow(
    /CAIRN_ANALYTICS_DATABASE_URL: needs DATABASE_URL \(the embedded database, PGlite, has no replica\)/,
  );
  const config = loadConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x',
    CAIRN_ANALYTICS_DATABASE_URL: 'postgres://postgres@127.0.0.1:5433/x',
    CAIRN_ANALYTICS_MAX_LAG_S: '5',
  });
  expect(config.analytics).toMatchObject({ databaseUrl: 'postgres://postgres@127.0.0.1:5433/x', maxLagSeconds: 5 });
});

/**
 * How long the replica may take to replay up to this test's writes. It replays the whole shared cluster's
 * WAL in one process: with other tests bulk-loading on the same 2 cores it ran minutes behind.
 */
const CATCH_UP = { tries: 1500, intervalMs: 200 };

describe('analytics on a streaming replica', () => {
  if (REPLICA_SKIP_REASON !== null) {
    it.skip(`streaming replica: ${REPLICA_SKIP_REASON}`, () => {});
    return;
  }
  let replica: StreamingReplica;
  let db: TestDatabase;
  let dbName: string;
  /** Reads the replica while it is at most an hour behind. */
  let tolerant: Cairn;
  /** Reads the primary as soon as the replica is more than a second behind. */
  let strict: Cairn;
  let reader: AnalyticsReader;
  let onReplica: postgres.Sql;
  let sent = 0;

  const send = async (n: number) => {
    const events = Array.from({ length: n }, (_, i) => ({
      type: 'track',
      event: 'Replica Check',
      userId: `replica-${sent + i}`,
    }));
    await sendEvents(tolerant, tolerant.demoSource!.writeKey, events);
    sent += n;
    await settle(tolerant.sql, { queues: ['measure'], timeoutMs: 60_000 });
  };
  // The trend of 'Replica Check' events from an hour ago to an hour ahead: its total and where it was read.
  const trend = async (cairn: Cairn) => {
    const from = new Date(Date.now() - 3600_000);
    from.setUTCMinutes(0, 0, 0);
    const to = new Date(from.getTime() + 3 * 3600_000);
    const res = await adminApi(cairn.url)('/analytics/trends', {
      method: 'POST',
      body: JSON.stringify({
        range: { from: from.toISOString(), to: to.toISOString(), timezone: 'UTC' },
        interval: 'hour',
        series: [{ events: { event: 'Replica Check' }, measure: 'count' }],
      }),
    });
    expect(res.status, res.text).toBe(200);
    return { total: res.body.series[0].total as number, meta: res.body.meta };
  };
  // A console page with its headers (where it was read).
  const page = async (cairn: Cairn, path: string) => {
    const res = await fetch(`${cairn.url}/api${path}`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
    expect(res.status).toBe(200);
    // biome-ignore lint/suspicious/noExplicitAny: the answer is checked by the assertions
    return { headers: res.headers, body: (await res.json()) as any };
  };
  const metric = async (cairn: Cairn, name: string) => {
    const text = await (await fetch(`${cairn.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  beforeAll(async () => {
    replica = await startStreamingReplica();
    db = await createTestDatabase('replica.test.ts', 'postgres');
    dbName = new URL(db.url!).pathname.slice(1);
    const replicaUrl = replica.urlOf(dbName);
    // CREATE DATABASE reached the replica once it can be connected to.
    onReplica = replica.sql(dbName);
    await until(
      'the test database on the replica',
      () =>
        onReplica`SELECT 1`.then(
          () => true,
          () => false,
        ),
      CATCH_UP,
    );
    tolerant = await startTestCairn({
      ...db.env,
      CAIRN_ANALYTICS_DATABASE_URL: replicaUrl,
      CAIRN_ANALYTICS_MAX_LAG_S: '3600',
    });
    strict = await startTestCairn({
      ...db.env,
      CAIRN_ANALYTICS_DATABASE_URL: replicaUrl,
      CAIRN_ANALYTICS_MAX_LAG_S: '1',
    });
    reader = createAnalyticsReader({
      sql: tolerant.sql,
      dbKind: 'postgres',
      databaseUrl: db.url,
      replicaUrl,
      timeoutMs: 10_000,
      maxLagSeconds: 3600,
    });
    await send(5);
  }, 600_000);

  afterAll(async () => {
    await reader?.close();
    await strict?.close();
    await tolerant?.close();
    await db?.drop();
    await replica?.close();
  }, 60_000);

  it('answers analytics from the replica: the statement runs on a standby backend', async () => {
    const [row] = await reader.rows<{ standby: boolean; port: number; readOnly: string }>(
      ruleSql`SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port,
        current_setting('default_transaction_read_only') AS "readOnly"`,
    );
    expect(row).toEqual({ standby: true, port: replica.port, readOnly: 'on' });

    const answer = await until(
      'all 5 events on the replica',
      async () => {
        const t = await trend(tolerant);
        return t.total === 5 && t.meta.source === 'replica' && t;
      },
      CATCH_UP,
    );
    expect(answer.meta).toMatchObject({ source: 'replica', fallback: null });
    expect(answer.meta.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(answer.meta.dataAsOf)).not.toBeNaN();
    // The server's analytics pool is connected to the replica, on this test's database.
    const sessions = await onReplica<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'cairn-analytics-replica' AND datname = ${dbName}`;
    expect(sessions[0]!.n).toBeGreaterThan(0);
  }, 600_000);

  it('never writes there: the handle is refused by write helpers at compile time, and Postgres refuses writes', async () => {
    await expect(reader.rows(ruleSql`INSERT INTO settings (key, value) VALUES ('replica-wrote', '1')`)).rejects.toThrow(
      /read-only transaction/,
    );
    const err = await reader
      .read(async (s) => {
        // @ts-expect-error a ReadSql is not a Tx: a write helper does not accept the replica's handle
        await markReplayed(s, '1', 'replica-wrote');
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/read-only transaction/);
    expect(await tolerant.sql`SELECT 1 FROM settings WHERE key = 'replica-wrote'`).toHaveLength(0);
  });

  it('shows the lag in /metrics and in answers; past the bound the primary answers', async () => {
    await until('the lag gauge', async () => (await metric(tolerant, 'cairn_replica_lag_seconds')) !== undefined);
    expect(await metric(tolerant, 'cairn_replica_up')).toBe(1);
    await replica.pauseReplay();
    try {
      await send(3);
      // The tolerant server still reads the replica: the new events are not there yet, and it says how far behind.
      const stale = await until('a lag above 1 s on the replica', async () => {
        const t = await trend(tolerant);
        return t.meta.lagSeconds > 1 && t;
      });
      expect(stale.total).toBe(5);
      expect(stale.meta).toMatchObject({ source: 'replica', fallback: null });
      expect(Date.parse(stale.meta.dataAsOf)).toBeLessThan(Date.now() - 1000);
      expect(await metric(tolerant, 'cairn_replica_lag_seconds')).toBeGreaterThan(1);
      expect(await metric(tolerant, 'cairn_replica_lag_bytes')).toBeGreaterThan(0);
      // A console page read there is as stale, and its headers say so.
      const events = await page(tolerant, '/events?limit=100');
      expect(events.headers.get('cairn-read-source')).toBe('replica');
      expect(Number(events.headers.get('cairn-replica-lag'))).toBeGreaterThan(1);
      const listed = events.body.data.filter(
        (e: { payload: { event?: string } }) => e.payload.event === 'Replica Check',
      );
      expect(listed).toHaveLength(5);

      // The strict server reads the primary instead: every event, and why.
      const fresh = await trend(strict);
      expect(fresh.total).toBe(8);
      expect(fresh.meta).toMatchObject({ source: 'primary', lagSeconds: 0, fallback: 'replica_lagging' });
      const strictEvents = await page(strict, '/events?limit=100');
      expect(strictEvents.headers.get('cairn-read-source')).toBe('primary');
      expect(strictEvents.headers.get('cairn-read-fallback')).toBe('replica_lagging');

      // A migration the replica has not replayed: even the tolerant server reads the primary (tables or
      // columns of this version could be missing there).
      await tolerant.sql`INSERT INTO cairn_migrations (version, name) VALUES (99999, 'replica test')`;
      try {
        const behind = await until('the schema seen behind', async () => {
          const t = await trend(tolerant);
          return t.meta.source === 'primary' && t;
        });
        expect(behind.total).toBe(8);
        expect(behind.meta.fallback).toBe('replica_lagging');
      } finally {
        await tolerant.sql`DELETE FROM cairn_migrations WHERE version = 99999`;
      }
    } finally {
      await replica.resumeReplay();
    }
    const caughtUp = await until(
      'the replica caught up',
      async () => {
        const t = await trend(tolerant);
        return t.total === 8 && t.meta.source === 'replica' && t;
      },
      CATCH_UP,
    );
    expect(caughtUp.meta.source).toBe('replica');
  }, 600_000);

  it('falls back to the primary when the replica stops, and goes back once it is up', async () => {
    // Readers whose clock stands still keep routing to the replica they found up: their next statement
    // meets the stopped replica, fails there, and must be answered by the primary all the same.
    const still = Date.now();
    const routed = [0, 1].map(() =>
      createAnalyticsReader({
        sql: tolerant.sql,
        dbKind: 'postgres',
        databaseUrl: db.url,
        replicaUrl: replica.urlOf(dbName),
        timeoutMs: 10_000,
        clock: () => still,
      }),
    );
    for (const r of routed) expect((await r.meta()).source).toBe('replica');
    await replica.stop();
    try {
      const standby = ruleSql`SELECT pg_is_in_recovery() AS standby`;
      expect(await routed[0]!.rows(standby)).toEqual([{ standby: false }]);
      const batches: unknown[][] = [];
      for await (const rows of routed[1]!.stream(standby)) batches.push(rows);
      expect(batches).toEqual([[{ standby: false }]]);
      for (const r of routed) expect(await r.meta()).toMatchObject({ source: 'primary', fallback: 'replica_down' });

      const answer = await trend(tolerant);
      expect(answer.total).toBe(8);
      expect(answer.meta).toMatchObject({ source: 'primary', fallback: 'replica_down' });
      expect(await metric(tolerant, 'cairn_replica_up')).toBe(0);
      // The reader's statements go to the primary as well.
      const [row] = await reader.rows<{ standby: boolean }>(ruleSql`SELECT pg_is_in_recovery() AS standby`);
      expect(row).toEqual({ standby: false });
      const recent = await page(tolerant, '/profiles/recent?limit=5');
      expect(recent.headers.get('cairn-read-source')).toBe('primary');
      expect(recent.body.data.length).toBeGreaterThan(0);
    } finally {
      await Promise.all(routed.map((r) => r.close()));
      await replica.start();
    }
    await until(
      'answers from the replica again',
      async () => (await trend(tolerant)).meta.source === 'replica',
      CATCH_UP,
    );
  }, 600_000);
});
