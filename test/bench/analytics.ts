// The analytics benchmark (`npm run bench:analytics`): stage 6's query API (server/src/api/analytics)
// on the real Postgres, in a database of its own (cairn_bench_analytics) holding 10,000,000 events of
// 1,000,000 profiles over 120 days, generated in SQL once and reused by later runs (`--fresh` rebuilds
// it). A real Cairn server is started on it and every query goes through HTTP: 8 trend tiles over 90
// days, a 5-step funnel over 30 days with a 7-day window, retention over 12 weekly cohorts, active
// users and paths; each after a warm-up, N runs one at a time, beside references measured in the same
// run (a bare SQL count, a bare HTTP round trip) and the machine's other load. A route that answers
// 404 is reported as not available, so the benchmark runs whatever exists. `--write` records the
// results in docs/benchmarks.md ("Analytics").
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '@cairn/server';
import { spawnServer } from '@cairn/server/testing';
import postgres from 'postgres';
import { eventIndexes, loadDataset, refreshRollups, storedDataset, tableSizes } from './analytics/data.ts';
import { freeBytes, openDatabase } from './analytics/database.ts';
import { refreshFirstTimes } from './analytics/first-times.ts';
import { httpEcho, type QueryResult, sqlReferences, timeQuery } from './analytics/measure.ts';
import { refreshPeriodPeople } from './analytics/period-people.ts';
import { benchQueries } from './analytics/queries.ts';
import { type Report, reportText, verdictOf, writeResults } from './analytics/report.ts';
import { ROLLED_UP, refreshTileRollups } from './analytics/rollups.ts';
import { refreshTraitRollups } from './analytics/trait-rollups.ts';
import { type Node, stopNode } from './identify/servers.ts';
import { describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';
import { QUIET_CORES } from './ingest/verdicts.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOCS = join(ROOT, 'docs', 'benchmarks.md');
/** Free disk asked for before generating, per million events (rows, indexes, WAL and room to spare). */
const BYTES_PER_MILLION_EVENTS = 1.5 * 2 ** 30;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
      fresh: { type: 'boolean', default: false },
      'setup-only': { type: 'boolean', default: false },
      database: { type: 'string', default: 'cairn_bench_analytics' },
      profiles: { type: 'string', default: '1000000' },
      events: { type: 'string', default: '10000000' },
      runs: { type: 'string', default: '20' },
      'slow-runs': { type: 'string', default: '5' },
      only: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  return {
    write: values.write,
    fresh: values.fresh,
    setupOnly: values['setup-only'],
    database: values.database,
    profiles: Number(values.profiles),
    events: Number(values.events),
    runs: Number(values.runs),
    slowRuns: Number(values['slow-runs']),
    only: values.only?.split(',').filter(Boolean),
    /** CAIRN_ANALYTICS_TIMEOUT_MS of the server (unset: the server's default). */
    timeoutMs: values['timeout-ms'],
  };
}

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

/** The commit measured, and the analytics files the working tree changes (shared repository). */
function codeMeasured(): string {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  try {
    const head = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'server/src/api/analytics', 'packages/core/src/analytics')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3).split('/').pop());
    return dirty.length ? `${head} with uncommitted changes to ${dirty.join(', ')}` : head;
  } catch {
    return 'unknown (no git)';
  }
}

/** A server on the benchmark's database (the first start on a database migrates it: minutes allowed). */
async function startServer(env: Record<string, string>): Promise<Node> {
  const server = await spawnServer({ ...env, CAIRN_ROLE: 'all' }, 600_000);
  return { server, writeKey: '' };
}

async function main(): Promise<number> {
  const opt = parseOptions();
  const base = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const loadBefore = loadavg();
  const db = await openDatabase(base, opt.database, opt.fresh);
  const sql = postgres(db.url, { max: 2, onnotice: () => {}, connection: { application_name: 'bench-analytics' } });
  let node: Node | undefined;
  try {
    const machine = await describeMachine(sql);
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}, shared_buffers ${machine.pgSettings.shared_buffers}`,
    );
    console.log(`         load average ${loadBefore.map((x) => x.toFixed(2)).join(', ')}; database ${db.name}`);

    // A first start migrates the database (and creates the demo source the events belong to); a reused
    // database is migrated too, so that the rollups filled below exist before they are filled.
    await stopNode(await startServer(db.env));
    let dataset = await storedDataset(sql, { profiles: opt.profiles, events: opt.events });
    let generated = false;
    if (dataset) {
      const ageDays = (Date.now() - Date.parse(dataset.end)) / 86_400_000;
      console.log(
        `data: reusing ${fmt(dataset.events)} events / ${fmt(dataset.profiles)} profiles generated ${ageDays.toFixed(1)} days ago in ${fmt(dataset.seconds.total)} s (--fresh to rebuild)`,
      );
    } else {
      if (!db.created) {
        // Another size or an older generator: start over on an empty database.
        console.log('data: the database holds another dataset (or none): making it again');
        await sql.end({ timeout: 5 });
        return await rerunFresh();
      }
      const free = await freeBytes(sql);
      const need = (opt.events / 1e6) * BYTES_PER_MILLION_EVENTS;
      console.log(`disk: ${(free.bytes / 2 ** 30).toFixed(1)} GiB free at ${free.path}`);
      if (free.bytes < need) {
        console.log(`not generating: ${(need / 2 ** 30).toFixed(1)} GiB free asked for ${fmt(opt.events)} events`);
        return 1;
      }
      console.log(`data: generating ${fmt(opt.profiles)} profiles and ~${fmt(opt.events)} events in SQL`);
      dataset = await loadDataset(sql, { profiles: opt.profiles, events: opt.events });
      generated = true;
      console.log(`  ${fmt(dataset.events)} events in ${fmt(dataset.seconds.total)} s`);
    }
    const rollupS = await refreshRollups(sql);
    if (rollupS === null) console.log('rollups: none in this schema (trend tiles scan events)');
    else if (rollupS > 0)
      console.log(`rollups: analytics_hourly_counts recounted from the events in ${rollupS.toFixed(1)} s`);
    else console.log('rollups: analytics_hourly_counts holds every event');
    const tileRollups = await refreshTileRollups(sql);
    for (const line of tileRollups ?? []) console.log(`rollups: ${line}`);
    for (const line of (await refreshFirstTimes(sql)) ?? []) console.log(`rollups: ${line}`);
    for (const line of (await refreshPeriodPeople(sql)) ?? []) console.log(`rollups: ${line}`);
    for (const line of (await refreshTraitRollups(sql)) ?? []) console.log(`rollups: ${line}`);
    if (tileRollups)
      console.log(
        `rollups: people per hour; ${ROLLED_UP.map((r) => `${r.event}.${r.property}${r.byValue ? ' (by value)' : ''}`).join(', ')} rolled up`,
      );
    const tables = await tableSizes(sql);
    const idx = await eventIndexes(sql);
    for (const t of tables)
      console.log(
        `  ${t.name}: ${fmt(t.rows)} rows, heap ${fmt(t.heap / 2 ** 20)} MiB, indexes ${fmt(t.indexes / 2 ** 20)} MiB`,
      );
    console.log(`  events indexes: ${idx.map((i) => `${i.name} ${fmt(i.bytes / 2 ** 20)} MiB`).join(', ')}`);
    if (opt.setupOnly) return 0;

    const end = new Date(dataset.end);
    const timeoutMs = opt.timeoutMs ?? String(DEFAULTS.analyticsTimeoutMs);
    node = await startServer({ ...db.env, CAIRN_ANALYTICS_TIMEOUT_MS: timeoutMs });
    console.log(`server: CAIRN_ROLE=all, CAIRN_ANALYTICS_TIMEOUT_MS=${timeoutMs}`);
    const otherCores = await otherLoad(3000, db.name);
    console.log(`         other processes keep ${otherCores.toFixed(2)} cores busy before the queries`);
    if (otherCores > QUIET_CORES) console.log('WARNING: the machine is not quiet; the numbers below overstate latency');
    const speedBefore = speedIndex();
    console.log(`         speed index ${speedBefore.toFixed(0)} (fixed JSON workload, thousands of rounds/s)`);
    const code = codeMeasured();
    console.log(`code: ${code}`);

    console.log('references');
    const references = [await httpEcho(node.server.url, opt.runs), ...(await sqlReferences(sql, end, opt.slowRuns))];
    for (const r of references)
      console.log(
        `  ${r.name}: p50 ${r.stats.p50.toFixed(1)} ms, p95 ${r.stats.p95.toFixed(1)} ms${r.detail ? ` (${r.detail})` : ''}`,
      );

    const results: QueryResult[] = [];
    const queries = benchQueries(end, { runs: opt.runs, slowRuns: opt.slowRuns }).filter(
      (q) => !opt.only || opt.only.includes(q.route),
    );
    for (const q of queries) {
      const seen = node.server.output().length;
      const r = await timeQuery(node.server.url, node.server.proc.pid, db.name, q);
      results.push(r);
      if (r.outcome === 'missing') console.log(`${q.route}: ${q.name}: not available (404)`);
      else if (r.outcome === 'refused') {
        console.log(`${q.route}: ${q.name}: answered ${r.status}: ${r.reason}`);
        // The server's own account of a failure (its last error lines).
        if ((r.status ?? 0) >= 500)
          for (const line of node.server
            .output()
            .slice(seen)
            .split('\n')
            .filter((l) => /error/i.test(l))
            .slice(-3))
            console.log(`  server: ${line.slice(0, 400)}`);
      } else
        console.log(
          `${q.route}: ${q.name}: warm-up ${fmt(r.warmupMs!)} ms; ${r.client!.n} runs p50 ${fmt(r.client!.p50)} ms, p95 ${fmt(r.client!.p95)} ms, max ${fmt(r.client!.max)} ms${r.server ? ` (server ${fmt(r.server.p50)} ms)` : ''}; other ${r.cpu!.other.toFixed(2)} cores; ${r.summary}`,
        );
    }
    const speedAfter = speedIndex();
    const verdicts = results.map(verdictOf).filter((v): v is string => !!v);
    const notes = [
      'The dataset is generated in SQL (test/bench/analytics/data.ts), not sent through the pipeline: sessions of 1-3 page views, then the funnel with drop-off (65% view a product, then 45%, 60%, 75%, 85% go on), 30% another event; a few heavy people, most with a handful of sessions, rarer as time goes on after each person’s first visit; 10% of sessions return up to 3 days later to check out.',
      'Ranges end at the end of the generated history (not at the time of the run), so a reused dataset gives the same queries.',
      `The server ran with CAIRN_ROLE=all and CAIRN_ANALYTICS_TIMEOUT_MS=${timeoutMs}${opt.timeoutMs ? '' : ' (its default)'}: a query past it answers 422 query_too_broad.`,
    ];
    if (otherCores > QUIET_CORES)
      notes.push(`Other processes used ${otherCores.toFixed(2)} cores before the queries: the machine was not quiet.`);
    const report: Report = {
      date: `${new Date().toISOString().slice(0, 16).replace('T', ', ')} UTC`,
      command: `npm run bench:analytics${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine: { ...machine, speedIndex: [speedBefore, speedAfter] },
      loadBefore,
      otherCores,
      code,
      database: db.name,
      dataset,
      generated,
      tables,
      eventIndexes: idx,
      references,
      results,
      verdicts,
      notes,
    };
    console.log(`\n${reportText(report)}\n`);
    if (opt.write) {
      writeResults(DOCS, report);
      console.log(`wrote ${DOCS}`);
    }
    return 0;
  } finally {
    await stopNode(node);
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

/** Runs the benchmark again with --fresh (the database held another dataset). */
async function rerunFresh(): Promise<number> {
  if (!process.argv.includes('--fresh')) process.argv.push('--fresh');
  return main();
}

process.exitCode = await main();
