// Migration 0034 after docs/deploy/prepare-event-partitions.sql (the online preparation for a large
// database, run with psql while a writer keeps storing events and duplicates): the same schema as the
// ordinary migration, every event with its own key, duplicates still refused; and a preparation that
// never finished is dropped and the migration done the ordinary way. Postgres only: the preparation is an
// operator's psql script against a production database.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/index.ts';
import type { Sql } from './index.ts';
import { listMigrations, migrate } from './migrate.ts';

const PARTITIONS = 34;
const ROWS = 3000;
const PREPARE = fileURLToPath(new URL('../../../docs/deploy/prepare-event-partitions.sql', import.meta.url));
const run = promisify(execFile);

interface Db {
  db: TestDatabase;
  sql: Sql;
}

/** A database as the release before 0034 left it, with ROWS events of two sources. */
async function previousSchema(name: string): Promise<Db> {
  const db = await createTestDatabase(`event-partitions-prepared.test.ts:${name}`, 'postgres');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} }) as unknown as Sql;
  await sql.begin(async (tx) => {
    await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    for (const m of (await listMigrations()).filter((m) => m.version < PARTITIONS)) {
      await tx.unsafe(m.sql);
      await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
    }
  });
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('s1', 'shop', 'wk1'), ('s2', 'app', 'wk2')`;
  await sql`
    INSERT INTO events (source_id, message_id, type, event, user_id, timestamp, received_at, payload, profile_id)
    SELECT CASE WHEN i % 3 = 0 THEN 's2' ELSE 's1' END, 'm' || i, 'track', 'E' || (i % 7), 'u' || (i % 50),
      now() - i * interval '9 hours', now() - i * interval '9 hours', jsonb_build_object('i', i),
      CASE WHEN i % 2 = 0 THEN md5('p' || (i % 50))::uuid END
    FROM generate_series(1, ${ROWS}) AS i`;
  return { db, sql };
}

/** The old servers' insert: a duplicate is skipped by the unique key. Returns whether it was stored. */
async function oldInsert(sql: Sql, sourceId: string, messageId: string): Promise<boolean> {
  const rows = await sql`
    INSERT INTO events (source_id, message_id, type, event, timestamp, received_at, payload)
    VALUES (${sourceId}, ${messageId}, 'track', 'Live', now(), now(), '{}')
    ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id`;
  return rows.length === 1;
}

/** The schema as pg_dump writes it, without what differs by design (the random restrict key, ids). */
async function schema(db: TestDatabase): Promise<string> {
  const { stdout } = await run('pg_dump', ['--schema-only', '--no-owner', db.url!], { maxBuffer: 1 << 26 });
  return stdout
    .split('\n')
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join('\n')
    .replace(/START WITH \d+/g, 'START WITH n');
}

/** Every event has the key that admitted it, and no key is left without its event. */
async function keysMatch(sql: Sql): Promise<{ events: number; keys: number; matched: number }> {
  const [r] = await sql<{ events: number; keys: number; matched: number }[]>`
    SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM event_keys) AS keys,
      (SELECT count(*)::int FROM events e JOIN event_keys k
        ON (k.source_id, k.message_id, k.event_id) = (e.source_id, e.message_id, e.id)) AS matched`;
  return r!;
}

describe('migration 0034 after the online preparation', () => {
  let plain: Db;
  let prepared: Db;
  let unfinished: Db;
  let stored = 0;

  beforeAll(async () => {
    [plain, prepared, unfinished] = await Promise.all([
      previousSchema('plain'),
      previousSchema('prepared'),
      previousSchema('unfinished'),
    ]);
    // A writer on the prepared database all along the script: new events, and duplicates of old and new.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        if (await oldInsert(prepared.sql, 's1', `live-${i}`)) stored++;
        if (await oldInsert(prepared.sql, 's1', `m${(i % ROWS) + 1}`)) stored++;
        if (i > 0 && (await oldInsert(prepared.sql, 's1', `live-${i - 1}`))) stored++;
      }
    })();
    await run('psql', [prepared.db.url!, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', PREPARE]);
    // And after it, before the upgrade: the trigger keeps the keys.
    await new Promise((r) => setTimeout(r, 200));
    writing = false;
    await writer;
    // Finished: the keys' primary key and the partition's key exist before the upgrade, so 0034 skips both.
    const [ready] = await prepared.sql<{ keys: boolean; legacy: boolean }[]>`
      SELECT to_regclass('event_keys_pkey') IS NOT NULL AS keys,
        EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('events_legacy_pkey') AND indisvalid) AS legacy`;
    expect(ready).toEqual({ keys: true, legacy: true });
    // A preparation stopped before the end: the keys without their primary key, the trigger still on.
    await unfinished.sql`CREATE TABLE event_keys (source_id text NOT NULL, message_id text NOT NULL, event_id bigint NOT NULL)`;
    await unfinished.sql.unsafe(`
      CREATE FUNCTION cairn_prepare_event_key() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO event_keys VALUES (NEW.source_id, NEW.message_id, NEW.id); RETURN NULL; END $$`);
    await unfinished.sql`CREATE TRIGGER events_prepare_keys AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION cairn_prepare_event_key()`;
    await oldInsert(unfinished.sql, 's1', 'after-half-preparation');
    for (const d of [plain, prepared, unfinished]) expect(await migrate(d.sql)).toContain(PARTITIONS);
  }, 180_000);

  afterAll(async () => {
    for (const d of [plain, prepared, unfinished]) {
      await d?.sql.end();
      await d?.db.drop();
    }
  });

  it('ends in the same schema as the ordinary migration, finished or not', async () => {
    const expected = await schema(plain.db);
    expect(expected).toContain('CREATE TABLE public.event_keys');
    expect(expected).not.toContain('prepare');
    expect(await schema(prepared.db)).toBe(expected);
    expect(await schema(unfinished.db)).toBe(expected);
  });

  it('gives every event stored before, during and after the preparation its own key', async () => {
    expect(stored).toBeGreaterThan(0);
    expect(await keysMatch(prepared.sql)).toEqual({
      events: ROWS + stored,
      keys: ROWS + stored,
      matched: ROWS + stored,
    });
    expect(await keysMatch(unfinished.sql)).toEqual({ events: ROWS + 1, keys: ROWS + 1, matched: ROWS + 1 });
  });

  it('refuses, after the migration, the duplicates of events stored before and during the preparation', async () => {
    const [r] = await prepared.sql<{ n: number }[]>`
      WITH ins AS (
        INSERT INTO events (source_id, message_id, type, timestamp, received_at, payload)
        VALUES ('s1', 'm1', 'track', now(), now(), '{}'), ('s1', 'live-0', 'track', now(), now(), '{}'),
          ('s2', 'm1', 'track', now(), now(), '{}')
        RETURNING message_id, source_id)
      SELECT count(*)::int AS n FROM ins`;
    // m1 of s1 and live-0 exist; m1 of s2 does not (m1 is s1's: 1 % 3 != 0).
    expect(r!.n).toBe(1);
  });
});
