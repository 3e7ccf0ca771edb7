// What fold baselines (migration 0039, docs/retention.md) add to dropping a partition of events:
// `bash scripts/with-node.sh tsx test/bench/fold-baselines.ts -- --profiles 100000 --events 3`. A fresh
// database at the current schema gets `--profiles` people with `--events` events each in events_legacy
// (an identify with traits and a campaign, then tracks and pages with a referrer), all attached. Measured,
// each beside the CPU other processes kept busy meanwhile: recording the baselines (the added cost), the
// same again (a run that crashed before the drop: every identity skipped), and the drop itself (its dedup
// keys released, then DROP TABLE) — with, as the physical reference in the same run, one sequential read
// of the partition's payloads. The bench database is dropped at the end.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import type { Sql } from '../../server/src/db/index.ts';
import { migrate } from '../../server/src/db/migrate.ts';
import { recordBaselines } from '../../server/src/jobs/retention-baseline.ts';
import { dropEventPartition, eventPartitions } from '../../server/src/jobs/retention-queries.ts';
import { createPii } from '../../server/src/pii/index.ts';
import { cpuMeter } from './ingest/machine.ts';

const DB = 'cairn_bench_baselines';
const { values } = parseArgs({
  // `npm run`-style `--` before the options is allowed.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    profiles: { type: 'string', default: '100000' },
    events: { type: 'string', default: '3' },
    explain: { type: 'boolean', default: false },
  },
});
const profiles = Number(values.profiles);
const perProfile = Number(values.events);
if (!Number.isInteger(profiles) || profiles < 1) throw new Error(`--profiles must be a positive integer`);
if (!Number.isInteger(perProfile) || perProfile < 1) throw new Error(`--events must be a positive integer`);
const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const admin = postgres(base, { max: 1, onnotice: () => {} });
await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin.unsafe(`CREATE DATABASE ${DB}`);
const url = new URL(base);
url.pathname = `/${DB}`;
const sql = postgres(url.toString(), { max: 1, onnotice: () => {} }) as unknown as Sql;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function phase<T>(name: string, fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const stop = cpuMeter(undefined, DB);
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  const cpu = stop();
  console.log(
    `${name.padEnd(46)} ${s(ms).padStart(9)}   CPU: this process ${s(cpu.loadgen * ms)}, Postgres ${s(cpu.postgres * ms)}; other processes ${cpu.other.toFixed(2)} cores`,
  );
  return { ms, result };
}

try {
  await migrate(sql);
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('bench', 'bench', 'bench-key')`;
  const t0 = performance.now();
  await sql`
    INSERT INTO profiles (id) SELECT md5('p' || i)::uuid FROM generate_series(1, ${profiles}) i`;
  await sql`
    INSERT INTO identities (key, type, value, profile_id)
    SELECT 'userId:u' || i, 'userId', 'u' || i, md5('p' || i)::uuid FROM generate_series(1, ${profiles}) i`;
  // January 2025: inside events_legacy, which a fresh database bounds at the month after its migration.
  await sql`
    INSERT INTO events (source_id, message_id, type, user_id, timestamp, received_at, payload, processed_at,
      profile_id, identity_key)
    SELECT 'bench', 'm' || i || '-' || j, t, 'u' || i, ts, ts,
      CASE WHEN j = 0 THEN jsonb_build_object('type', 'identify', 'userId', 'u' || i,
          'traits', jsonb_build_object('plan', 'pro', 'name', 'User ' || i, 'logins', i % 7, 'company', 'Acme'),
          'context', jsonb_build_object('campaign', jsonb_build_object('source', 'news', 'name', 'spring')))
        ELSE jsonb_build_object('type', t, 'userId', 'u' || i, 'event', 'Viewed',
          'properties', jsonb_build_object('path', '/p/' || j),
          'context', jsonb_build_object('page', jsonb_build_object('url', 'https://shop.test/p/' || j,
            'referrer', 'https://search.test/?q=' || j)))
      END,
      ts, md5('p' || i)::uuid, 'userId:u' || i
    FROM generate_series(1, ${profiles}) i, generate_series(0, ${perProfile - 1}) j,
      LATERAL (SELECT CASE WHEN j = 0 THEN 'identify' WHEN j % 2 = 1 THEN 'track' ELSE 'page' END AS t,
        timestamptz '2025-01-02' + (i * 13 + j * 3600) * interval '1 second' AS ts) x`;
  await sql`VACUUM ANALYZE events_legacy`;
  const [size] = await sql<{ events: string; n: string }[]>`
    SELECT pg_size_pretty(pg_total_relation_size('events_legacy')) AS events, (SELECT count(*) FROM events_legacy)::text AS n`;
  console.log(
    `setup: ${profiles} profiles, ${size!.n} events in events_legacy (${size!.events}), ${s(performance.now() - t0)}`,
  );

  const part = (await eventPartitions(sql)).find((p) => p.name === 'events_legacy')!;
  const ctx = { traits: {}, pii: createPii({ secret: 'bench-secret-0123456789abcdef0123456789' }) };
  await phase(
    'reference: one read of the partition',
    () => sql`SELECT count(*), sum(length(payload::text)) FROM events_legacy`,
  );
  if (values.explain) {
    const plan = await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS) SELECT DISTINCT profile_id FROM events_legacy
      WHERE profile_id > '00000000-0000-0000-0000-000000000000'::uuid ORDER BY profile_id LIMIT 1000`);
    console.log(plan.map((r) => r['QUERY PLAN']).join('\n'));
  }
  const rec = await phase('record baselines', () => recordBaselines(sql, part, ctx));
  console.log(`  ${JSON.stringify(rec.result)}`);
  await phase('record again (a crashed run: all skipped)', () => recordBaselines(sql, part, ctx));
  const drop = await phase('drop (release dedup keys, DROP TABLE)', () => dropEventPartition(sql, 'events_legacy'));
  const [bl] = await sql<{ size: string; n: string }[]>`
    SELECT pg_size_pretty(pg_total_relation_size('fold_baselines')) AS size, (SELECT count(*) FROM fold_baselines)::text AS n`;
  console.log(`fold_baselines: ${bl!.n} rows, ${bl!.size}`);
  console.log(
    `baselines / drop: ${(rec.ms / drop.ms).toFixed(2)}x; per profile ${((rec.ms * 1000) / profiles).toFixed(0)} µs`,
  );
} finally {
  await sql.end();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
}
