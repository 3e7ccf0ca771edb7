// The ingest benchmark (`npm run bench:ingest`): Cairn as a separate process on a fresh database of
// the real Postgres, driven over HTTP (batched, single events, fixed rate), then the physical
// reference (the same rows inserted straight into Postgres), then a count of what was stored.
// See docs/benchmarks.md for what each phase does; `--write` records the results there.
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '@cairn/server';
import { createTestDatabase, type ServerProcess, spawnServer, TEST_ADMIN_KEY } from '@cairn/server/testing';
import postgres from 'postgres';
import { commitMeter } from './ingest/commits.ts';
import { createEventFactory } from './ingest/events.ts';
import { closedLoop, type Job, openLoop, percentile, post, type RunResult, type Target } from './ingest/load.ts';
import { type CpuUse, cpuMeter, describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';
import { createRawTable, type RawMethod, rawLoad, sampleRows } from './ingest/raw.ts';
import { type PhaseResult, type Report, resultsTable, verdictList, writeResults } from './ingest/report.ts';
import { judge, QUIET_CORES } from './ingest/verdicts.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'benchmarks.md');
const BATCH_SIZE = 100;
const OPEN_LOOP_MAX_CONNECTIONS = 256;
const RAW_NAMES: Record<RawMethod, string> = {
  insert: `raw INSERT unnest (${BATCH_SIZE} rows)`,
  copy: `raw COPY (${BATCH_SIZE} rows)`,
  'copy-dedup': `raw COPY+dedup (${BATCH_SIZE} rows)`,
};

function parseOptions() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
      quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
      duration: { type: 'string', default: process.env.BENCH_DURATION_S },
      warmup: { type: 'string' },
      batch: { type: 'string', default: '4,16,32' },
      single: { type: 'string', default: '16,64,128' },
      rate: { type: 'string', default: '1000' },
      role: { type: 'string', default: process.env.BENCH_ROLE ?? 'ingest' },
      'wait-quiet': { type: 'string', default: process.env.BENCH_WAIT_QUIET_S ?? '0' },
      'retry-noisy': { type: 'string', default: process.env.BENCH_RETRY_NOISY ?? '2' },
      'no-copy': { type: 'boolean', default: false },
      // Events sent in batches right before a fixed-rate single-event window, so the pipeline works
      // through them while the tracking API is measured (role all only); 0 = no such phase.
      backlog: { type: 'string', default: process.env.BENCH_BACKLOG ?? '0' },
      // Where the all-in-one server runs its pipeline (CAIRN_PIPELINE): its own process, or inline.
      pipeline: { type: 'string', default: process.env.CAIRN_PIPELINE ?? 'process' },
      // The bare node:http reference for single events (bare-http.ts); --no-bare skips it.
      'no-bare': { type: 'boolean', default: false },
    },
  });
  const list = (s: string) =>
    s
      .split(',')
      .filter((x) => x.trim() !== '')
      .map((x) => Number.parseInt(x, 10));
  const durationS = Number(values.duration ?? (values.quick ? 2 : 10));
  if (values.role !== 'ingest' && values.role !== 'all') throw new Error('--role must be ingest or all');
  if (values.pipeline !== 'process' && values.pipeline !== 'inline')
    throw new Error('--pipeline must be process or inline');
  return {
    write: values.write,
    durationMs: durationS * 1000,
    warmupMs: Number(values.warmup ?? (values.quick ? 1 : 3)) * 1000,
    batch: list(values.batch),
    single: list(values.single),
    rate: Number(values.rate),
    role: values.role,
    copy: !values['no-copy'],
    waitQuietMs: Number(values['wait-quiet']) * 1000,
    retryNoisy: Number(values['retry-noisy']),
    backlog: Number(values.backlog),
    pipeline: values.pipeline,
    bare: !values['no-bare'],
  };
}

type Options = ReturnType<typeof parseOptions>;

/**
 * Runs a phase, and again (up to `--retry-noisy` times) while other processes take a noticeable
 * share of the CPU; keeps the quietest attempt (not the fastest), so a shared machine skews less.
 */
async function quietest(opt: Options, attempt: () => Promise<PhaseResult>): Promise<PhaseResult> {
  let best = await attempt();
  for (let i = 1; i <= opt.retryNoisy && best.cpu.other > QUIET_CORES; i++) {
    console.log(`    other processes used ${best.cpu.other.toFixed(2)} cores: repeating (${i} of ${opt.retryNoisy})`);
    const p = await attempt();
    if (p.cpu.other < best.cpu.other) best = p;
  }
  return best;
}

function summarize(name: string, load: string, r: RunResult, cpu: CpuUse): PhaseResult {
  const sorted = r.latencies.slice().sort();
  const errors = [...r.errors.values()].reduce((a, b) => a + b, 0);
  for (const [what, n] of r.errors) console.log(`    ${n} x ${what}`);
  return {
    name,
    load,
    requests: r.requests,
    events: r.ackedEvents,
    eventsPerSec: r.ackedEvents / r.seconds,
    requestsPerSec: r.ok / r.seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    errors,
    cpu,
  };
}

function progress(p: PhaseResult): void {
  const c = p.commits;
  console.log(
    `  ${p.name.padEnd(28)} ${p.load.padEnd(12)} ${Math.round(p.eventsPerSec).toString().padStart(7)} events/s ` +
      `${Math.round(p.requestsPerSec).toString().padStart(6)} req/s  p50 ${p.p50.toFixed(1)} ms  p99 ${p.p99.toFixed(1)} ms` +
      `  errors ${p.errors}  cpu cairn ${p.cpu.cairn.toFixed(2)} pg ${p.cpu.postgres.toFixed(2)} loadgen ${p.cpu.loadgen.toFixed(2)} other ${p.cpu.other.toFixed(2)}` +
      (c
        ? `  commits ${Math.round(c.perSec)}/s x ${c.rowsPerCommit.toFixed(0)} rows, ${c.msPerCommit.toFixed(1)} ms`
        : ''),
  );
}

async function writeKeyOf(server: ServerProcess): Promise<string> {
  const res = await fetch(`${server.url}/api/sources`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
  if (!res.ok) throw new Error(`GET /api/sources answered ${res.status}: ${await res.text()}`);
  const { data } = (await res.json()) as { data: { id: string; writeKey: string }[] };
  const demo = data.find((s) => s.id === 'src_demo');
  if (!demo) throw new Error('the demo source src_demo is missing (is CAIRN_DEMO off?)');
  return demo.writeKey;
}

async function stopServer(server: ServerProcess): Promise<void> {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return;
  server.proc.kill('SIGTERM');
  const timer = setTimeout(() => server.proc.kill('SIGKILL'), 30_000);
  await server.exited;
  clearTimeout(timer);
}

/** Drives Cairn over HTTP; returns the phases and the number of events acknowledged with 200. */
async function httpPhases(opt: Options, server: ServerProcess, writeKey: string, database: string) {
  const url = new URL(server.url);
  const target: Target = {
    host: url.hostname,
    port: Number(url.port),
    headers: {
      Authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`,
      'Content-Type': 'application/json',
    },
  };
  const events = createEventFactory();
  const batchJob = (): Job => ({ path: '/v1/batch', body: events.batch(BATCH_SIZE), events: BATCH_SIZE });
  const singleJob = (): Job => ({ path: '/v1/track', body: events.single(), events: 1 });
  const phases: PhaseResult[] = [];
  let acked = 0;
  let failedRequests = 0;
  const measure = async (name: string, load: string, run: () => Promise<RunResult>, record = true) => {
    const attempt = async () => {
      const commits = await commitMeter(server.url);
      const stop = cpuMeter(server.proc.pid, database);
      const r = await run();
      const p = summarize(name, load, r, stop());
      p.commits = await commits();
      acked += r.ackedEvents;
      failedRequests += p.errors;
      progress(p);
      return p;
    };
    if (record) phases.push(await quietest(opt, attempt));
    else await attempt();
  };

  console.log(`warm-up (${opt.warmupMs / 1000} s batched + ${opt.warmupMs / 1000} s single, not in the table)`);
  const warm = { concurrency: 16, durationMs: opt.warmupMs };
  await measure('warm-up batch', 'c=16', () => closedLoop(target, { ...warm, next: batchJob }), false);
  await measure('warm-up single', 'c=16', () => closedLoop(target, { ...warm, next: singleJob }), false);

  console.log(`batched: /v1/batch with ${BATCH_SIZE} events per request, ${opt.durationMs / 1000} s each`);
  for (const c of opt.batch) {
    const run = () => closedLoop(target, { concurrency: c, durationMs: opt.durationMs, next: batchJob });
    await measure(`Cairn /v1/batch (${BATCH_SIZE} ev)`, `c=${c}`, run);
  }
  console.log('single events: /v1/track, one event per request');
  for (const c of opt.single) {
    const run = () => closedLoop(target, { concurrency: c, durationMs: opt.durationMs, next: singleJob });
    await measure('Cairn /v1/track', `c=${c}`, run);
  }
  if (opt.rate > 0) {
    console.log(`fixed rate: ${opt.rate} /v1/track requests per second (open loop)`);
    await measure('Cairn /v1/track open loop', `${opt.rate.toLocaleString('en-US')} req/s`, async () => {
      const r = await openLoop(target, {
        rate: opt.rate,
        durationMs: opt.durationMs,
        maxConnections: OPEN_LOOP_MAX_CONNECTIONS,
        next: singleJob,
      });
      if (r.maxLagMs > 20)
        console.log(`    note: the load generator fell up to ${r.maxLagMs.toFixed(0)} ms behind schedule`);
      return r;
    });
  }
  if (opt.backlog > 0) {
    console.log(
      `backlog: ${opt.backlog.toLocaleString('en-US')} events sent in batches, then ${opt.rate} /v1/track requests per second while the pipeline works through them`,
    );
    const backlog = await sendBacklog(target, opt.backlog, batchJob);
    acked += backlog;
    const behind = await unprocessed(database);
    await measure('Cairn /v1/track open loop, backlog', `${opt.rate.toLocaleString('en-US')} req/s`, () =>
      openLoop(target, {
        rate: opt.rate,
        durationMs: opt.durationMs,
        maxConnections: OPEN_LOOP_MAX_CONNECTIONS,
        next: singleJob,
      }),
    );
    const left = await unprocessed(database);
    console.log(
      `    the pipeline had ${behind.toLocaleString('en-US')} events to process when the window opened and ${left.toLocaleString('en-US')} when it closed` +
        (left === 0 ? ' (it caught up inside the window: part of it ran without a backlog)' : ''),
    );
    phases[phases.length - 1]!.load += `, ${Math.round(behind / 1000)}k→${Math.round(left / 1000)}k behind`;
  }
  return { phases, acked, failedRequests, averageEventBytes: events.averageEventBytes() };
}

/** Sends `count` events in /v1/batch requests (8 at a time); returns how many were acknowledged. */
async function sendBacklog(target: Target, count: number, next: () => Job): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let left = Math.ceil(count / BATCH_SIZE);
  let acked = 0;
  const started = performance.now();
  const client = async () => {
    for (; left > 0; left--) {
      const job = next();
      const r = await post(agent, target, job);
      if (r.status === 200) acked += job.events;
    }
  };
  await Promise.all(Array.from({ length: 8 }, client));
  agent.destroy();
  console.log(
    `    ${acked.toLocaleString('en-US')} events acknowledged in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return acked;
}

/** Events stored but not yet attached to a profile by the pipeline (its backlog). */
async function unprocessed(database: string): Promise<number> {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${database}`;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    const [{ n }] = await sql<[{ n: number }]>`SELECT count(*)::int AS n FROM events WHERE profile_id IS NULL`;
    return n;
  } finally {
    await sql.end();
  }
}

/** The bare node:http reference (bare-http.ts) in a process of its own, at the single-event concurrencies. */
async function barePhases(opt: Options, database: string): Promise<PhaseResult[]> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), 'ingest', 'bare-http.ts')],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        const m = /listening on (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`bare-http exited with ${code}`)));
    });
    const events = createEventFactory(7);
    const target: Target = {
      host: '127.0.0.1',
      port,
      headers: {
        Authorization: `Basic ${Buffer.from('bench:').toString('base64')}`,
        'Content-Type': 'application/json',
      },
    };
    const next = (): Job => ({ path: '/v1/track', body: events.single(), events: 1 });
    console.log('bare node:http reference: read, parse and answer the same /v1/track requests (no database)');
    await closedLoop(target, { concurrency: 16, durationMs: opt.warmupMs, next });
    const phases: PhaseResult[] = [];
    for (const c of opt.single) {
      const attempt = async () => {
        const stop = cpuMeter(proc.pid, database);
        const r = await closedLoop(target, { concurrency: c, durationMs: opt.durationMs, next });
        const p = summarize('bare node:http /v1/track', `c=${c}`, r, stop());
        progress(p);
        return p;
      };
      phases.push(await quietest(opt, attempt));
    }
    return phases;
  } finally {
    proc.kill('SIGTERM');
  }
}

/** The physical reference: the same rows straight into Postgres (INSERT, and unless --no-copy, COPY both ways). */
async function rawPhases(opt: Options, sql: postgres.Sql, url: string, database: string): Promise<PhaseResult[]> {
  const sample = await sampleRows(sql, 1000);
  if (sample.length === 0) throw new Error('no events stored: nothing to replay for the raw reference');
  const methods: RawMethod[] = opt.copy ? ['insert', 'copy', 'copy-dedup'] : ['insert'];
  const phases: PhaseResult[] = [];
  for (const method of methods) {
    const table = `bench_raw_${method.replace('-', '_')}`;
    await createRawTable(sql, table);
    console.log(`physical reference: ${RAW_NAMES[method]} into ${table}`);
    let written = 0;
    for (const c of opt.batch) {
      const attempt = async () => {
        const r = await rawLoad(url, {
          method,
          table,
          sample,
          concurrency: c,
          durationMs: opt.durationMs,
          rowsPerStatement: BATCH_SIZE,
          measure: () => cpuMeter(undefined, database),
        });
        const sorted = r.latencies.slice().sort();
        const p: PhaseResult = {
          name: RAW_NAMES[method],
          load: `c=${c}`,
          requests: r.statements,
          events: r.rows,
          eventsPerSec: r.rows / r.seconds,
          requestsPerSec: r.statements / r.seconds,
          p50: percentile(sorted, 50),
          p95: percentile(sorted, 95),
          p99: percentile(sorted, 99),
          errors: 0,
          cpu: r.measured,
        };
        written += r.rows;
        progress(p);
        return p;
      };
      phases.push(await quietest(opt, attempt));
    }
    const [{ n }] = await sql<[{ n: number }]>`SELECT count(*)::int AS n FROM ${sql(table)}`;
    if (n !== written) throw new Error(`${table} holds ${n} rows but ${written} were written`);
  }
  return phases;
}

/** Waits (up to --wait-quiet) until other processes leave the machine alone, and says how busy it is. */
async function waitForQuiet(opt: Options, database: string): Promise<void> {
  let background = await otherLoad(2000, database);
  for (const until = Date.now() + opt.waitQuietMs; background > QUIET_CORES && Date.now() < until; ) {
    console.log(`         other processes keep ${background.toFixed(2)} cores busy; waiting for a quiet machine`);
    background = await otherLoad(5000, database);
  }
  console.log(`         other processes keep ${background.toFixed(2)} cores busy before the run`);
  if (background > QUIET_CORES) {
    console.log('WARNING: the machine is not quiet; the numbers below will understate Cairn and Postgres');
  }
}

async function main(): Promise<number> {
  const opt = parseOptions();
  process.env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const db = await createTestDatabase('bench-ingest', 'postgres');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const database = new URL(db.url!).pathname.slice(1);
  let server: ServerProcess | undefined;
  try {
    const machine = await describeMachine(sql);
    const settings = {
      CAIRN_ROLE: opt.role,
      ...(opt.role === 'all' ? { CAIRN_PIPELINE: opt.pipeline } : {}),
      CAIRN_DB_POOL_MAX: process.env.CAIRN_DB_POOL_MAX || String(DEFAULTS.poolMax),
      CAIRN_COMMIT_MAX_ROWS: process.env.CAIRN_COMMIT_MAX_ROWS || String(DEFAULTS.commitMaxRows),
      CAIRN_COMMIT_CONCURRENCY: process.env.CAIRN_COMMIT_CONCURRENCY || String(DEFAULTS.commitConcurrency),
    };
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    console.log(`         the load generator, Cairn and Postgres share these ${machine.cores} cores`);
    await waitForQuiet(opt, database);
    const speedBefore = speedIndex();
    console.log(`         speed index ${speedBefore.toFixed(0)} (fixed JSON workload, thousands of rounds/s)`);
    console.log(
      `server:  ${Object.entries(settings)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );

    // CAIRN_LOG stays at info: spawnServer waits for the "listening on" line, and info logs nothing per request.
    const extra: Record<string, string> = { CAIRN_ROLE: opt.role, CAIRN_PIPELINE: opt.pipeline };
    if (process.env.BENCH_SERVER_NODE_OPTIONS) extra.NODE_OPTIONS = process.env.BENCH_SERVER_NODE_OPTIONS;
    server = await spawnServer({ ...db.env, ...extra });
    const http = await httpPhases(opt, server, await writeKeyOf(server), database);

    const [{ n: stored }] = await sql<[{ n: number }]>`SELECT count(*)::int AS n FROM events`;
    const integrityOk = stored === http.acked;
    const integrity = integrityOk
      ? `the events table holds ${stored.toLocaleString('en-US')} rows = the ${http.acked.toLocaleString('en-US')} events acknowledged with 200 (nothing lost, nothing doubled); ${http.failedRequests} requests failed.`
      : `MISMATCH: ${http.acked} events acknowledged with 200, ${stored} rows stored; ${http.failedRequests} requests failed.`;
    console.log(`integrity: ${integrity}`);
    await stopServer(server);
    const serverErrors = server
      .output()
      .split('\n')
      .filter((line) => /error/i.test(line));
    for (const line of serverErrors.slice(0, 20)) console.log(`server: ${line}`);

    const bare = opt.bare && opt.single.length > 0 ? await barePhases(opt, database) : [];
    const raw = await rawPhases(opt, sql, db.url!, database);
    const speedAfter = speedIndex();
    console.log(`speed index after the run: ${speedAfter.toFixed(0)} (before: ${speedBefore.toFixed(0)})`);
    const phases = [...http.phases, ...bare, ...raw];
    const { verdicts: v, notes } = judge(phases, opt);
    const report: Report = {
      date: new Date().toISOString().slice(0, 10),
      machine: { ...machine, speedIndex: [speedBefore, speedAfter] },
      settings,
      averageEventBytes: http.averageEventBytes,
      durationS: opt.durationMs / 1000,
      phases,
      verdicts: v,
      integrity,
      notes: [
        ...notes,
        `Phases during which other processes used more than ${QUIET_CORES} cores were repeated up to ${opt.retryNoisy} times; the quietest attempt is shown.`,
      ],
    };
    console.log(`\n${resultsTable(phases)}\n\n${verdictList(v)}\n${notes.map((n) => `  ${n}`).join('\n')}`);
    if (opt.write) {
      writeResults(DOCS, report);
      console.log(`\nwrote ${DOCS}`);
    }
    return integrityOk && http.failedRequests === 0 ? 0 : 1;
  } finally {
    if (server) await stopServer(server);
    await sql.end({ timeout: 5 });
    await db.drop();
  }
}

process.exitCode = await main();
