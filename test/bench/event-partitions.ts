// Migration 0034 (events partitioned by month) measured on a database of the schema before it, filled with
// `--events` events (default 1,000,000) received over a year (`npm run bench:partitions`): how long it takes,
// which locks it holds (sampled from pg_locks every 50 ms by a second session), and the disk before and
// after. The physical reference, in the same run: copying the events table once (CREATE TABLE AS), which
// is what a migration that rewrote the rows would cost at least.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import type { Sql } from '../../server/src/db/index.ts';
import { listMigrations, migrate } from '../../server/src/db/migrate.ts';

const PARTITIONS = 34;
const CHUNK = 250_000;
const DB = 'cairn_bench_partitions';

const { values } = parseArgs({ options: { events: { type: 'string', default: '1000000' } } });
const total = Number(values.events);
const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const admin = postgres(base, { max: 1, onnotice: () => {} });
await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin.unsafe(`CREATE DATABASE ${DB}`);
const url = new URL(base);
url.pathname = `/${DB}`;
const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
const watch = postgres(url.toString(), { max: 1, onnotice: () => {} });
const mb = (b: number | string) => `${(Number(b) / 1024 / 1024).toFixed(0)} MB`;

try {
  await sql.begin(async (tx) => {
    await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    for (const m of (await listMigrations()).filter((m) => m.version < PARTITIONS)) {
      await tx.unsafe(m.sql);
      await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
    }
  });
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('s1', 'shop', 'wk1')`;
  let t = performance.now();
  for (let from = 0; from < total; from += CHUNK) {
    // Rows shaped like tracked events (~400 bytes of payload), half attached to one of 100,000 profiles.
    await sql`
      INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload,
        profile_id, identity_key, processed_at)
      SELECT 's1', md5(i::text)::uuid::text, 'track', 'Event ' || (i % 40), 'user-' || (i % 100000), md5('a' || i),
        now() - (${total}::int - i) * interval '31 seconds', now() - (${total}::int - i) * interval '31 seconds',
        jsonb_build_object('type', 'track', 'event', 'Event ' || (i % 40), 'messageId', md5(i::text)::uuid::text,
          'properties', jsonb_build_object('total', i % 500, 'currency', 'EUR', 'sku', 'SKU-' || (i % 2000)),
          'context', jsonb_build_object('page', jsonb_build_object('url', 'https://shop.example/p/' || (i % 2000)),
            'userAgent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36')),
        CASE WHEN i % 2 = 0 THEN md5('p' || (i % 100000))::uuid END, 'userId:user-' || (i % 100000), now()
      FROM generate_series(${from + 1}::int, ${Math.min(from + CHUNK, total)}::int) AS i`;
  }
  await sql`VACUUM ANALYZE events`;
  await sql`CHECKPOINT`;
  console.log(`${total.toLocaleString('en')} events generated in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const [before] = await sql<{ db: string; events: string }[]>`
    SELECT pg_database_size(current_database())::text AS db, pg_total_relation_size('events')::text AS events`;

  t = performance.now();
  await sql`CREATE TABLE events_copy_reference AS SELECT * FROM events`;
  const copySeconds = (performance.now() - t) / 1000;
  await sql`DROP TABLE events_copy_reference`;
  await sql`CHECKPOINT`;

  const { pid } = (await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`)[0]!;
  const locks = new Map<string, { first: number; last: number }>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rows = await watch<{ rel: string; mode: string }[]>`
        SELECT coalesce(c.relname, l.locktype) AS rel, l.mode
        FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
        WHERE l.pid = ${pid} AND l.granted AND (c.relname LIKE 'event%' OR c.relname = 'sources')`;
      const at = (performance.now() - t) / 1000;
      for (const r of rows) {
        const k = `${r.rel}: ${r.mode}`;
        const seen = locks.get(k);
        locks.set(k, { first: seen?.first ?? at, last: at });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  t = performance.now();
  const applied = await migrate(sql as unknown as Sql);
  const seconds = (performance.now() - t) / 1000;
  sampling = false;
  await sampler;
  if (!applied.includes(PARTITIONS)) throw new Error(`migration ${PARTITIONS} was not applied: ${applied}`);
  await sql`CHECKPOINT`;
  const [after] = await sql<{ db: string; events: string; keys: string }[]>`
    SELECT pg_database_size(current_database())::text AS db,
      (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass)::text AS events,
      pg_total_relation_size('event_keys')::text AS keys`;

  const per10M = (s: number) => ((s * 10_000_000) / total).toFixed(0);
  console.log(`migration ${PARTITIONS} on ${total.toLocaleString('en')} events: ${seconds.toFixed(1)} s`);
  console.log(
    `  reference, one copy of the table (CREATE TABLE AS): ${copySeconds.toFixed(1)} s; migration/copy = ${(seconds / copySeconds).toFixed(2)}`,
  );
  console.log(
    `  extrapolated linearly to 10M events: ~${per10M(seconds)} s (copy reference ~${per10M(copySeconds)} s)`,
  );
  console.log(
    `  disk: database ${mb(before!.db)} -> ${mb(after!.db)}; events ${mb(before!.events)} -> ${mb(after!.events)} + event_keys ${mb(after!.keys)}`,
  );
  console.log('  locks held by the migrating session (sampled every 50 ms; seconds from its start):');
  for (const [k, v] of [...locks].sort()) console.log(`    ${k}  ${v.first.toFixed(1)}-${v.last.toFixed(1)} s`);
} finally {
  await sql.end();
  await watch.end();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
}
