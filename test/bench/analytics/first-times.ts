// analytics_first_times (migration 0041) on bench:analytics's SQL-generated dataset, which no pipeline kept:
// refreshFirstTimes fills it with the migration's own INSERT when it is empty. Run alone, on a benchmark
// database, it compares the first-time retention statement with and without the table in one run (the
// bench's recurring retention statement beside them as a reference) and times the pipeline's upkeep:
//   bash scripts/with-node.sh tsx test/bench/analytics/first-times.ts --database cairn_bench_first [--runs 3]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Fragment,
  type RetentionPassRow,
  type RetentionQuery,
  retentionPassSql,
  retentionRowsOfPass,
} from '@cairn/core';
import postgres from 'postgres';
import { firstTimesCohort } from '../../../server/src/api/analytics/retention-read.ts';
import type { Tx } from '../../../server/src/db/index.ts';
import { addFirstTimesOf, followFirstTimes } from '../../../server/src/pipeline/measure/rollup-first-times.ts';
import { benchQueries } from './queries.ts';

const MIGRATION = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../../server/src/db/migrations/0041_analytics_first_times.sql',
);

/**
 * Fills analytics_first_times from the events when it is empty, with migration 0041's INSERT. Returns what
 * it did, or null when the schema has no such table.
 *
 * @example
 * for (const line of (await refreshFirstTimes(sql)) ?? []) console.log(`rollups: ${line}`);
 */
export async function refreshFirstTimes(sql: postgres.Sql): Promise<string[] | null> {
  const [t] = await sql<{ rel: string | null }[]>`SELECT to_regclass('analytics_first_times')::text AS rel`;
  if (!t?.rel) return null;
  const [p] = await sql<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM analytics_first_times) AS any`;
  if (p?.any) return [];
  const insert = readFileSync(MIGRATION, 'utf8').slice(
    readFileSync(MIGRATION, 'utf8').indexOf('INSERT INTO analytics_first_times'),
  );
  const t0 = performance.now();
  await sql.unsafe(insert);
  await sql`VACUUM ANALYZE analytics_first_times`;
  const [n] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM analytics_first_times`;
  return [
    `analytics_first_times filled from the events (${n!.n.toLocaleString('en-US')} rows) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  ];
}

async function timeRead(sql: postgres.Sql, q: Fragment, runs: number) {
  const { text, values } = q.render();
  const times: number[] = [];
  let rows: unknown[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const got: unknown[] = [];
    for await (const chunk of sql.unsafe(text, values as never[]).cursor(5_000)) got.push(...chunk);
    if (i > 0) times.push(performance.now() - t0); // run 0 warms the cache
    rows = got;
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, rows };
}

const canon = (rows: unknown[]) =>
  JSON.stringify(rows.map((r) => JSON.stringify(r)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));

/** Times the upkeep in a rolled-back transaction: per batch of events, and per re-pointed profile. */
async function upkeep(sql: postgres.Sql, runs: number): Promise<string[]> {
  const ids = (
    await sql<{ id: string }[]>`
      SELECT id::text FROM events WHERE profile_id IS NOT NULL ORDER BY id DESC LIMIT 1000`
  ).map((r) => r.id);
  const profiles = (
    await sql<{ p: string }[]>`
      SELECT DISTINCT profile_id::text AS p FROM events WHERE id = ANY(${ids}::bigint[]) LIMIT 100`
  ).map((r) => r.p);
  const timed = async (fn: (tx: Tx) => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i <= runs; i++) {
      await sql
        .begin(async (tx) => {
          const t0 = performance.now();
          await fn(tx as unknown as Tx);
          if (i > 0) times.push(performance.now() - t0);
          throw new Error('rollback');
        })
        .catch((e: Error) => {
          if (e.message !== 'rollback') throw e;
        });
    }
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  };
  // Same-run reference: the attaching UPDATE identify already runs on such a batch.
  const attach = await timed(
    (tx) => tx`UPDATE events SET processed_at = processed_at WHERE id = ANY(${ids}::bigint[])` as never,
  );
  const add = await timed((tx) => addFirstTimesOf(tx, ids));
  const follow = await timed((tx) => followFirstTimes(tx, { from: profiles, to: profiles }));
  return [
    `upkeep, ${ids.length} attached events (newest): addFirstTimesOf ${add.toFixed(1)} ms (${((add / ids.length) * 1000).toFixed(0)} µs/event); reference: identify's attaching UPDATE of the same events ${attach.toFixed(1)} ms`,
    `upkeep, a re-point recomputing ${profiles.length} profiles from their events: followFirstTimes ${follow.toFixed(1)} ms (${(follow / profiles.length).toFixed(2)} ms/profile)`,
  ];
}

async function compare(database: string, runs: number): Promise<void> {
  const base = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const url = new URL(base);
  url.pathname = `/${database}`;
  const sql = postgres(url.toString(), { max: 2, onnotice: () => {} });
  try {
    const [ds] = await sql<{ c: string }[]>`
      SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = current_database()`;
    const end = new Date(JSON.parse(ds!.c).end);
    for (const line of (await refreshFirstTimes(sql)) ?? ['no analytics_first_times: migrate first']) console.log(line);
    const [load] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()`;
    console.log(`other active Postgres backends: ${load!.n}`);
    const [first, recurring] = benchQueries(end, { runs: 1, slowRuns: 1 })
      .filter((q) => q.route === 'retention')
      .map((q) => q.body as RetentionQuery);
    const scan = await timeRead(sql, retentionPassSql(first!, { now: end }), runs);
    const table = await timeRead(
      sql,
      retentionPassSql(first!, { now: end, firstTimes: firstTimesCohort(first!) }),
      runs,
    );
    const ref = await timeRead(sql, retentionPassSql(recurring!, { now: end }), runs);
    // The same start and return events as the first-time query, recurring: the events it must read anyway.
    const same = await timeRead(sql, retentionPassSql({ ...first!, mode: 'recurring' }, { now: end }), runs);
    console.log(`retention first_time, cohorts from a scan of events (before): ${scan.median.toFixed(0)} ms`);
    console.log(`retention first_time, cohorts from analytics_first_times (after): ${table.median.toFixed(0)} ms`);
    console.log(`retention recurring, the bench's query (same-run reference): ${ref.median.toFixed(0)} ms`);
    console.log(
      `retention recurring, the first-time query's events (same-run reference): ${same.median.toFixed(0)} ms`,
    );
    const rowsOf = (rows: unknown[]) => canon(retentionRowsOfPass(first!, rows as RetentionPassRow[]));
    console.log(`same table both ways: ${rowsOf(scan.rows) === rowsOf(table.rows)} (${table.rows.length} pass rows)`);
    for (const line of await upkeep(sql, runs)) console.log(line);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { database: { type: 'string', default: 'cairn_bench_first' }, runs: { type: 'string', default: '3' } },
  });
  await compare(values.database!, Number(values.runs));
}
