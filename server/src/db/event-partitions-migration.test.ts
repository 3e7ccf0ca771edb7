// Migration 0034 from the schema before it, with events in it: the table becomes the partition
// events_legacy without a row copied, its indexes are attached (not built twice), every stored key keeps
// refusing its duplicate, ids go on from where they were, and reads and updates by id work. On both
// databases: real Postgres and embedded PGlite (through the same socket bridge and client the server uses).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { EventRow } from '../pipeline/ingest/enrich.ts';
import { insertEvents } from '../pipeline/ingest/queries.ts';
import { createTestDatabase, describeOnDatabases } from '../testing/index.ts';
import type { Sql } from './index.ts';
import { listMigrations, migrate } from './migrate.ts';

const PARTITIONS = 34;
const ROWS = 3000;

describeOnDatabases(`migration ${PARTITIONS} on %s: events become partitioned, with their data`, (mode) => {
  let sql: Sql;
  let close: () => Promise<void>;
  let before: { n: number; maxId: string; digest: string };
  const digest = async () =>
    (
      await sql<{ n: number; maxId: string; digest: string }[]>`
        SELECT count(*)::int AS n, max(id)::text AS "maxId",
          md5(string_agg(id || '|' || source_id || '|' || message_id || '|' || received_at || '|' || payload::text
            || '|' || coalesce(profile_id::text, '-'), ',' ORDER BY id)) AS digest
        FROM events`
    )[0]!;

  beforeAll(async () => {
    if (mode === 'postgres') {
      const db = await createTestDatabase('event-partitions-migration.test.ts', 'postgres');
      sql = postgres(db.url!, { max: 1, onnotice: () => {} }) as unknown as Sql;
      close = async () => {
        await sql.end();
        await db.drop();
      };
    } else {
      const dir = await mkdtemp(join(tmpdir(), 'cairn-mig-'));
      const pglite = await PGlite.create();
      const server = new PGLiteSocketServer({ db: pglite, path: join(dir, '.s.PGSQL.5432') });
      await server.start();
      sql = postgres({
        path: join(dir, '.s.PGSQL.5432'),
        user: 'postgres',
        database: 'postgres',
        max: 1,
        onnotice: () => {},
      }) as unknown as Sql;
      close = async () => {
        await sql.end();
        await server.stop();
        await pglite.close();
        await rm(dir, { recursive: true, force: true });
      };
    }
    // The database as the release before left it: every migration before this one, recorded as migrate() does.
    await sql.begin(async (tx) => {
      await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
      for (const m of (await listMigrations()).filter((m) => m.version < PARTITIONS)) {
        await tx.unsafe(m.sql);
        await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      }
    });
    await sql`INSERT INTO sources (id, name, write_key) VALUES ('s1', 'shop', 'wk1'), ('s2', 'app', 'wk2')`;
    // Events received over the last three years, some attached to profiles (the partial indexes have rows).
    await sql`
      INSERT INTO events (source_id, message_id, type, event, user_id, timestamp, received_at, payload, profile_id, processed_at)
      SELECT CASE WHEN i % 3 = 0 THEN 's2' ELSE 's1' END, 'm' || i, 'track', 'E' || (i % 7), 'u' || (i % 50),
        now() - i * interval '9 hours', now() - i * interval '9 hours', jsonb_build_object('i', i),
        CASE WHEN i % 2 = 0 THEN md5('p' || (i % 50))::uuid END, now()
      FROM generate_series(1, ${ROWS}) AS i`;
    before = await digest();
    expect(await migrate(sql)).toContain(PARTITIONS);
  }, 120_000);
  afterAll(async () => {
    await close?.();
  });

  it('keeps every row as it was, in the partition events_legacy, with its indexes attached once', async () => {
    expect(await digest()).toEqual(before);
    const parts = await sql<{ part: string; n: number }[]>`
      SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM events GROUP BY 1`;
    expect(parts).toEqual([{ part: 'events_legacy', n: ROWS }]);
    const [kind] = await sql<{ kind: string }[]>`SELECT relkind::text AS kind FROM pg_class WHERE relname = 'events'`;
    expect(kind!.kind).toBe('p');
    const indexes = (t: string) =>
      sql<{ def: string }[]>`
        SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') AS def
        FROM pg_index WHERE indrelid = ${t}::regclass ORDER BY 1`;
    const parent = (await indexes('events')).map((i) => i.def);
    expect(parent).toEqual(expect.arrayContaining(['btree (id, received_at)']));
    expect(parent.some((d) => d.startsWith('btree (profile_id, "timestamp" DESC, id DESC)'))).toBe(true);
    expect((await indexes('events_legacy')).map((i) => i.def)).toEqual(parent);
    const [keys] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM event_keys k JOIN events e ON e.id = k.event_id
        AND e.source_id = k.source_id AND e.message_id = k.message_id`;
    expect(keys!.n).toBe(ROWS);
  });

  it('refuses the duplicate of a stored event, and numbers new ones after the stored ones', async () => {
    const now = new Date().toISOString();
    const row = (sourceId: string, messageId: string): EventRow =>
      ({
        sourceId,
        messageId,
        type: 'track',
        event: 'New',
        userId: 'u1',
        anonymousId: null,
        timestamp: now,
        receivedAt: now,
        payload: '{}',
      }) as EventRow;
    expect(await insertEvents(sql, [row('s1', 'm1'), row('s2', 'm3'), row('s1', 'm2999')])).toEqual([]);
    const [fresh] = await insertEvents(sql, [row('s1', 'm3'), row('s1', 'm-new')]);
    expect(BigInt(fresh!.id)).toBeGreaterThan(BigInt(before.maxId));
    expect(fresh!.messageId).toBe('m3');
    expect(await sql`SELECT 1 FROM events WHERE source_id = 's1' AND message_id = 'm-new'`).toHaveLength(1);
  });

  it('reads and updates by id across partitions, and the next months exist', async () => {
    const [one] = await sql<{ id: string }[]>`SELECT id::text FROM events WHERE message_id = 'm10'`;
    const updated = await sql`UPDATE events SET processed_at = NULL WHERE id = ${one!.id} RETURNING id`;
    expect(updated).toHaveLength(1);
    const parts = await sql<{ name: string }[]>`SELECT name FROM event_partitions ORDER BY upper_bound`;
    expect(parts.map((p) => p.name)).toEqual([
      'events_legacy',
      expect.stringMatching(/^events_p\d{6}$/),
      expect.stringMatching(/^events_p\d{6}$/),
    ]);
  });

  it('is applied once', async () => {
    expect(await migrate(sql)).toEqual([]);
  });
});
