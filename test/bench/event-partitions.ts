// Migration 0034 (events partitioned by month) measured on a database of the schema before it, filled with
// `--events` events (default 1,000,000) received over a year (`npm run bench:partitions -- --events 10000000`):
// how long each statement takes, which locks it holds (pg_locks sampled every 50 ms by a second session),
// what a writer sees meanwhile (a third session inserting one event every 50 ms: its longest wait), the
// disk before, during (database + sort spill + WAL, sampled every second: the peak) and after, and the
// WAL written. The physical reference, in the same run: one copy of the events table (CREATE TABLE AS),
// which is what a migration that rewrote the rows would cost at least. Beside every phase: the cores other
// processes kept busy meanwhile (the machine is shared). `--prepared` first runs the online preparation
// (docs/deploy/prepare-event-partitions.sql, with psql, the writer going on) and measures it the same way.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import postgres from 'postgres';
import type { Sql } from '../../server/src/db/index.ts';
import { listMigrations, migrate } from '../../server/src/db/migrate.ts';
import { processSeconds } from './ingest/machine.ts';

const PARTITIONS = 34;
const CHUNK = 250_000;
const DB = 'cairn_bench_partitions';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    // Runs the preparation (docs/deploy/prepare-event-partitions.sql) before the migration.
    prepared: { type: 'boolean', default: false },
    // Also applies the later migrations and times them (some backfill over every event: minutes at 10M).
    'all-migrations': { type: 'boolean', default: false },
  },
});
const PREPARE = fileURLToPath(new URL('../../docs/deploy/prepare-event-partitions.sql', import.meta.url));
const total = Number(values.events);
if (!Number.isInteger(total) || total < 1000) throw new Error(`--events must be an integer >= 1000: ${values.events}`);
const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const admin = postgres(base, { max: 1, onnotice: () => {} });
await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
await admin.unsafe(`CREATE DATABASE ${DB}`);
const url = new URL(base);
url.pathname = `/${DB}`;
const open = () => postgres(url.toString(), { max: 1, onnotice: () => {}, prepare: false });
const sql = open();
const watch = open();
const writer = open();
const mb = (b: number | string) => `${(Number(b) / 1024 / 1024).toFixed(0)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Splits a migration into its statements (`;` outside comments, quotes and dollar quotes). */
function statements(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      cur += '\n';
    } else if (c === '$' || c === "'") {
      const tag = c === '$' ? text.slice(i, text.indexOf('$', i + 1) + 1) : "'";
      const end = text.indexOf(tag, i + tag.length);
      cur += text.slice(i, end + tag.length);
      i = end + tag.length - 1;
    } else if (c === ';') {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

// Other processes' CPU: the machine's busy time minus this process and the Postgres processes working
// for the bench database (backends, and parallel workers of an index build, seen by the sampler).
const machineBusy = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]! - f[7]!, total };
};
const parallelSeen = new Map<number, number>();
function ourPostgres(): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() !== 'postgres') continue;
      const title = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (title.includes(DB) || title.includes('parallel worker')) pids.push(Number(e));
    } catch {
      // exited
    }
  }
  return pids;
}
function notePostgres() {
  for (const pid of ourPostgres()) parallelSeen.set(pid, Math.max(parallelSeen.get(pid) ?? 0, processSeconds(pid)));
}
/** Starts a phase; its stop gives the cores other processes kept busy meanwhile. */
function phase(): () => number {
  notePostgres();
  const ours0 = new Map(parallelSeen);
  const m0 = machineBusy();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    notePostgres();
    const m1 = machineBusy();
    const secs = (performance.now() - t0) / 1000;
    let ours = 0;
    for (const [pid, cpu] of parallelSeen) ours += cpu - (ours0.get(pid) ?? 0);
    const self = process.cpuUsage(self0);
    ours += (self.user + self.system) / 1e6;
    const busyCores = ((m1.busy - m0.busy) / (m1.total - m0.total || 1)) * availableParallelism();
    return Math.max(0, busyCores - ours / secs);
  };
}
const load = (cores: number) => `other processes ${cores.toFixed(2)} cores`;
const walLsn = async () => (await sql<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`)[0]!.lsn;
const walSince = async (lsn: string) =>
  Number((await sql<{ b: string }[]>`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn}::pg_lsn)::text AS b`)[0]!.b);

/** Inserts the events `from`..`to` (1-based), shaped like tracked events (~400 bytes of payload). */
async function generate(db: postgres.Sql, from: number, to: number) {
  // Half attached to one of 100,000 profiles; received over the last `total` × 31 s (a year for 1M).
  await db`
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload,
      profile_id, identity_key, processed_at)
    SELECT 's1', md5(i::text)::uuid::text, 'track', 'Event ' || (i % 40), 'user-' || (i % 100000), md5('a' || i),
      now() - (${total}::int - i) * interval '31 seconds' * (1000000.0 / ${total}::int),
      now() - (${total}::int - i) * interval '31 seconds' * (1000000.0 / ${total}::int),
      jsonb_build_object('type', 'track', 'event', 'Event ' || (i % 40), 'messageId', md5(i::text)::uuid::text,
        'properties', jsonb_build_object('total', i % 500, 'currency', 'EUR', 'sku', 'SKU-' || (i % 2000)),
        'context', jsonb_build_object('page', jsonb_build_object('url', 'https://shop.example/p/' || (i % 2000)),
          'userAgent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36')),
      CASE WHEN i % 2 = 0 THEN md5('p' || (i % 100000))::uuid END, 'userId:user-' || (i % 100000), now()
    FROM generate_series(${from}::int, ${to}::int) AS i`;
}

try {
  await sql.begin(async (tx) => {
    await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    for (const m of (await listMigrations()).filter((m) => m.version < PARTITIONS)) {
      await tx.unsafe(m.sql);
      await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
    }
  });
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('s1', 'shop', 'wk1')`;

  // Loaded without its secondary indexes, unique key and foreign-key trigger, which are then built as
  // they were declared: ten times faster than maintaining them row by row, and the same schema after.
  let t = performance.now();
  const indexes = await sql<{ def: string; name: string; constraint: boolean }[]>`
    SELECT pg_get_indexdef(x.indexrelid) AS def, i.relname AS name, c.oid IS NOT NULL AS constraint
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid
    WHERE x.indrelid = 'events'::regclass AND NOT x.indisprimary`;
  const unique = await sql<{ name: string; def: string }[]>`
    SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE conrelid = 'events'::regclass AND contype = 'u'`;
  for (const u of unique) await sql.unsafe(`ALTER TABLE events DROP CONSTRAINT ${u.name}`);
  for (const i of indexes.filter((i) => !i.constraint)) await sql.unsafe(`DROP INDEX ${i.name}`);
  await sql`ALTER TABLE events DISABLE TRIGGER ALL`;
  const loaders = [sql, open()];
  let next = 1;
  await Promise.all(
    loaders.map(async (db) => {
      while (next <= total) {
        const from = next;
        next += CHUNK;
        await generate(db, from, Math.min(from + CHUNK - 1, total));
      }
    }),
  );
  await loaders[1]!.end();
  await sql`ALTER TABLE events ENABLE TRIGGER ALL`;
  await sql`SET maintenance_work_mem = '256MB'`;
  for (const u of unique) await sql.unsafe(`ALTER TABLE events ADD CONSTRAINT ${u.name} ${u.def}`);
  for (const i of indexes.filter((i) => !i.constraint)) await sql.unsafe(i.def);
  await sql`RESET maintenance_work_mem`;
  await sql`SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events))`;
  await sql`VACUUM ANALYZE events`;
  await sql`CHECKPOINT`;
  console.log(`${total.toLocaleString('en')} events generated in ${s(performance.now() - t)}`);

  const [before] = await sql<{ db: string; events: string }[]>`
    SELECT pg_database_size(current_database())::text AS db, pg_total_relation_size('events')::text AS events`;

  let stop = phase();
  let lsn = await walLsn();
  t = performance.now();
  await sql`CREATE TABLE events_copy_reference AS SELECT * FROM events`;
  const copy = { ms: performance.now() - t, other: stop(), wal: await walSince(lsn) };
  await sql`DROP TABLE events_copy_reference`;
  await sql`CHECKPOINT`;

  // The watcher: the migrating session's locks every 50 ms; disk (database, the bench's sort spill in
  // pgsql_tmp, pg_wal) and index-build progress every second, the peaks kept per phase.
  const { pid } = (await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`)[0]!;
  const t0 = performance.now();
  const since = (at: number) => (at - t0) / 1000;
  const locks = new Map<string, { first: number; last: number }>();
  const builds = new Map<string, { first: number; last: number; phases: Set<string> }>();
  type Peak = { db: number; tmp: number; tmpAt: number; wal: number; sum: number; freeMin: number };
  const peaks = new Map<string, Peak>();
  let current = 'before';
  let sampling = true;
  let tick = 0;
  const sampler = (async () => {
    while (sampling) {
      const at = since(performance.now());
      const rows = await watch<{ rel: string; mode: string }[]>`
        SELECT coalesce(c.relname, l.locktype) AS rel, l.mode
        FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
        WHERE l.pid = ${pid} AND l.granted AND (c.relname LIKE 'event%' OR c.relname = 'sources')`;
      for (const r of rows) {
        const k = `${r.rel}: ${r.mode}`;
        locks.set(k, { first: locks.get(k)?.first ?? at, last: at });
      }
      if (tick++ % 20 === 0) {
        notePostgres();
        const [d] = await watch<{ db: string; tmp: string; wal: string; builds: string[] }[]>`
          WITH ours AS (SELECT 'pgsql_tmp' || pid || '.' AS prefix FROM pg_stat_activity WHERE datname = current_database()),
          -- pg_ls_tmpdir() lists plain files only: a parallel sort's files are in a directory (….fileset).
          top AS (
            SELECT name, pg_stat_file('base/pgsql_tmp/' || name, true) AS st
            FROM pg_ls_dir('base/pgsql_tmp', true, false) AS name
            WHERE EXISTS (SELECT 1 FROM ours WHERE starts_with(name, ours.prefix)))
          SELECT pg_database_size(current_database())::text AS db,
            ((SELECT coalesce(sum((st).size), 0) FROM top WHERE NOT (st).isdir)
              + (SELECT coalesce(sum((pg_stat_file('base/pgsql_tmp/' || t.name || '/' || x, true)).size), 0)
                 FROM top t, pg_ls_dir('base/pgsql_tmp/' || t.name, true, false) AS x
                 WHERE (t.st).isdir))::text AS tmp,
            (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())::text AS wal,
            ARRAY(SELECT p.relid::regclass::text || ' ' || p.command || '|' || p.phase FROM pg_stat_progress_create_index p
              WHERE p.datname = current_database()) AS builds`;
        const db = Number(d!.db);
        const tmp = Number(d!.tmp);
        const wal = Number(d!.wal);
        const fs = statfsSync('/var/lib/postgresql');
        const p = peaks.get(current) ?? { db: 0, tmp: 0, tmpAt: 0, wal: 0, sum: 0, freeMin: Number.POSITIVE_INFINITY };
        peaks.set(current, {
          db: Math.max(p.db, db),
          tmp: Math.max(p.tmp, tmp),
          tmpAt: tmp > p.tmp ? at : p.tmpAt,
          wal: Math.max(p.wal, wal),
          sum: Math.max(p.sum, db + tmp + wal),
          freeMin: Math.min(p.freeMin, fs.bavail * fs.bsize),
        });
        for (const b of d!.builds) {
          const [name, ph] = b.split('|') as [string, string];
          const k = `${current}: ${name}`;
          const seen = builds.get(k) ?? { first: at, last: at, phases: new Set<string>() };
          seen.last = at;
          seen.phases.add(ph);
          builds.set(k, seen);
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  // The writer: one event every 50 ms, as ingest would, its wait timed (before, during, after).
  const waits: { at: number; ms: number }[] = [];
  let writing = true;
  let n = 0;
  const probe = (async () => {
    while (writing) {
      const w0 = performance.now();
      await writer`
        INSERT INTO events (source_id, message_id, type, event, received_at, timestamp, payload)
        VALUES ('s1', ${`probe-${n++}`}, 'track', 'Probe', now(), now(), '{}')`;
      waits.push({ at: w0, ms: performance.now() - w0 });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const diskNow = async () =>
    Number(
      (
        await sql<[{ bytes: string }]>`
          SELECT (pg_database_size(current_database()) + (SELECT sum(size) FROM pg_ls_waldir()))::text AS bytes`
      )[0].bytes,
    );
  const windows: { label: string; from: number; to: number; disk0: number; wal: number; other: number }[] = [];
  await new Promise((r) => setTimeout(r, 1000)); // the writer's wait before, for comparison

  // --prepared: docs/deploy/prepare-event-partitions.sql first, with psql as an operator would run it,
  // while the writer goes on.
  const prepSteps: string[] = [];
  if (values.prepared) {
    const disk0 = await diskNow();
    lsn = await walLsn();
    current = 'prepare';
    stop = phase();
    const from = performance.now();
    const { stdout: out } = await promisify(execFile)(
      'psql',
      [url.toString(), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', '\\timing on', '-e', '-f', PREPARE],
      { encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    windows.push({ label: 'prepare', from, to: performance.now(), disk0, wal: await walSince(lsn), other: stop() });
    // Each statement echoed, then its "Time: ..." line: the ones that took a second or more.
    let last = '';
    for (const line of out.split('\n')) {
      const m = /^Time: ([\d.]+) ms/.exec(line);
      if (m) {
        if (Number(m[1]) >= 1000) prepSteps.push(`${s(Number(m[1])).padStart(8)}  ${last.slice(0, 90)}`);
        last = '';
      } else if (!line.startsWith('--') && line.trim()) last = `${last} ${line.trim()}`.trim();
    }
    current = 'between';
    await new Promise((r) => setTimeout(r, 1000));
  }

  const { sql: text } = (await listMigrations()).find((m) => m.version === PARTITIONS)!;
  const steps: { text: string; ms: number; other: number }[] = [];
  const disk0 = await diskNow();
  lsn = await walLsn();
  current = 'migrate';
  const stopAll = phase();
  const from = performance.now();
  // What migrate() does, statement by statement to time each: one transaction, 0034 then the rest.
  await sql.begin(async (tx) => {
    for (const st of statements(text)) {
      stop = phase();
      const s0 = performance.now();
      await tx.unsafe(st);
      steps.push({ text: st, ms: performance.now() - s0, other: stop() });
    }
    await tx`INSERT INTO cairn_migrations (version, name) VALUES (${PARTITIONS}, 'event_partitions')`;
  });
  const to = performance.now();
  const other = stopAll();
  stop = phase();
  const applied = values['all-migrations'] ? await migrate(sql as unknown as Sql) : [];
  const rest = { ms: performance.now() - to, other: stop(), versions: applied };
  windows.push({ label: 'migrate', from, to, disk0, wal: await walSince(lsn), other });
  current = 'after';
  await new Promise((r) => setTimeout(r, 1000)); // the writer after
  sampling = false;
  writing = false;
  await Promise.all([sampler, probe]);
  await sql`CHECKPOINT`;
  const [after] = await sql<{ db: string; events: string; keys: string; rows: string; missing: string }[]>`
    SELECT pg_database_size(current_database())::text AS db,
      (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass)::text AS events,
      pg_total_relation_size('event_keys')::text AS keys,
      (SELECT count(*) FROM event_keys)::text AS rows,
      (SELECT count(*) FROM events e WHERE NOT EXISTS (
        SELECT 1 FROM event_keys k WHERE (k.source_id, k.message_id, k.event_id) = (e.source_id, e.message_id, e.id)))::text AS missing`;
  if (after!.missing !== '0') throw new Error(`${after!.missing} events have no key in event_keys`);

  const per = (x: number) => `${((x * 1_000_000) / total / 1000).toFixed(1)} s per 1M`;
  const ms = to - from;
  console.log(
    `\nmigration ${PARTITIONS}${values.prepared ? ' after the preparation' : ''} on ${total.toLocaleString('en')} events: ${s(ms)} (${per(ms)}); ${load(other)}`,
  );
  console.log(
    `  reference, one copy of the table (CREATE TABLE AS): ${s(copy.ms)} (${per(copy.ms)}), WAL ${mb(copy.wal)}; ${load(copy.other)}; migration/copy = ${(ms / copy.ms).toFixed(2)}`,
  );
  if (rest.versions.length)
    console.log(`  then migrate() for ${rest.versions.join(', ')}: ${s(rest.ms)}; ${load(rest.other)}`);
  console.log('  steps of 0034 (one transaction), those of 50 ms or more:');
  for (const st of steps.filter((x) => x.ms >= 50))
    console.log(`    ${s(st.ms).padStart(8)}  ${load(st.other)}  ${st.text.replace(/\s+/g, ' ').slice(0, 90)}`);
  console.log(
    `    ${s(steps.filter((x) => x.ms < 50).reduce((a, x) => a + x.ms, 0)).padStart(8)}  the other statements`,
  );
  if (prepSteps.length) {
    const w = windows[0]!;
    console.log(
      `  the preparation (psql, while the writer went on): ${s(w.to - w.from)}; ${load(w.other)}; its statements of 1 s or more:`,
    );
    for (const line of prepSteps) console.log(`    ${line}`);
  }
  console.log('  index builds (progress view, sampled every second; seconds from the first phase):');
  for (const [k, v] of builds)
    console.log(`    ${k}  ${v.first.toFixed(0)}-${v.last.toFixed(0)} s  (${[...v.phases].join(', ')})`);
  console.log(`  database before: ${mb(before!.db)} (events ${mb(before!.events)})`);
  for (const w of windows) {
    const p = peaks.get(w.label);
    const during = waits.filter((x) => x.at >= w.from && x.at <= w.to);
    const longest = during.reduce((a, x) => (x.ms > a.ms ? x : a), { at: w.from, ms: 0 });
    console.log(`  ${w.label}: ${s(w.to - w.from)}; WAL written ${mb(w.wal)}`);
    if (p)
      console.log(
        `    disk peak: database ${mb(p.db)} + sort spill ${mb(p.tmp)} (at ${p.tmpAt.toFixed(0)} s); database + spill + pg_wal at once ${mb(p.sum)}, ${mb(p.sum - w.disk0)} more than at the start (pg_wal is the cluster's, ${mb(p.wal)} at most); free disk at the lowest ${mb(p.freeMin)}`,
      );
    console.log(
      `    the writer (one INSERT every 50 ms): ${during.length} inserts began, the longest waited ${s(longest.ms)} (began at ${since(longest.at).toFixed(1)} s)`,
    );
  }
  const outside = waits.filter((x) => !windows.some((w) => x.at >= w.from && x.at <= w.to + rest.ms));
  console.log(
    `  the writer outside them: ${outside.length} inserts, the longest ${outside.reduce((a, x) => Math.max(a, x.ms), 0).toFixed(0)} ms`,
  );
  console.log(
    `  after: database ${mb(after!.db)}; events ${mb(after!.events)} + event_keys ${mb(after!.keys)} (${Number(after!.rows).toLocaleString('en')} keys, every event has its own)`,
  );
  console.log('  locks held by the migrating session (sampled every 50 ms; seconds from the first phase):');
  for (const [k, v] of [...locks].sort()) console.log(`    ${k}  ${v.first.toFixed(1)}-${v.last.toFixed(1)} s`);
} finally {
  await sql.end();
  await watch.end();
  await writer.end();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
}
