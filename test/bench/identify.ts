// The identity resolution benchmark (`npm run bench:identify`): stage 2 (server/src/pipeline/identify)
// on a fresh database of the real Postgres holding 100,000 identified people (plus anonymous visitors).
// A mix of 80% known, 15% new anonymous and 5% merging events is stored by an ingest node, then
// drained by a worker process at each worker concurrency (throughput); then the same mix is sent at a
// fixed rate to one server running ingest and workers (latency from received_at to processed_at).
// See docs/benchmarks.md for what each phase does; `--write` records the results there.
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '@cairn/server';
import { createTestDatabase } from '@cairn/server/testing';
import postgres from 'postgres';
import { createPii } from '../../server/src/pii/index.ts';
import { type BulkStats, bulkLoad } from './identify/bulk.ts';
import { compareStates, stageTwoState } from './identify/check.ts';
import {
  type ClientEvent,
  DAY,
  EventShapes,
  makePeople,
  makeVisitors,
  type Person,
  personHistory,
  seeded,
  type Visitor,
  visitorHistory,
} from './identify/people.ts';
import {
  type DrainResult,
  drainTable,
  type LatencyResult,
  type LatencyRow,
  latencyTable,
  type Report,
  reportText,
  type SetupResult,
  writeResults,
} from './identify/report.ts';
import {
  type IdentifyMetrics,
  identifyMetrics,
  idRange,
  type Node,
  nudgeWorkers,
  sendBatches,
  startNode,
  stopNode,
  waitProcessed,
} from './identify/servers.ts';
import { KIND_LETTER, type VisitorPool, Workload } from './identify/workload.ts';
import { openLoop, percentile, type Target } from './ingest/load.ts';
import { type CpuUse, cpuMeter, describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';
import { QUIET_CORES } from './ingest/verdicts.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'benchmarks.md');
/** Events per /v1/batch request when storing a backlog (and the setup through the pipeline). */
const BATCH = 100;
const INGEST_CONCURRENCY = 4;
/** Events per request of the small-jobs backlog (sent one request at a time: one ingest job each). */
const SMALL_REQUEST = 5;
const DRAIN_TIMEOUT_MS = 15 * 60_000;
/** The latency phase's default rate, as a share of the small-jobs drain's events/s: a steady load within capacity. */
const AUTO_RATE_SHARE = 1 / 3;
/** Events sent to the latency phase's fresh server before the measured ones. */
const LATENCY_WARMUP_MS = 5000;
/** How often a drain wakes the workers as new ingest jobs would (see nudgeWorkers). */
const NUDGE_MS = 100;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
      quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
      people: { type: 'string' },
      visitors: { type: 'string' },
      events: { type: 'string' },
      'small-jobs': { type: 'string' },
      workers: { type: 'string', default: process.env.BENCH_WORKERS ?? `${DEFAULTS.identifyConcurrency},4` },
      rate: { type: 'string', default: 'auto' },
      latency: { type: 'string' },
      setup: { type: 'string', default: process.env.BENCH_SETUP ?? 'bulk' },
      check: { type: 'boolean', default: true },
      'no-check': { type: 'boolean', default: false },
      'no-nudge': { type: 'boolean', default: process.env.BENCH_NUDGE === '0' },
      keep: { type: 'boolean', default: false },
      'after-setup-sql': { type: 'string', default: process.env.BENCH_AFTER_SETUP_SQL ?? '' },
      'wait-quiet': { type: 'string', default: process.env.BENCH_WAIT_QUIET_S ?? '0' },
    },
  });
  const quick = values.quick;
  const num = (v: string | undefined, full: number, small: number) => Number(v ?? (quick ? small : full));
  if (values.setup !== 'bulk' && values.setup !== 'pipeline') throw new Error('--setup must be bulk or pipeline');
  return {
    write: values.write,
    quick,
    people: num(values.people, 100_000, 10_000),
    visitors: num(values.visitors, 10_000, 2_000),
    events: num(values.events, 50_000, 5_000),
    smallJobs: num(values['small-jobs'], 10_000, 2_000),
    workers: values.workers
      .split(',')
      .filter((x) => x.trim())
      .map((x) => Number.parseInt(x, 10)),
    rate: values.rate,
    latencyMs: num(values.latency, 30, 10) * 1000,
    setup: values.setup as 'bulk' | 'pipeline',
    check: values.check && !values['no-check'],
    nudge: !values['no-nudge'],
    keep: values.keep,
    afterSetupSql: values['after-setup-sql'],
    waitQuietMs: Number(values['wait-quiet']) * 1000,
  };
}

type Options = ReturnType<typeof parseOptions>;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Every setup history: each identified person's, then each anonymous visitor's, spread over 60 days. */
function histories(people: readonly Person[], visitors: readonly Visitor[], seed: number): ClientEvent[][] {
  const shapes = new EventShapes(seeded(seed));
  const rand = seeded(seed + 1);
  const start = Date.now() - 60 * DAY;
  return [
    ...people.map((p) => personHistory(shapes, p, start + Math.floor(rand() * 50 * DAY), 's-p')),
    ...visitors.map((v, i) => visitorHistory(shapes, v, i, start + Math.floor(rand() * 55 * DAY), 's-v')),
  ];
}

/** Requests of about BATCH events, each history whole in one request (so stage 2 sees it in order). */
function requestsOf(list: readonly ClientEvent[][]): ClientEvent[][] {
  const out: ClientEvent[][] = [];
  let current: ClientEvent[] = [];
  for (const h of list) {
    if (current.length + h.length > BATCH) {
      out.push(current);
      current = [];
    }
    current.push(...h);
  }
  if (current.length) out.push(current);
  return out;
}

async function countsOf(
  sql: postgres.Sql,
): Promise<Pick<BulkStats, 'profiles' | 'events' | 'identities' | 'links' | 'traits'>> {
  const [r] = await sql<{ profiles: number; events: number; identities: number; links: number; traits: number }[]>`
    SELECT (SELECT count(*)::int FROM profiles WHERE merged_into IS NULL) AS profiles,
      (SELECT count(*)::int FROM events) AS events,
      (SELECT count(*)::int FROM identities) AS identities,
      (SELECT count(*)::int FROM identity_links) AS links,
      (SELECT count(*)::int FROM profile_traits) AS traits`;
  return r!;
}

/** Builds the setup through the real pipeline: an ingest node stores it, a worker process resolves it. */
async function setupByPipeline(
  env: Record<string, string>,
  sql: postgres.Sql,
  ingest: Node,
  list: ClientEvent[][],
  nudge: boolean,
): Promise<{ seconds: number; eventsPerSec: number }> {
  const started = performance.now();
  await sendBatches(ingest, requestsOf(list), INGEST_CONCURRENCY);
  const range = await idRange(sql, 's-');
  console.log(`  stored ${fmt(range.count)} events in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const worker = await startNode(env, { CAIRN_ROLE: 'worker' });
  const stopNudging = nudge ? nudgeWorkers(sql, NUDGE_MS) : async () => {};
  try {
    await waitProcessed(sql, range, DRAIN_TIMEOUT_MS, (low) => console.log(`  stage 2 at event ${low} of ${range.hi}`));
  } finally {
    await stopNudging();
    await stopNode(worker);
  }
  const [span] = await sql<{ s: number }[]>`
    SELECT extract(epoch FROM max(processed_at) - min(processed_at))::float8 AS s FROM events
    WHERE id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint`;
  await sql`VACUUM ANALYZE`;
  return { seconds: (performance.now() - started) / 1000, eventsPerSec: range.count / span!.s };
}

const CHECK_SECRET = 'bench-identify-check-secret';

/**
 * Builds a small population both ways (bulk and the real pipeline) in two scratch databases and
 * compares stage 2's state: the bulk setup must write exactly what the pipeline writes.
 */
async function checkSetup(): Promise<string> {
  const list = histories(makePeople(400, 11), makeVisitors(100, 12), 13);
  const events = list.reduce((n, h) => n + h.length, 0);
  const [a, b] = await Promise.all([
    createTestDatabase('bench-identify-check-bulk', 'postgres'),
    createTestDatabase('bench-identify-check-pipeline', 'postgres'),
  ]);
  const sqlA = postgres(a.url!, { max: 2, onnotice: () => {} });
  const sqlB = postgres(b.url!, { max: 2, onnotice: () => {} });
  let node: Node | undefined;
  try {
    // A first start migrates the bulk database and creates the demo source; the bulk load does the rest.
    // One secret for both: identities are keyed by blind indexes derived from it (PII at rest).
    await stopNode(await startNode(a.env, { CAIRN_ROLE: 'ingest', CAIRN_SECRET: CHECK_SECRET }));
    await bulkLoad(a.url!, list, { sourceId: 'src_demo', secret: CHECK_SECRET });
    node = await startNode(b.env, { CAIRN_ROLE: 'all', CAIRN_SECRET: CHECK_SECRET });
    await sendBatches(node, requestsOf(list), 2);
    await waitProcessed(sqlB, await idRange(sqlB, 's-'), 120_000);
    await stopNode(node);
    const pii = createPii({ secret: CHECK_SECRET });
    const diffs = compareStates(await stageTwoState(sqlA, pii), await stageTwoState(sqlB, pii));
    if (diffs.length) {
      throw new Error(`the bulk setup differs from what the pipeline writes:\n${diffs.join('\n')}`);
    }
    return `Checked before the run: ${fmt(list.length)} histories (${fmt(events)} events) built both ways leave the same profiles, identities, links, traits and event attachments.`;
  } finally {
    await stopNode(node);
    await Promise.all([sqlA.end({ timeout: 5 }), sqlB.end({ timeout: 5 })]);
    await Promise.all([a.drop(), b.drop()]);
  }
}

const WATCHED_TABLES = ['events', 'identity_links', 'identities', 'profiles', 'profile_traits', 'merges'];

async function pgCounters(sql: postgres.Sql, database: string) {
  const [r] = await sql<{ rollbacks: number; deadlocks: number; now: Date }[]>`
    SELECT xact_rollback::int AS rollbacks, deadlocks::int AS deadlocks, now() AS now
    FROM pg_stat_database WHERE datname = ${database}`;
  const tables = await sql<{ name: string; scans: number; rows: number }[]>`
    SELECT relname AS name, seq_scan::float8 AS scans, seq_tup_read::float8 AS rows
    FROM pg_stat_user_tables WHERE relname = ANY(${WATCHED_TABLES})`;
  return { ...r!, seqScans: new Map(tables.map((t) => [t.name, t])) };
}

/** Sequential scans of stage 2's big tables between two counter readings, e.g. "identity_links 31 (12.8M rows)". */
function seqScansBetween(
  a: Awaited<ReturnType<typeof pgCounters>>,
  b: Awaited<ReturnType<typeof pgCounters>>,
): string[] {
  const out: string[] = [];
  for (const [name, t] of b.seqScans) {
    const before = a.seqScans.get(name);
    const scans = t.scans - (before?.scans ?? 0);
    const rows = t.rows - (before?.rows ?? 0);
    if (scans > 0) out.push(`${name} ${fmt(scans)} (${(rows / 1e6).toFixed(1)}M rows read)`);
  }
  return out;
}

/** Stats are sent to the cumulative statistics system at transaction end, with a short delay. */
async function settleStats(sql: postgres.Sql): Promise<void> {
  await new Promise((r) => setTimeout(r, 1100));
  await sql`SELECT pg_stat_clear_snapshot()`;
}

/** Stores a backlog of `opt.events` through the ingest node, then drains it with one worker process. */
async function drain(
  opt: Options,
  env: Record<string, string>,
  sql: postgres.Sql,
  database: string,
  ingest: Node,
  people: readonly Person[],
  pool: VisitorPool,
  workers: number,
  index: number,
  backlog: { events: number; perRequest: number; concurrency: number; label: string },
): Promise<DrainResult> {
  const prefix = `d${index}-`;
  const w = new Workload(people, pool, { prefix, seed: 100 + index, recentShare: 0, recentLag: 0 });
  const requests: ClientEvent[][] = [];
  for (let i = 0; i < backlog.events; i += backlog.perRequest) {
    const n = Math.min(backlog.perRequest, backlog.events - i);
    requests.push(Array.from({ length: n }, () => w.next(Date.now()).event));
  }
  const t0 = performance.now();
  await sendBatches(ingest, requests, backlog.concurrency);
  const range = await idRange(sql, prefix);
  const [jobs] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pgboss.job
    WHERE name = 'identify' AND (data->'ids'->>0)::bigint BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint`;
  console.log(
    `  stored ${fmt(range.count)} events (${fmt(w.counts.known)} known, ${fmt(w.counts.new)} new anonymous, ${fmt(w.counts.merge)} merging) in ${fmt(jobs!.n)} ingest jobs in ${((performance.now() - t0) / 1000).toFixed(1)} s; draining with ${workers} workers`,
  );
  // As autovacuum would in time: earlier phases' updates must not be vacuumed during this one.
  await sql`VACUUM ANALYZE`;
  await settleStats(sql);
  const before = await pgCounters(sql, database);
  const worker = await startNode(env, { CAIRN_ROLE: 'worker', CAIRN_IDENTIFY_CONCURRENCY: String(workers) });
  const started = performance.now();
  const stop = cpuMeter(worker.server.proc.pid, database);
  const stopNudging = opt.nudge ? nudgeWorkers(sql, NUDGE_MS) : async () => {};
  let doneAt: number;
  let cpu: CpuUse;
  let metrics: IdentifyMetrics;
  try {
    doneAt = await waitProcessed(sql, range, DRAIN_TIMEOUT_MS, (low) =>
      console.log(`    at event ${low} of ${range.hi}`),
    );
    // Before the worker exits: its CPU time and its database sessions' are read from /proc.
    cpu = stop();
    await stopNudging();
    metrics = await identifyMetrics(worker);
  } finally {
    await stopNudging();
    const errors = await stopNode(worker);
    for (const line of errors.slice(0, 10)) console.log(`  worker: ${line}`);
  }
  await settleStats(sql);
  const after = await pgCounters(sql, database);
  const [r] = await sql<
    { n: number; span: number; merges: number; created: number; refusals: number; reclaimed: number }[]
  >`
    SELECT count(*)::int AS n,
      extract(epoch FROM max(processed_at) - min(processed_at))::float8 AS span,
      (SELECT count(*)::int FROM merges WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS merges,
      (SELECT count(*)::int FROM profiles WHERE created_at >= ${before.now}) AS created,
      (SELECT count(*)::int FROM identity_refusals WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS refusals,
      (SELECT count(*)::int FROM pgboss.job WHERE name = 'identify' AND retry_count > 1) AS reclaimed
    FROM events WHERE id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint`;
  const wallS = (doneAt - started) / 1000;
  const d: DrainResult = {
    backlog: backlog.label,
    eventsPerJob: r!.n / jobs!.n,
    workers,
    events: r!.n,
    known: w.counts.known,
    fresh: w.counts.new,
    merging: w.counts.merge,
    spanS: r!.span,
    eventsPerSec: r!.n / r!.span,
    wallS,
    wallEventsPerSec: r!.n / wallS,
    merges: r!.merges,
    created: r!.created,
    refusals: r!.refusals,
    rollbacks: after.rollbacks - before.rollbacks,
    deadlocks: after.deadlocks - before.deadlocks,
    reclaimedJobs: r!.reclaimed,
    seqScans: seqScansBetween(before, after),
    retries: metrics.retries,
    msPerCall: metrics.msPerCall,
    eventsPerCall: metrics.eventsPerCall,
    cpu,
  };
  console.log(
    `  ${workers} workers: ${fmt(d.eventsPerSec)} events/s (${d.spanS.toFixed(1)} s from first to last processed_at; ${fmt(d.wallEventsPerSec)}/s wall), ` +
      `${fmt(d.merges)} merges, ${fmt(d.created)} new profiles, ${d.rollbacks} rolled-back tx, ${d.deadlocks} deadlocks, ${d.retries} retries; ` +
      `${fmt(d.eventsPerCall)} events per worker call, ${fmt(d.msPerCall)} ms each; ` +
      `sequential scans: ${d.seqScans.join(', ') || 'none'}; ` +
      `cpu cairn ${cpu.cairn.toFixed(2)} pg ${cpu.postgres.toFixed(2)} other ${cpu.other.toFixed(2)}`,
  );
  return d;
}

/** Median latency of the events received in each third of the phase: a growing queue shows as a rise. */
function thirds(rows: { ms: number; at: Date }[]): number[] {
  const times = rows.map((r) => r.at.getTime());
  const lo = Math.min(...times);
  const span = Math.max(...times) - lo || 1;
  return [0, 1, 2].map(
    (k) =>
      latencyRow(
        '',
        rows.filter((r) => Math.min(2, Math.floor(((r.at.getTime() - lo) / span) * 3)) === k).map((r) => r.ms),
      ).p50,
  );
}

const phaseName = (d: DrainResult) => `${d.workers} workers${d.eventsPerJob < 10 ? ', small jobs' : ''}`;

function latencyRow(label: string, values: number[]): LatencyRow {
  const sorted = Float64Array.from(values).sort();
  return {
    label,
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

/** Sends the mix at a fixed rate, one event per request, to one server with ingest and workers. */
async function latencyPhase(
  opt: Options,
  env: Record<string, string>,
  sql: postgres.Sql,
  database: string,
  people: readonly Person[],
  pool: VisitorPool,
  workers: number,
  rate: number,
): Promise<LatencyResult> {
  const node = await startNode(env, { CAIRN_ROLE: 'all', CAIRN_IDENTIFY_CONCURRENCY: String(workers) });
  try {
    const url = new URL(node.server.url);
    const target: Target = {
      host: url.hostname,
      port: Number(url.port),
      headers: {
        Authorization: `Basic ${Buffer.from(`${node.writeKey}:`).toString('base64')}`,
        'Content-Type': 'application/json',
      },
    };
    const send = (w: Workload, durationMs: number) =>
      openLoop(target, {
        rate,
        durationMs,
        maxConnections: 64,
        next: () => {
          const item = w.next(Date.now());
          return { path: `/v1/${item.event.type}`, body: JSON.stringify(item.event), events: 1 };
        },
      });
    // A warm-up at the same rate, not counted: a freshly started server (JIT, pools, caches) is slower.
    const warmupMs = opt.quick ? 2000 : LATENCY_WARMUP_MS;
    await send(new Workload(people, pool, { prefix: 'lw-', seed: 998, recentShare: 0, recentLag: 0 }), warmupMs);
    // Half the merging events join a visitor first seen at least 3 s before (a profile made in this phase).
    const w = new Workload(people, pool, { prefix: 'l-', seed: 999, recentShare: 0.5, recentLag: rate * 3 });
    const stop = cpuMeter(node.server.proc.pid, database);
    const r = await send(w, opt.latencyMs);
    const cpu = stop();
    const sentAt = performance.now();
    const errors = [...r.errors.values()].reduce((a, b) => a + b, 0);
    for (const [what, n] of r.errors) console.log(`    ${n} x ${what}`);
    const range = await idRange(sql, 'l-');
    const doneAt = await waitProcessed(sql, range, 120_000);
    const metrics = await identifyMetrics(node);
    const [jobs] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pgboss.job
      WHERE name = 'identify' AND (data->'ids'->>0)::bigint BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint`;
    const rows = await sql<{ m: string; ms: number; merged: boolean; at: Date }[]>`
      SELECT e.message_id AS m, extract(epoch FROM e.processed_at - e.received_at)::float8 * 1000 AS ms, e.received_at AS at,
        EXISTS (SELECT 1 FROM merges g WHERE g.event_id = e.id AND g.kind = 'merge') AS merged
      FROM events e WHERE e.id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint`;
    const of = (kind: keyof typeof KIND_LETTER) => rows.filter((x) => x.m.startsWith(`l-${KIND_LETTER[kind]}-`));
    const merging = of('merge');
    const result: LatencyResult = {
      workers,
      rate,
      durationS: opt.latencyMs / 1000,
      warmupS: warmupMs / 1000,
      sent: r.requests,
      errors,
      catchUpS: (doneAt - sentAt) / 1000,
      p50ByThird: thirds(rows),
      jobs: jobs!.n,
      eventsPerCall: metrics.eventsPerCall,
      msPerCall: metrics.msPerCall,
      rows: [
        latencyRow(
          'merging: identify that merged two profiles',
          merging.filter((x) => x.merged).map((x) => x.ms),
        ),
        latencyRow(
          `merging: all (${w.mergesOfRecent} join a visitor of this phase, the rest one of the setup)`,
          merging.map((x) => x.ms),
        ),
        latencyRow(
          'known people',
          of('known').map((x) => x.ms),
        ),
        latencyRow(
          'new anonymous visitors',
          of('new').map((x) => x.ms),
        ),
        latencyRow(
          'all events',
          rows.map((x) => x.ms),
        ),
      ],
      cpu,
    };
    console.log(
      `  sent ${fmt(r.requests)} (${errors} errors); stage 2 done ${result.catchUpS.toFixed(1)} s after the last send; p50 by third of the phase ${result.p50ByThird.map((x) => x.toFixed(0)).join(' / ')} ms; ${fmt(result.jobs)} ingest jobs (${(range.count / result.jobs).toFixed(1)} events each), ${fmt(result.eventsPerCall)} events per worker call, ${fmt(result.msPerCall)} ms each; cpu cairn ${cpu.cairn.toFixed(2)} pg ${cpu.postgres.toFixed(2)} bench ${cpu.loadgen.toFixed(2)} other ${cpu.other.toFixed(2)}`,
    );
    console.log(`\n${latencyTable(result)}`);
    return result;
  } finally {
    const errors = await stopNode(node);
    for (const line of errors.slice(0, 10)) console.log(`  server: ${line}`);
  }
}

async function waitForQuiet(opt: Options, database: string): Promise<number> {
  let background = await otherLoad(2000, database);
  for (const until = Date.now() + opt.waitQuietMs; background > QUIET_CORES && Date.now() < until; ) {
    console.log(`         other processes keep ${background.toFixed(2)} cores busy; waiting for a quiet machine`);
    background = await otherLoad(5000, database);
  }
  console.log(`         other processes keep ${background.toFixed(2)} cores busy before the run`);
  if (background > QUIET_CORES) {
    console.log('WARNING: the machine is not quiet; the numbers below will understate Cairn and Postgres');
  }
  return background;
}

async function main(): Promise<number> {
  const opt = parseOptions();
  process.env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const started = performance.now();
  const load = loadavg();
  const db = await createTestDatabase('bench-identify', 'postgres');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const database = new URL(db.url!).pathname.slice(1);
  let ingest: Node | undefined;
  try {
    const machine = await describeMachine(sql);
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    console.log(`         load average ${load.map((x) => x.toFixed(2)).join(', ')}`);
    const otherCores = await waitForQuiet(opt, database);
    const speedBefore = speedIndex();
    console.log(`         speed index ${speedBefore.toFixed(0)} (fixed JSON workload, thousands of rounds/s)`);

    let check: string | undefined;
    if (opt.check && opt.setup === 'bulk') {
      console.log('checking the bulk setup against the pipeline on a small population');
      check = await checkSetup();
      console.log(`  ${check}`);
    }

    ingest = await startNode(db.env, { CAIRN_ROLE: 'ingest' });
    const people = makePeople(opt.people, 1);
    const visitors = makeVisitors(opt.visitors, 2);
    const list = histories(people, visitors, 3);
    console.log(
      `setup: ${fmt(people.length)} people and ${fmt(visitors.length)} anonymous visitors through ${opt.setup === 'bulk' ? 'bulk SQL' : 'the pipeline'}`,
    );
    let setup: SetupResult;
    if (opt.setup === 'bulk') {
      const s = await bulkLoad(db.url!, list, {
        sourceId: 'src_demo',
        onProgress: (n) => {
          if (n % 20_000 < 2_500) console.log(`  ${fmt(n)} of ${fmt(list.length)} histories`);
        },
      });
      console.log(
        `  bulk: ${s.copyWaitSeconds.toFixed(1)} s waiting for COPY beyond building the rows, ${s.indexSeconds.toFixed(1)} s creating indexes, ${s.vacuumSeconds.toFixed(1)} s VACUUM ANALYZE`,
      );
      setup = { method: 'bulk', people: people.length, visitors: visitors.length, ...s, ...(check ? { check } : {}) };
    } else {
      const p = await setupByPipeline(db.env, sql, ingest, list, opt.nudge);
      setup = {
        method: 'pipeline',
        people: people.length,
        visitors: visitors.length,
        ...(await countsOf(sql)),
        seconds: p.seconds,
        pipelineEventsPerSec: p.eventsPerSec,
      };
    }
    console.log(
      `  ${fmt(setup.profiles)} profiles, ${fmt(setup.events)} events, ${fmt(setup.identities)} identities, ${fmt(setup.links)} links, ${fmt(setup.traits)} traits in ${setup.seconds.toFixed(0)} s`,
    );

    if (opt.afterSetupSql) {
      // An experiment on the database only (an index option, statistics...), named in the results.
      console.log(`  after setup: ${opt.afterSetupSql}`);
      await sql.unsafe(opt.afterSetupSql);
    }

    const pool: VisitorPool = { visitors, next: 0 };
    const drains: DrainResult[] = [];
    const big = {
      events: opt.events,
      perRequest: BATCH,
      concurrency: INGEST_CONCURRENCY,
      label: `${BATCH} per request, ${INGEST_CONCURRENCY} at a time`,
    };
    for (const [i, workers] of opt.workers.entries()) {
      console.log(`throughput: backlog of ${fmt(opt.events)} events, one worker process with ${workers} workers`);
      drains.push(await drain(opt, db.env, sql, database, ingest, people, pool, workers, i + 1, big));
    }
    if (opt.smallJobs > 0) {
      // Browser traffic: small requests, each its own group commit, so each ingest job holds a few events.
      const workers = opt.workers[0] ?? DEFAULTS.identifyConcurrency;
      const small = {
        events: opt.smallJobs,
        perRequest: SMALL_REQUEST,
        concurrency: 1,
        label: `${SMALL_REQUEST} per request, one at a time`,
      };
      console.log(
        `throughput: backlog of ${fmt(opt.smallJobs)} events in small jobs, one worker process with ${workers} workers`,
      );
      drains.push(
        await drain(opt, db.env, sql, database, ingest, people, pool, workers, opt.workers.length + 1, small),
      );
    }
    await stopNode(ingest);
    ingest = undefined;

    let latency: LatencyResult | null = null;
    // The small-jobs backlog is the closest to live browser traffic (a few events per ingest job).
    const basis = drains.find((d) => d.eventsPerJob < 10) ?? drains[0];
    const rate =
      opt.rate === 'auto'
        ? Math.max(50, Math.round(((basis?.eventsPerSec ?? 500) * AUTO_RATE_SHARE) / 50) * 50)
        : Number(opt.rate);
    if (rate > 0 && opt.latencyMs > 0) {
      await sql`VACUUM ANALYZE`;
      const workers = opt.workers[0] ?? DEFAULTS.identifyConcurrency;
      console.log(
        `latency: ${rate} events/s for ${opt.latencyMs / 1000} s, one server with ingest and ${workers} workers`,
      );
      latency = await latencyPhase(opt, db.env, sql, database, people, pool, workers, rate);
    }
    const speedAfter = speedIndex();
    console.log(`speed index after the run: ${speedAfter.toFixed(0)} (before: ${speedBefore.toFixed(0)})`);

    const notes = [
      '`processed_at` is `now()` of the stage-2 transaction that processed the event, i.e. when that transaction began; the event is visible a little later, at its commit. Throughput counts from the first to the last `processed_at`, so the last transaction\'s duration is left out; "wall" counts from the worker process listening to the benchmark seeing every event processed (polled every 250 ms).',
      opt.nudge
        ? `During the throughput phases the benchmark sends pg-boss's NOTIFY for \`identify\` every ${NUDGE_MS} ms, as a steady stream of new ingest jobs would: without it a worker that finishes a batch of a backlog no new job arrives for waits for its NOTIFY backstop poll (\`notifyPollingIntervalSeconds\` of the identify worker; pg-boss's default is 30 s) before fetching the next batch, which would measure that wait rather than stage 2 (\`--no-nudge\` shows it).`
        : 'The throughput phases ran without waking the workers (`--no-nudge`): between batches of a backlog a worker waits for its NOTIFY backstop poll (`notifyPollingIntervalSeconds` of the identify worker).',
      `Merging events of the throughput phases each join one anonymous visitor of the setup to a userId, so each should merge one profile: ${drains.map((d) => `${fmt(d.merges)} merges for ${fmt(d.merging)} merging events (${phaseName(d)})`).join(', ')}.`,
      'Workers take up to 50 `identify` jobs at a time (one job per group commit) and process their events in transactions of 250: how many events a job holds decides how many a worker call gets.',
      `Sequential scans of stage 2's tables during the throughput phases (pg_stat_user_tables): ${drains.map((d) => `${phaseName(d)}: ${d.seqScans.join(', ') || 'none'}`).join('; ')}.`,
      'The database grows between phases (each adds its new anonymous profiles and merges); VACUUM ANALYZE runs before each phase.',
    ];
    if (latency) {
      notes.push(
        `The latency phase's rate is ${opt.rate === 'auto' ? `a third of the events/s of the ${basis?.eventsPerJob !== undefined && basis.eventsPerJob < 10 ? 'small-jobs' : 'first'} throughput phase (rounded to 50)` : 'set by --rate'}; its ${fmt(latency.jobs)} ingest jobs carried ${(latency.sent / latency.jobs).toFixed(1)} events each, worker calls ${fmt(latency.eventsPerCall)} events in ${fmt(latency.msPerCall)} ms on average.`,
      );
    }
    const refused = drains.reduce((n, d) => n + d.refusals, 0);
    const reclaimed = Math.max(0, ...drains.map((d) => d.reclaimedJobs));
    if (refused) notes.push(`${refused} identity links were refused by the guards during the throughput phases.`);
    if (reclaimed) notes.push(`${reclaimed} identify jobs were claimed more than once (expired or retried).`);
    if (opt.afterSetupSql) notes.push(`After the setup the benchmark ran: \`${opt.afterSetupSql}\`.`);
    if (otherCores > QUIET_CORES) {
      notes.push(`Other processes used ${otherCores.toFixed(2)} cores before the run: the machine was not quiet.`);
    }
    const report: Report = {
      date: new Date().toISOString().slice(0, 10),
      command: `npm run bench:identify${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine: { ...machine, speedIndex: [speedBefore, speedAfter] },
      loadAverage: load,
      otherCores,
      settings: {
        CAIRN_DB_POOL_MAX: process.env.CAIRN_DB_POOL_MAX || String(DEFAULTS.poolMax),
        CAIRN_IDENTIFY_CONCURRENCY: opt.workers.join(' then '),
        CAIRN_COMMIT_MAX_ROWS: process.env.CAIRN_COMMIT_MAX_ROWS || String(DEFAULTS.commitMaxRows),
      },
      setup,
      drains,
      latency,
      notes,
    };
    console.log(`\n${drainTable(drains)}\n`);
    if (latency) console.log(`${latencyTable(latency)}\n`);
    console.log(`whole run: ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (opt.write) {
      writeResults(DOCS, report);
      console.log(`wrote ${DOCS}`);
    } else if (process.env.BENCH_PRINT_SECTION === '1') {
      console.log(reportText(report));
    }
    return 0;
  } finally {
    await stopNode(ingest);
    await sql.end({ timeout: 5 });
    if (opt.keep) console.log(`kept the database: ${db.url}`);
    else await db.drop();
  }
}

process.exitCode = await main();
