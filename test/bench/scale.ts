// The scaling-curve benchmark (`npm run bench:scale`): 1, 2 and 4 ingest processes, then 1, 2 and 4
// worker processes, against one Postgres, each Cairn process limited to a share of a core by a cgroup
// (scale/cgroups.ts), so a 2-core machine can show how throughput grows with processes and where the
// bottleneck moves: Cairn's CPU (its processes use their whole quota), Postgres' CPU, locks, WAL.
// Per configuration: events/s (ingest: acknowledged and stored; workers: per pipeline stage), CPU by
// Cairn / Postgres backends / Postgres background writers / load generator / others, where Postgres
// backends wait, and what each event costs Postgres (WAL bytes, buffers, blocks, CPU-ms).
// See docs/benchmarks.md ("Scaling curve"); `--write` records the results there.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { r } from '@cairn/core';
import { createTestDatabase, TEST_ADMIN_KEY } from '@cairn/server/testing';
import postgres from 'postgres';
import { deliverCpuMeter } from './deliver/cpu.ts';
import { type Receivers, startReceivers } from './deliver/receiver.ts';
import { activityText, sampleActivity } from './deliver/sampler.ts';
import { Activity, signUpsOf } from './deliver/workload.ts';
import { type ClientEvent, makePeople } from './identify/people.ts';
import { type Node, nudgeWorkers, sendBatches, startNode, stopNode } from './identify/servers.ts';
import { createEventFactory } from './ingest/events.ts';
import { closedLoop, type Job, percentile, type Target } from './ingest/load.ts';
import { describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';
import { QUIET_CORES } from './ingest/verdicts.ts';
import { type CpuGroup, openCpuGroups } from './scale/cgroups.ts';
import type { Costs, IngestResult, WorkerResult } from './scale/phases.ts';
import {
  backgroundCpu,
  pgDelta,
  pgTotals,
  sampleWaits,
  seqReads,
  settle,
  stageCounts,
  topSeqReads,
} from './scale/postgres.ts';
import { ingestTable, type Report, workerTable, writeResults } from './scale/report.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'benchmarks.md');
const BATCH = 100;
const COUNTS = [1, 2, 4];
const SECRET = 'bench-scale-secret-0123456789abcdef';
// Pools small enough that 4 ingest and 4 worker nodes fit in max_connections=100 beside other users.
const INGEST_POOL = 6;
const WORKER_POOL = 8;
/** Cores a started worker is held to until the others have started too. */
const HOLD_CORES = 0.02;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
      quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
      quotas: { type: 'string' },
      duration: { type: 'string' },
      window: { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      people: { type: 'string' },
      backlog: { type: 'string' },
    },
  });
  const quick = values.quick;
  const num = (v: string | undefined, full: number, small: number) => Number(v ?? (quick ? small : full));
  const quotas = (values.quotas ?? (quick ? '0.5' : '0.25,0.5')).split(',').map(Number);
  if (quotas.some((q) => !(q > 0 && q <= 2))) throw new Error('--quotas: cores per process, each in (0, 2]');
  return {
    write: values.write,
    quick,
    quotas,
    durationMs: num(values.duration, 10, 4) * 1000,
    warmupMs: quick ? 1000 : 2000,
    windowMs: num(values.window, 15, 5) * 1000,
    concurrency: Number(values.concurrency),
    people: num(values.people, 5000, 2000),
    backlog: num(values.backlog, 60_000, 8000),
  };
}

type Options = ReturnType<typeof parseOptions>;

/** Seconds since the run started, to show where its time goes. */
const at = () => `[${Math.round(performance.now() / 1000)} s]`;

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

/** Starts measuring a configuration: CPU of `pids` and Postgres, throttling of `groups`, counters, waits. */
async function startCosts(
  sql: postgres.Sql,
  db: { url: string; database: string },
  pids: number[],
  groups: CpuGroup[],
  receiverPid: number,
): Promise<() => Promise<Costs>> {
  await settle(sql);
  const pg0 = await pgTotals(sql, db.database);
  const seq0 = await seqReads(sql);
  const t0 = groups.map((g) => g.throttling());
  const stopWaits = sampleWaits(db.url, db.database);
  const stopBackground = backgroundCpu();
  const stopCpu = deliverCpuMeter(pids, receiverPid, db.database);
  const started = performance.now();
  return async () => {
    const cpu = stopCpu();
    const pgBackground = stopBackground();
    const seconds = (performance.now() - started) / 1000;
    const waits = await stopWaits();
    const t1 = groups.map((g) => g.throttling());
    const periods = t1.reduce((s, t, i) => s + t.periods - t0[i]!.periods, 0);
    const throttled = t1.reduce((s, t, i) => s + t.throttled - t0[i]!.throttled, 0);
    await settle(sql);
    const pg = pgDelta(pg0, await pgTotals(sql, db.database));
    const seqScans = topSeqReads(seq0, await seqReads(sql));
    return { seconds, cpu, pgBackground, throttled: throttled / (periods || 1), pg, waits, seqScans };
  };
}

function costsLine(c: Costs): string {
  return (
    `cpu cairn ${c.cpu.cairn.toFixed(2)} (throttled ${(c.throttled * 100).toFixed(0)}% of periods) pg ${c.cpu.postgres.toFixed(2)} ` +
    `(background ${c.pgBackground.toFixed(2)}) loadgen ${c.cpu.bench.toFixed(2)} other ${c.cpu.other.toFixed(2)}; ` +
    `${c.waits.active.toFixed(1)} backends active, waiting: lock ${(c.waits.share.lock * 100).toFixed(0)}% lwlock ${(c.waits.share.lwlock * 100).toFixed(0)}% io ${(c.waits.share.io * 100).toFixed(0)}% ` +
    `[${c.waits.top.join(', ')}]; rows read by sequential scans: ${c.seqScans.join(', ') || 'none over 10k'}`
  );
}

function targetOf(node: Node): Target {
  const url = new URL(node.server.url);
  return {
    host: url.hostname,
    port: Number(url.port),
    headers: {
      Authorization: `Basic ${Buffer.from(`${node.writeKey}:`).toString('base64')}`,
      'Content-Type': 'application/json',
    },
  };
}

/** One ingest configuration: `n` nodes at `quota` cores each, a closed loop of batches against each. */
async function ingestConfig(
  opt: Options,
  sql: postgres.Sql,
  db: { url: string; database: string },
  nodes: { node: Node; group: CpuGroup }[],
  n: number,
  quota: number,
  receivers: Receivers,
): Promise<IngestResult> {
  const used = nodes.slice(0, n);
  for (const { group } of nodes) group.limit(quota);
  const events = createEventFactory(n * 10 + Math.round(quota * 100));
  const job = (): Job => ({ path: '/v1/batch', body: events.batch(BATCH), events: BATCH });
  const load = (durationMs: number) =>
    Promise.all(
      used.map(({ node }) => closedLoop(targetOf(node), { concurrency: opt.concurrency, durationMs, next: job })),
    );
  await load(opt.warmupMs);
  const [{ max }] = await sql<[{ max: string }]>`SELECT coalesce(max(id), 0)::text AS max FROM events`;
  const stop = await startCosts(
    sql,
    db,
    used.map(({ node }) => node.server.proc.pid!),
    used.map(({ group }) => group),
    receivers.pid,
  );
  const runs = await load(opt.durationMs);
  const costs = await stop();
  const [{ stored }] = await sql<[{ stored: number }]>`
    SELECT count(*)::int AS stored FROM events WHERE id > ${max}::bigint`;
  const acked = runs.reduce((s, run) => s + run.ackedEvents, 0);
  const errors = runs.reduce((s, run) => s + [...run.errors.values()].reduce((a, b) => a + b, 0), 0);
  for (const run of runs) for (const [what, k] of run.errors) console.log(`    ${k} x ${what}`);
  const seconds = Math.max(...runs.map((run) => run.seconds));
  const latencies = Float64Array.from(runs.flatMap((run) => [...run.latencies])).sort();
  const res: IngestResult = {
    ...costs,
    seconds,
    processes: n,
    quota,
    concurrency: opt.concurrency,
    acked: acked / seconds,
    stored: stored / seconds,
    errors,
    p99: percentile(latencies, 99),
  };
  console.log(
    `${at()} ${n} ingest × ${quota} core: ${fmt(res.acked)} events/s acknowledged, ${fmt(res.stored)} stored, p99 ${res.p99.toFixed(0)} ms, ${errors} errors; ${costsLine(costs)}`,
  );
  if (stored !== acked) console.log(`    MISMATCH: ${acked} events acknowledged, ${stored} stored`);
  return res;
}

/** Events stored and not yet attached to a profile, among the worker backlog's (ids ≥ `from`). */
async function unprocessed(sql: postgres.Sql, from: string): Promise<number> {
  const [{ n }] = await sql<[{ n: number }]>`
    SELECT count(*)::int AS n FROM events WHERE id >= ${from}::bigint AND processed_at IS NULL`;
  return n;
}

/** Adds activity through the first ingest node (its limit lifted) until `target` events wait. */
async function topUp(
  sql: postgres.Sql,
  ingest: { node: Node; group: CpuGroup },
  activity: Activity,
  from: string,
  target: number,
): Promise<number> {
  const waiting = await unprocessed(sql, from);
  if (waiting >= target) return waiting;
  ingest.group.limit(Number.POSITIVE_INFINITY);
  const groups: ClientEvent[][] = [];
  for (let left = target - waiting; left > 0; left -= BATCH) {
    groups.push(Array.from({ length: Math.min(BATCH, left) }, () => activity.next(Date.now())));
  }
  const t0 = performance.now();
  await sendBatches(ingest.node, groups, 4);
  console.log(
    `${at()} backlog: ${fmt(target - waiting)} events added in ${((performance.now() - t0) / 1000).toFixed(1)} s (${fmt(waiting)} were waiting)`,
  );
  return unprocessed(sql, from);
}

const STAGES = ['identify', 'compute', 'fanout', 'automate', 'measure'];

/** One worker configuration: `m` worker nodes at `quota` cores each, working through the backlog. */
async function workerConfig(
  opt: Options,
  sql: postgres.Sql,
  db: { url: string; database: string; env: Record<string, string> },
  groups: CpuGroup[],
  m: number,
  quota: number,
  receivers: Receivers,
  from: string,
  topUpBacklog: () => Promise<number>,
): Promise<WorkerResult> {
  // As autovacuum would in time: the planner sees the backlog's rows (bench:identify does the same).
  await sql`ANALYZE`;
  const workers: Node[] = [];
  let stopNudging = async () => {};
  try {
    for (let i = 0; i < m; i++) {
      workers.push(
        await startNode(db.env, { CAIRN_ROLE: 'worker', CAIRN_SECRET: SECRET, CAIRN_DB_POOL_MAX: String(WORKER_POOL) }),
      );
      // Held almost still until all have started: on a busy machine the starts take long enough for the
      // first workers to drain the backlog before the window opens.
      groups[i]!.limit(HOLD_CORES);
      groups[i]!.add(workers[i]!.server.proc.pid!);
    }
    await topUpBacklog();
    for (const g of groups.slice(0, m)) g.limit(quota);
    stopNudging = nudgeWorkers(sql, 100);
    await new Promise((res) => setTimeout(res, opt.warmupMs));
    const before = await unprocessed(sql, from);
    await receivers.take();
    const stop = await startCosts(
      sql,
      db,
      workers.map((w) => w.server.proc.pid!),
      groups.slice(0, m),
      receivers.pid,
    );
    const stopActivity = sampleActivity(db.url, db.database, 100);
    const [{ t0 }] = await sql<[{ t0: Date }]>`SELECT clock_timestamp() AS t0`;
    await new Promise((res) => setTimeout(res, opt.windowMs));
    console.log(`    postgres: ${activityText(await stopActivity())}`);
    const [{ t1 }] = await sql<[{ t1: Date }]>`SELECT clock_timestamp() AS t1`;
    const arrivals = await receivers.take();
    const costs = await stop();
    const after = await unprocessed(sql, from);
    const seconds = (t1.getTime() - t0.getTime()) / 1000;
    const counts = await stageCounts(sql, t0, t1);
    const stages: Record<string, number> = {};
    for (const s of STAGES) stages[s] = (counts.get(s)?.events ?? 0) / seconds;
    // Stage 2 from the events themselves: attached (processed_at set) inside the window.
    const [{ attached }] = await sql<[{ attached: number }]>`
      SELECT count(*)::int AS attached FROM events
      WHERE id >= ${from}::bigint AND processed_at >= ${t0} AND processed_at < ${t1}`;
    stages.identify = attached / seconds;
    const delivered = arrivals.reduce((s, a) => s + a.keys.length, 0) / seconds;
    if (after === 0) console.log('    the backlog ran out inside the window: these rates are lower bounds');
    const res: WorkerResult = {
      ...costs,
      processes: m,
      quota,
      stages,
      delivered,
      backlog: [before, after],
      perEvent: stages.identify!,
    };
    console.log(
      `${at()} ${m} worker × ${quota} core: attached ${fmt(stages.identify!)}/s, computed ${fmt(stages.compute!)}/s, fanned out ${fmt(stages.fanout!)}/s, ` +
        `delivered ${fmt(delivered)}/s (backlog ${fmt(before)} → ${fmt(after)}); ${costsLine(costs)}`,
    );
    return res;
  } finally {
    await stopNudging();
    // Stopping is not measured: lift the limits so that the workers finish their batches quickly.
    for (const g of groups.slice(0, m)) g.limit(Number.POSITIVE_INFINITY);
    const errors = (await Promise.all(workers.map(stopNode))).flat();
    for (const line of errors.slice(0, 5)) console.log(`  worker: ${line}`);
  }
}

async function api(node: Node, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${node.server.url}/api${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST /api${path} answered ${res.status}: ${await res.text()}`);
}

async function main(): Promise<number> {
  const opt = parseOptions();
  const started = performance.now();
  process.env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const cgroups = openCpuGroups('cairn-bench-scale');
  // Ctrl-C skips the finally below: take the groups down anyway (the servers get the same SIGINT).
  process.once('SIGINT', () => {
    cgroups.remove();
    process.exit(130);
  });
  const created = await createTestDatabase('bench-scale', 'postgres');
  const db = { url: created.url!, database: new URL(created.url!).pathname.slice(1), env: created.env };
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const ingest: { node: Node; group: CpuGroup }[] = [];
  let receivers: Receivers | undefined;
  try {
    const machine = await describeMachine(sql);
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}); Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    const background = await otherLoad(2000, db.database);
    console.log(`         other processes keep ${background.toFixed(2)} cores busy before the run`);
    if (background > QUIET_CORES)
      console.log('WARNING: the machine is not quiet: the numbers below understate Cairn and Postgres');
    const speedBefore = speedIndex();

    receivers = await startReceivers([{ name: 'scale' }]);
    const env = { CAIRN_ROLE: 'ingest', CAIRN_SECRET: SECRET, CAIRN_DB_POOL_MAX: String(INGEST_POOL) };
    // One at a time (the first migrates the database), each kept as soon as it runs so that a failed
    // start leaves nothing behind: on a busy machine, starts side by side missed spawnServer's minute.
    for (const i of [1, 2, 3, 4]) {
      ingest.push({ node: await startNode(db.env, env), group: cgroups.group(`ingest-${i}`) });
      ingest[i - 1]!.group.add(ingest[i - 1]!.node.server.proc.pid!);
    }
    await api(ingest[0]!.node, '/destinations', {
      name: 'scale',
      plugin: 'webhook',
      settings: { url: receivers.urls[0] },
    });
    await api(ingest[0]!.node, '/audiences', {
      key: 'scale_buyers',
      name: 'Ordered twice in 30 days',
      rule: r.performed('Order Completed', { min: 2, within: r.last(30, 'days') }),
    });

    console.log(
      `ingest: /v1/batch with ${BATCH} events, ${opt.concurrency} requests in flight per process, ${opt.durationMs / 1000} s per configuration`,
    );
    const ingestResults: IngestResult[] = [];
    for (const quota of opt.quotas)
      for (const n of COUNTS) ingestResults.push(await ingestConfig(opt, sql, db, ingest, n, quota, receivers));
    // The ingest sweep's events are a load for ingest only (random user ids over a small pool of
    // anonymous ids: not a realistic identity graph); the worker sweep works on its own backlog.
    const [{ purged }] = await sql<[{ purged: number }]>`
      WITH d AS (DELETE FROM pgboss.job WHERE name = 'identify' AND state = 'created' RETURNING 1)
      SELECT count(*)::int AS purged FROM d`;
    console.log(`  ${fmt(purged)} identify jobs of the ingest sweep removed: its events stay unprocessed`);
    // Only the first ingest node is needed from here on (to add backlog).
    for (const { node } of ingest.splice(1)) await stopNode(node);

    const [{ from }] = await sql<[{ from: string }]>`SELECT (coalesce(max(id), 0) + 1)::text AS from FROM events`;
    const people = makePeople(opt.people, 21);
    await sendBatches(ingest[0]!.node, chunk(signUpsOf(people, 'su-', Date.now() - 60_000)), 4);
    const activity = new Activity(people, 'a-', 22);
    console.log(
      `workers: ${fmt(opt.people)} people signed up, then their activity; each configuration starts with at least ${fmt(opt.backlog)} events waiting and is measured for ${opt.windowMs / 1000} s`,
    );
    const workerGroups = COUNTS.slice(-1).flatMap((max) =>
      Array.from({ length: max }, (_, i) => cgroups.group(`worker-${i + 1}`)),
    );
    const workerResults: WorkerResult[] = [];
    for (const quota of opt.quotas)
      for (const m of COUNTS) {
        const backlog = () => topUp(sql, ingest[0]!, activity, from, opt.backlog);
        workerResults.push(await workerConfig(opt, sql, db, workerGroups, m, quota, receivers, from, backlog));
      }
    const speedAfter = speedIndex();
    const report: Report = {
      date: new Date().toISOString().slice(0, 10),
      machine: { ...machine, speedIndex: [speedBefore, speedAfter] },
      quick: opt.quick,
      minutes: (performance.now() - started) / 60_000,
      concurrency: opt.concurrency,
      durationS: opt.durationMs / 1000,
      windowS: opt.windowMs / 1000,
      people: opt.people,
      backlog: opt.backlog,
      ingest: ingestResults,
      workers: workerResults,
    };
    console.log(`\n${ingestTable(ingestResults)}\n\n${workerTable(workerResults)}`);
    console.log(`\nran ${report.minutes.toFixed(1)} minutes`);
    if (opt.write) {
      writeResults(DOCS, report);
      console.log(`wrote ${DOCS}`);
    }
    const errors = ingestResults.reduce((s, x) => s + x.errors, 0);
    return errors === 0 ? 0 : 1;
  } finally {
    for (const { node } of ingest) await stopNode(node);
    await receivers?.close();
    cgroups.remove();
    await sql.end({ timeout: 5 });
    await created.drop();
  }
}

function chunk(events: ClientEvent[]): ClientEvent[][] {
  const out: ClientEvent[][] = [];
  for (let i = 0; i < events.length; i += BATCH) out.push(events.slice(i, i + BATCH));
  return out;
}

process.exitCode = await main();
