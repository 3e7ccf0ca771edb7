// The delivery benchmark (`npm run bench:deliver`): stage 5 (server/src/pipeline/deliver) fanning events
// out to three webhook destinations (or those `--destinations` names), each POSTing to its own local receiver (a child process that
// records every event's idempotency key and arrival time). Throughput: a backlog sent through the real
// HTTP ingest, drained by a worker process (stage 2 + fan-out + delivery), then the same backlog replayed
// (delivery alone); every event must reach every receiver. Latency: events sent at a fixed rate through
// ingest to one server; latency = arrival at the receiver − the client's send time.
// See docs/benchmarks.md ("Delivery"); `--write` records the results there.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '@cairn/server';
import { createTestDatabase } from '@cairn/server/testing';
import postgres from 'postgres';
import {
  bySlice,
  countArrivals,
  type DestinationCount,
  latencies,
  type Percentiles,
  p50ByThird,
  percentiles,
  timelineText,
} from './deliver/analysis.ts';
import {
  createWebhook,
  dbNow,
  jobsSince,
  ledger,
  type PgCounters,
  pgCounters,
  pgDelta,
  purgeDeliveryJobs,
  replay,
  sendCalls,
  waitDelivered,
} from './deliver/cairn.ts';
import { coresText, deliverCpuMeter } from './deliver/cpu.ts';
import { type Arrivals, type ReceiverSpec, type Receivers, startReceivers } from './deliver/receiver.ts';
import {
  allOf,
  type DestinationSetup,
  type LatencyResult,
  latencyTable,
  type Report,
  reportText,
  type SendCalls,
  type ThroughputResult,
  throughputTable,
  verdictLine,
  writeResults,
} from './deliver/report.ts';
import { activityText, sampleActivity } from './deliver/sampler.ts';
import { Activity, signUpsOf } from './deliver/workload.ts';
import { type ClientEvent, makePeople, type Person } from './identify/people.ts';
import { idRange, type Node, sendBatches, startNode, stopNode } from './identify/servers.ts';
import { openLoop, percentile, type Target } from './ingest/load.ts';
import { describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';
import { QUIET_CORES } from './ingest/verdicts.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'benchmarks.md');
/** Events per /v1/batch request when storing the backlog, and requests at a time. */
const BATCH = 100;
const INGEST_CONCURRENCY = 4;
const SECRET = 'bench-deliver-secret-0123456789';
const DRAIN_TIMEOUT_MS = 240_000;
const wallNow = () => performance.timeOrigin + performance.now();
/** The latency timeline's slices. */
const TIMELINE_SLICE_MS = 5000;
/** The destinations a full run creates, each with its own receiver. */
const DESTINATION_NAMES = ['signed', 'batch', 'wide'] as const;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
      quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
      people: { type: 'string' },
      backlog: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'catch-up': { type: 'string', default: '60' },
      'per-request': { type: 'string', default: '1' },
      parallel: { type: 'string', default: '64' },
      concurrency: { type: 'string', default: '' },
      'latency-role': { type: 'string', default: process.env.BENCH_LATENCY_ROLE ?? 'all,split' },
      replay: { type: 'boolean', default: true },
      'no-replay': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'wait-quiet': { type: 'string', default: process.env.BENCH_WAIT_QUIET_S ?? '0' },
      'db-setup-sql': { type: 'string', default: process.env.BENCH_DB_SETUP_SQL ?? '' },
      destinations: { type: 'string', default: process.env.BENCH_DESTINATIONS ?? DESTINATION_NAMES.join(',') },
    },
  });
  const quick = values.quick;
  const num = (v: string | undefined, full: number, small: number) => Number(v ?? (quick ? small : full));
  const roles = values['latency-role'].split(',').filter((r) => r.trim());
  for (const role of roles) {
    if (role !== 'all' && role !== 'split') throw new Error('--latency-role must be all, split or both (all,split)');
  }
  const destinations = values.destinations.split(',').map((d) => d.trim());
  for (const d of destinations) {
    if (!(DESTINATION_NAMES as readonly string[]).includes(d) || !destinations.length)
      throw new Error(`--destinations: a comma-separated subset of ${DESTINATION_NAMES.join(',')}`);
  }
  return {
    write: values.write,
    quick,
    people: num(values.people, 3000, 500),
    backlog: num(values.backlog, 20_000, 3000),
    rate: Number(values.rate),
    durationMs: num(values.duration, 30, 10) * 1000,
    warmupMs: num(values.warmup, 20, 2) * 1000,
    /** How long a fixed-rate phase waits for its last deliveries after the last answer (keeps the run bounded). */
    catchUpMs: Number(values['catch-up']) * 1000,
    perRequest: Math.max(1, Number(values['per-request'])),
    parallel: Number(values.parallel),
    concurrency: values.concurrency ? Number(values.concurrency) : undefined,
    latencyRoles: roles as ('all' | 'split')[],
    replay: values.replay && !values['no-replay'],
    keep: values.keep,
    waitQuietMs: Number(values['wait-quiet']) * 1000,
    dbSetupSql: values['db-setup-sql'],
    destinations: DESTINATION_NAMES.filter((d) => destinations.includes(d)),
  };
}

type Options = ReturnType<typeof parseOptions>;

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

function jobsText(jobs: Record<string, number>): string {
  return `jobs queued: ${Object.entries(jobs)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ')}`;
}

function pgText(pg: PgCounters, events: number): string {
  return `${fmt(pg.commits)} Postgres transactions (${(pg.commits / events).toFixed(1)} per event), ${fmt(pg.ledgerScans)} sequential scans of deliveries (${fmt(pg.ledgerScanRows)} rows read)`;
}

/** A destination of the run and the receiver it posts to. */
interface Dest {
  name: string;
  id: string;
  description: string;
}

/** Everything the phases share. */
interface Run {
  opt: Options;
  env: Record<string, string>;
  url: string;
  sql: postgres.Sql;
  database: string;
  receivers: Receivers;
  dests: Dest[];
  people: Person[];
}

function receiverSpecs(opt: Options): ReceiverSpec[] {
  return opt.destinations.map((name) => (name === 'signed' ? { name, secret: SECRET } : { name }));
}

/** Creates the destinations through the admin API, each posting to its own receiver. */
async function createDestinations(node: Node, receivers: Receivers, opt: Options): Promise<Dest[]> {
  const concurrency = opt.concurrency ?? 2; // the API's default
  const all = {
    signed: {
      settings: { secret: SECRET, mode: 'single' },
      description: `single mode, HMAC-signed, parallel 32 (default), concurrency ${concurrency}`,
    },
    batch: {
      settings: { mode: 'batch' },
      description: `batch mode (up to 100 events per request), concurrency ${concurrency}`,
    },
    wide: {
      settings: { mode: 'single', parallel: opt.parallel },
      description: `single mode, parallel ${opt.parallel}, concurrency ${concurrency}`,
    },
  };
  // Receivers are started in the order of opt.destinations: the i-th posts to receivers.urls[i].
  const defs = opt.destinations.map((name, i) => ({
    name,
    settings: { ...all[name].settings, url: receivers.urls[i] },
    description: all[name].description,
  }));
  const out: Dest[] = [];
  for (const d of defs) {
    out.push({
      name: d.name,
      description: d.description,
      id: await createWebhook(node, d.name, d.settings, opt.concurrency),
    });
  }
  return out;
}

/** Requests of BATCH events, in order. */
function requestsOf(events: readonly ClientEvent[]): ClientEvent[][] {
  const out: ClientEvent[][] = [];
  for (let i = 0; i < events.length; i += BATCH) out.push(events.slice(i, i + BATCH));
  return out;
}

function countAll(run: Run, arrivals: Arrivals[], messageIds: ReadonlySet<string>): DestinationCount[] {
  return run.dests.map((d, i) => countArrivals(d.name, d.id, arrivals[i]!, messageIds));
}

function printCounts(counts: DestinationCount[]): void {
  for (const c of counts) {
    console.log(
      `    ${c.name}: ${fmt(c.arrived)} of ${fmt(c.expected)} events in ${fmt(c.requests)} requests, ${fmt(c.eventsPerSec)} events/s over ${((c.last - c.first) / 1000).toFixed(1)} s; missing ${c.missing}, duplicated keys ${c.duplicates}, unexpected ${c.unexpected}, bad signatures ${c.badSignatures}, at most ${c.connections} connections open`,
    );
  }
}

function ledgerByName(run: Run, byDestination: Map<string, Record<string, number>>) {
  return Object.fromEntries(run.dests.map((d) => [d.name, byDestination.get(d.id) ?? {}]));
}

/** The span and events/s of all destinations together. */
function overall(counts: DestinationCount[], events: number): { spanS: number; eventsPerSec: number } {
  const first = Math.min(...counts.map((c) => c.first));
  const last = Math.max(...counts.map((c) => c.last));
  const spanS = (last - first) / 1000;
  return { spanS, eventsPerSec: events / spanS };
}

function diffCalls(after: Record<string, SendCalls>, before: Record<string, SendCalls>): Record<string, SendCalls> {
  const out: Record<string, SendCalls> = {};
  for (const [name, a] of Object.entries(after)) {
    const b = before[name];
    const calls = a.calls - (b?.calls || 0);
    out[name] = { calls, meanMs: (a.meanMs * a.calls - (b ? b.meanMs * b.calls || 0 : 0)) / calls };
  }
  return out;
}

/**
 * Throughput through the whole pipeline: an ingest node stores the backlog, then a worker process
 * starts and runs stage 2, fan-out and delivery on it at once.
 */
async function pipelineDrain(
  run: Run,
  ingest: Node,
  backlog: ClientEvent[],
): Promise<{ result: ThroughputResult; worker: Node }> {
  const { sql, receivers } = run;
  const t0 = performance.now();
  await sendBatches(ingest, requestsOf(backlog), INGEST_CONCURRENCY);
  const range = await idRange(run.sql, 'b-');
  console.log(
    `  stored ${fmt(range.count)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s; starting a worker process (CAIRN_ROLE=worker)`,
  );
  await sql`VACUUM ANALYZE`;
  await receivers.take();
  const pgBefore = await pgCounters(sql);
  const since = await dbNow(sql);
  const worker = await startNode(run.env, { CAIRN_ROLE: 'worker' });
  const started = wallNow();
  const stop = deliverCpuMeter([worker.server.proc.pid, ingest.server.proc.pid], receivers.pid, run.database);
  const stopSampling = sampleActivity(run.url, run.database);
  const n = backlog.length;
  await waitDelivered(
    receivers,
    run.dests.map(() => n),
    sql,
    range,
    run.dests.map((d) => d.id),
    DRAIN_TIMEOUT_MS,
    'drain',
  );
  const cpu = stop();
  const activity = await stopSampling();
  const pg = await pgDelta(sql, pgBefore);
  const jobs = await jobsSince(sql, run.dests, since);
  const arrivals = await receivers.take();
  const calls = await sendCalls(worker, run.dests);
  const messageIds = new Set(backlog.map((e) => e.messageId));
  const counts = countAll(run, arrivals, messageIds);
  const all = overall(counts, n);
  const l = await ledger(sql, range);
  const [st] = await sql<{ p: number; ps: number; f: number; fs: number }[]>`
    SELECT
      (SELECT count(*)::int FROM events WHERE id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS p,
      (SELECT extract(epoch FROM max(processed_at) - min(processed_at))::float8 FROM events
        WHERE id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS ps,
      (SELECT count(DISTINCT event_id)::int FROM deliveries WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS f,
      (SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 FROM deliveries
        WHERE event_id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint) AS fs`;
  const result: ThroughputResult = {
    label: 'pipeline',
    what: 'the backlog is stored by an ingest node, then one worker process runs stage 2, fan-out and delivery on it at once',
    events: n,
    destinations: counts,
    ...all,
    wallS: (Math.max(...counts.map((c) => c.last)) - started) / 1000,
    ledger: ledgerByName(run, l.byDestination),
    retriedRows: l.retried,
    stages: {
      identifyPerSec: st!.p / st!.ps,
      identifySpanS: st!.ps,
      fanoutPerSec: st!.f / st!.fs,
      fanoutSpanS: st!.fs,
    },
    sendCalls: calls,
    jobs,
    pg,
    activity,
    cpu,
  };
  console.log(
    `  ${fmt(result.eventsPerSec)} events/s to ${allOf(run.dests.length)} (${result.spanS.toFixed(1)} s first → last arrival, ${result.wallS.toFixed(1)} s from the worker listening); ${pgText(pg, n)}; ${jobsText(jobs)}; ` +
      `stage 2 ${fmt(result.stages!.identifyPerSec)} events/s over ${result.stages!.identifySpanS.toFixed(1)} s, fan-out ${fmt(result.stages!.fanoutPerSec)} events/s over ${result.stages!.fanoutSpanS.toFixed(1)} s; ` +
      `${l.retried} ledger rows retried; cpu ${coresText(cpu)}`,
  );
  for (const r of l.reasons) console.log(`    not delivered: ${r}`);
  printCounts(counts);
  console.log(`    Postgres: ${activityText(activity)}`);
  return { result, worker };
}

/** Throughput of delivery alone: every delivery of the backlog replayed through the admin API at once. */
async function replayDrain(
  run: Run,
  ingest: Node,
  worker: Node,
  backlog: ClientEvent[],
  window: { from: Date; to: Date },
): Promise<ThroughputResult> {
  const { sql, receivers } = run;
  const range = await idRange(sql, 'b-');
  await sql`VACUUM ANALYZE`;
  await receivers.take();
  const before = await sendCalls(worker, run.dests);
  const pgBefore = await pgCounters(sql);
  const since = await dbNow(sql);
  const stop = deliverCpuMeter([worker.server.proc.pid, ingest.server.proc.pid], receivers.pid, run.database);
  const stopSampling = sampleActivity(run.url, run.database);
  const started = wallNow();
  const replayed = await Promise.all(run.dests.map((d) => replay(ingest, d.id, window.from, window.to)));
  console.log(
    `  replay requests answered in ${((wallNow() - started) / 1000).toFixed(1)} s (${replayed.map(fmt).join(' / ')} deliveries queued again)`,
  );
  const n = backlog.length;
  await waitDelivered(
    receivers,
    run.dests.map(() => n),
    sql,
    range,
    run.dests.map((d) => d.id),
    DRAIN_TIMEOUT_MS,
    'replay',
  );
  const cpu = stop();
  const activity = await stopSampling();
  const pg = await pgDelta(sql, pgBefore);
  const jobs = await jobsSince(sql, run.dests, since);
  const arrivals = await receivers.take();
  const calls = diffCalls(await sendCalls(worker, run.dests), before);
  const counts = countAll(run, arrivals, new Set(backlog.map((e) => e.messageId)));
  const l = await ledger(sql, range, 2);
  const result: ThroughputResult = {
    label: 'delivery only',
    what: 'every delivery of the same backlog replayed at once through `POST /api/destinations/:id/replay` (time range), sent by the same worker process',
    events: n,
    destinations: counts,
    ...overall(counts, n),
    wallS: (Math.max(...counts.map((c) => c.last)) - started) / 1000,
    ledger: ledgerByName(run, l.byDestination),
    retriedRows: l.retried,
    sendCalls: calls,
    jobs,
    pg,
    activity,
    cpu,
  };
  console.log(
    `  ${fmt(result.eventsPerSec)} events/s to ${allOf(run.dests.length)} (${result.spanS.toFixed(1)} s first → last arrival, ${result.wallS.toFixed(1)} s from the replay requests); ${pgText(pg, n)}; ${jobsText(jobs)}; cpu ${coresText(cpu)}`,
  );
  for (const r of l.reasons) console.log(`    not delivered: ${r}`);
  printCounts(counts);
  console.log(`    Postgres: ${activityText(activity)}`);
  return result;
}

/** Events at a fixed rate through ingest; latency from the client's send time to each receiver. */
async function latencyPhase(run: Run, role: 'all' | 'split', index: number): Promise<LatencyResult> {
  const { opt, sql, receivers } = run;
  const nodes: Node[] = [];
  try {
    let front: Node;
    if (role === 'all') {
      front = await startNode(run.env, { CAIRN_ROLE: 'all' });
      nodes.push(front);
    } else {
      front = await startNode(run.env, { CAIRN_ROLE: 'ingest' });
      nodes.push(front, await startNode(run.env, { CAIRN_ROLE: 'worker' }));
    }
    const url = new URL(front.server.url);
    const target: Target = {
      host: url.hostname,
      port: Number(url.port),
      headers: {
        Authorization: `Basic ${Buffer.from(`${front.writeKey}:`).toString('base64')}`,
        'Content-Type': 'application/json',
      },
    };
    const sentAt = new Map<string, number>();
    // The warm-up's send times too: its latencies show the start-up transient (timeline below).
    const warmAt = new Map<string, number>();
    const send = (w: Activity, durationMs: number, record: boolean) =>
      openLoop(target, {
        rate: opt.rate / opt.perRequest,
        durationMs,
        // As bench:ingest: many clients, not a pool that caps requests in flight. With 64, an answer
        // time above 64 ms (a group commit on a busy server) capped the generator at the phase's rate,
        // and the requests queued in the generator never drained.
        maxConnections: 256,
        next: () => {
          const at = wallNow();
          const events = Array.from({ length: opt.perRequest }, () => w.next(Date.now()));
          for (const e of events) {
            if (record) sentAt.set(e.messageId, at);
            else warmAt.set(e.messageId, at);
          }
          const e = events[0]!;
          return opt.perRequest === 1
            ? { path: `/v1/${e.type}`, body: JSON.stringify(e), events: 1 }
            : { path: '/v1/batch', body: JSON.stringify({ batch: events }), events: events.length };
        },
      });
    await receivers.take();
    const since = await dbNow(sql);
    // A warm-up at the same rate, not counted: a freshly started server (JIT, pools, prepared statements)
    // is slower, and the backlog it builds drains at capacity minus the rate (15-20 s here; the
    // timeline shows it).
    const warm = new Activity(run.people, `w${index}-`, 11 + index * 2);
    const w = await send(warm, opt.warmupMs, false);
    const before = await sendCalls(nodes.at(-1)!, run.dests);
    const pgBefore = await pgCounters(sql);
    const stopSampling = sampleActivity(run.url, run.database);
    const stop = deliverCpuMeter(
      nodes.map((n) => n.server.proc.pid),
      receivers.pid,
      run.database,
    );
    const measured = new Activity(run.people, `l${index}-`, 12 + index * 2);
    const r = await send(measured, opt.durationMs, true);
    const sentDone = wallNow();
    const cpu = stop();
    const activity = await stopSampling();
    const errors =
      [...r.errors.values()].reduce((a, b) => a + b, 0) + [...w.errors.values()].reduce((a, b) => a + b, 0);
    for (const [what, n] of [...w.errors, ...r.errors]) console.log(`    ${n} x ${what}`);
    const [a, b] = [await idRange(sql, `w${index}-`), await idRange(sql, `l${index}-`)];
    const range = {
      lo: String(Math.min(Number(a.lo), Number(b.lo))),
      hi: String(Math.max(Number(a.hi), Number(b.hi))),
    };
    const expected = warm.count + measured.count;
    const settled = await waitDelivered(
      receivers,
      run.dests.map(() => expected),
      sql,
      range,
      run.dests.map((d) => d.id),
      opt.catchUpMs,
      'latency catch-up',
    );
    const gaveUp = wallNow();
    const pg = await pgDelta(sql, pgBefore);
    const jobs = await jobsSince(sql, run.dests, since);
    const arrivals = await receivers.take();
    const calls = diffCalls(await sendCalls(nodes.at(-1)!, run.dests), before);
    // Every event of the phase, the warm-up's included, must reach every receiver.
    const counts = countAll(run, arrivals, new Set([...warmAt.keys(), ...sentAt.keys()]));
    const lastArrival = Math.max(...counts.map((c) => c.last));
    // Every key arrived (the ledger may lag the receivers by the last answers' writes).
    const complete = settled || counts.every((c) => c.missing === 0);
    const perDest = run.dests.map((d, i) => latencies(d.id, arrivals[i]!, sentAt));
    const samples = perDest.flat();
    const warmSamples = run.dests.flatMap((d, i) => latencies(d.id, arrivals[i]!, warmAt));
    const timeline = bySlice([...warmSamples, ...samples], TIMELINE_SLICE_MS);
    const rows: Percentiles[] = [
      ...run.dests.map((d, i) =>
        percentiles(
          d.name,
          perDest[i]!.map((x) => x.ms),
        ),
      ),
      percentiles(
        'all deliveries',
        samples.map((x) => x.ms),
      ),
    ];
    // Where the time goes, from the ledger and the events table (Postgres now() is a transaction's start).
    const db = await sql<{ m: string; d: string; received: number; processed: number; fanout: number }[]>`
      SELECT e.message_id AS m, d.destination_id AS d,
        extract(epoch FROM e.received_at)::float8 * 1000 AS received,
        extract(epoch FROM e.processed_at)::float8 * 1000 AS processed,
        extract(epoch FROM d.created_at)::float8 * 1000 AS fanout
      FROM events e JOIN deliveries d ON d.event_id = e.id
      WHERE e.id BETWEEN ${range.lo}::bigint AND ${range.hi}::bigint AND e.message_id LIKE ${`l${index}-%`}`;
    const arrivalOf = new Map<string, number>();
    for (const a of arrivals) {
      a.keys.forEach((k, j) => {
        if (!arrivalOf.has(k)) arrivalOf.set(k, a.at[j]!);
      });
    }
    const steps = {
      ingest: [] as number[],
      identify: [] as number[],
      fanout: [] as number[],
      send: new Map(run.dests.map((d) => [d.id, [] as number[]])),
    };
    const seenEvent = new Set<string>();
    for (const row of db) {
      if (!seenEvent.has(row.m)) {
        seenEvent.add(row.m);
        steps.ingest.push(row.received - sentAt.get(row.m)!);
        steps.identify.push(row.processed - row.received);
      }
      steps.fanout.push(row.fanout - row.processed);
      const at = arrivalOf.get(`${row.m}:${row.d}`);
      if (at !== undefined) steps.send.get(row.d)!.push(at - row.fanout);
    }
    const result: LatencyResult = {
      short: role === 'all' ? 'CAIRN_ROLE=all' : 'ingest + worker',
      role:
        role === 'all'
          ? 'one server running ingest and all workers (CAIRN_ROLE=all)'
          : 'an ingest node and a worker process (CAIRN_ROLE=ingest + worker)',
      rate: opt.rate,
      perRequest: opt.perRequest,
      durationS: opt.durationMs / 1000,
      warmupS: opt.warmupMs / 1000,
      sent: sentAt.size,
      acked: r.ackedEvents,
      requests: r.requests,
      errors,
      achievedRate: r.ackedEvents / r.seconds,
      maxLagMs: r.maxLagMs,
      ingestP99Ms: percentile(Float64Array.from(r.latencies).sort(), 99),
      catchUpS: ((complete ? lastArrival : gaveUp) - sentDone) / 1000,
      complete,
      purgedJobs: 0,
      rows,
      steps: [
        percentiles('client send → `received_at` (ingest)', steps.ingest),
        percentiles('`received_at` → `processed_at` (commit, queue, stage 2)', steps.identify),
        percentiles('`processed_at` → ledger row (queue, fan-out)', steps.fanout),
        ...run.dests.map((d) => percentiles(`ledger row → arrival: ${d.name} (queue, sender)`, steps.send.get(d.id)!)),
      ],
      p50ByThird: p50ByThird(samples),
      timeline,
      timelineSliceS: TIMELINE_SLICE_MS / 1000,
      counts,
      sendCalls: calls,
      jobs,
      pg,
      activity,
      cpu,
    };
    console.log(
      `  p50/p95 ms of the events sent in each ${TIMELINE_SLICE_MS / 1000} s from the start of the warm-up: ${timelineText(timeline, opt.warmupMs / TIMELINE_SLICE_MS)}`,
    );
    if (!complete) {
      console.log(
        `  WARNING: ${fmt(counts.reduce((n, c) => n + c.missing, 0))} deliveries had not arrived ${opt.catchUpMs / 1000} s after the last answer`,
      );
    }
    console.log(
      `  sent ${fmt(result.sent)} events (${fmt(result.achievedRate)}/s answered, ${errors} errors, generator at most ${result.maxLagMs.toFixed(0)} ms late); ${complete ? 'all' : 'the last'} arrived ${result.catchUpS.toFixed(1)} s after the last answer; ${pgText(pg, measured.count)}; p50 by third ${result.p50ByThird.map((x) => (Number.isFinite(x) ? x.toFixed(0) : '∞')).join(' / ')} ms; cpu ${coresText(cpu)}`,
    );
    printCounts(counts);
    console.log(`    ${jobsText(jobs)} (warm-up included)`);
    console.log(`    Postgres: ${activityText(activity)}`);
    console.log(
      `  send() calls: ${Object.entries(calls)
        .map(([k, v]) => `${k} ${fmt(v.calls)} × ${fmt(v.meanMs)} ms`)
        .join(', ')}`,
    );
    return result;
  } finally {
    for (const n of nodes.reverse()) {
      const errors = await stopNode(n);
      for (const line of errors.slice(0, 10)) console.log(`  server: ${line}`);
    }
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

function uptimeText(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch {
    return `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`;
  }
}

async function main(): Promise<number> {
  const opt = parseOptions();
  process.env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const started = performance.now();
  const load = loadavg();
  const uptime = uptimeText();
  // A database of this run's own: two runs on a shared machine must not drop each other's.
  const db = await createTestDatabase(`bench-deliver-${process.pid}-${Date.now()}`, 'postgres');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const database = new URL(db.url!).pathname.slice(1);
  if (opt.dbSetupSql) {
    // A diagnostic on the fresh database before any server connects, e.g. loading auto_explain.
    console.log(`database setup: ${opt.dbSetupSql}`);
    await sql.unsafe(opt.dbSetupSql.replaceAll('{db}', database));
  }
  let receivers: Receivers | undefined;
  let ingest: Node | undefined;
  let worker: Node | undefined;
  try {
    const machine = await describeMachine(sql);
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    console.log(`         ${uptime}`);
    const otherCores = await waitForQuiet(opt, database);
    const speedBefore = speedIndex();
    console.log(`         speed index ${speedBefore.toFixed(0)} (fixed JSON workload, thousands of rounds/s)`);

    receivers = await startReceivers(receiverSpecs(opt));
    ingest = await startNode(db.env, { CAIRN_ROLE: 'ingest' });
    const dests = await createDestinations(ingest, receivers, opt);
    console.log(`destinations: ${dests.map((d) => `${d.name} ${d.id} (${d.description})`).join('; ')}`);
    const people = makePeople(opt.people, 1);
    const run: Run = { opt, env: db.env, url: db.url!, sql, database, receivers, dests, people };

    // The backlog: every person's sign-up, then their activity, stamped one ms apart an hour ago.
    const from = new Date(Date.now() - 3_600_000);
    const signUps = signUpsOf(people, 'b-', from.getTime());
    const activity = new Activity(people, 'b-', 5);
    const backlog = [...signUps];
    while (backlog.length < opt.backlog) backlog.push(activity.next(from.getTime() + backlog.length));
    const window = { from, to: new Date(from.getTime() + backlog.length + 1) };

    console.log(
      `throughput: backlog of ${fmt(backlog.length)} events (${fmt(people.length)} sign-ups, then their activity) through /v1/batch (${BATCH} per request, ${INGEST_CONCURRENCY} at a time)`,
    );
    const drained = await pipelineDrain(run, ingest, backlog);
    worker = drained.worker;
    const throughput = [drained.result];
    if (opt.replay) {
      console.log(`throughput: the same backlog replayed to ${allOf(dests.length)} at once (delivery alone)`);
      throughput.push(await replayDrain(run, ingest, worker, backlog, window));
    }
    await stopNode(worker);
    worker = undefined;
    await stopNode(ingest);
    ingest = undefined;

    const latency: LatencyResult[] = [];
    for (const [i, role] of (opt.rate > 0 && opt.durationMs > 0 ? opt.latencyRoles : []).entries()) {
      await sql`VACUUM ANALYZE`;
      console.log(
        `latency: ${fmt(opt.rate)} events/s for ${opt.durationMs / 1000} s after a ${opt.warmupMs / 1000} s warm-up, ${opt.perRequest === 1 ? 'one event per request' : `${opt.perRequest} per request`}, CAIRN_ROLE=${role === 'all' ? 'all' : 'ingest + worker'}`,
      );
      const l = await latencyPhase(run, role, i + 1);
      // Deliveries a phase left queued would run during the next one: drop them (the servers are stopped).
      l.purgedJobs = await purgeDeliveryJobs(sql, dests);
      if (l.purgedJobs) console.log(`  removed ${fmt(l.purgedJobs)} delivery jobs left queued by the phase`);
      latency.push(l);
    }
    const speedAfter = speedIndex();
    console.log(`speed index after the run: ${speedAfter.toFixed(0)} (before: ${speedBefore.toFixed(0)})`);

    const notes = [
      'Each receiver answers 200 at once and records, per event, the idempotency key (`Idempotency-Key` header in single mode, each item\'s `idempotencyKey` in batch mode) and the time the request body was read; the signed receiver checks every `Cairn-Signature`. The receivers run in a child process of the benchmark; their CPU is the "receivers" column.',
      `"Events/s" of a destination counts its distinct events from its first to its last arrival; "${allOf(dests.length)}" counts the backlog's events from the first arrival at any receiver to the last at any, i.e. the rate at which events were fanned out and delivered everywhere.`,
      "Latency is measured per (event, destination) from the moment the load generator built the request (wall clock, `performance.timeOrigin + performance.now()` in both processes) to the moment the receiver had read the body; the first arrival of a key counts. The step table splits it with the database's timestamps (`received_at` is stamped by the ingest handler; `processed_at` and the ledger row's `created_at` are `now()` of their transactions, i.e. when those began).",
    ];
    const pipe = throughput[0]!;
    if (pipe.stages) {
      notes.push(
        `In the pipeline phase stage 2 processed the backlog at ${fmt(pipe.stages.identifyPerSec)} events/s (first → last \`processed_at\`, ${pipe.stages.identifySpanS.toFixed(1)} s) and fan-out wrote ledger rows for ${fmt(pipe.stages.fanoutPerSec)} events/s (first → last \`created_at\`, ${pipe.stages.fanoutSpanS.toFixed(1)} s), while delivery ran alongside: the slowest of the three stages sets that phase's rate.`,
      );
    }
    if (throughput.length > 1) {
      notes.push(
        `The same deliveries went out at ${throughput
          .map((p) => {
            const jobs = Object.values(p.jobs).reduce((x, y) => x + y, 0);
            return `${fmt(p.eventsPerSec)} events/s in the ${p.label} phase, from ${fmt(jobs / p.destinations.length)} queue jobs per destination (${((p.events * p.destinations.length) / jobs).toFixed(1)} events each)`;
          })
          .join(
            ', and at ',
          )}: a job holds up to a plugin batch (100 events) of whole profiles (a profile's pending events are never split over two jobs); a profile's events fanned out while it has unfinished ones wait without a job, and go in one job once those are finished.`,
      );
    }
    notes.push(
      `Postgres work per phase (transactions committed in the benchmark's database, \`pg_stat_database.xact_commit\`: every autocommit statement counts, reads included, and so do the benchmark's own few checks; sequential scans of the ledger table \`deliveries\`): ${[
        ...throughput.map((p) => `${p.label}: ${pgText(p.pg, p.events)}`),
        ...latency.map((l) => `latency, ${l.short}: ${pgText(l.pg, l.sent)}`),
      ].join('; ')}.`,
    );
    for (const p of throughput) {
      const problems = p.destinations.filter((d) => d.missing || d.duplicates || d.unexpected || d.badSignatures);
      notes.push(
        problems.length
          ? `${p.label}: ${problems.map((d) => `${d.name} missing ${d.missing}, duplicated ${d.duplicates}, unexpected ${d.unexpected}, bad signatures ${d.badSignatures}`).join('; ')}.`
          : `${p.label}: every event reached every receiver exactly once (counted by idempotency key), every signature checked out, ${fmt(p.retriedRows)} ledger rows needed a retry; ledger: ${Object.entries(
              p.ledger,
            )
              .map(
                ([name, s]) =>
                  `${name} ${Object.entries(s)
                    .map(([k, v]) => `${fmt(v)} ${k}`)
                    .join(', ')}`,
              )
              .join('; ')}.`,
      );
    }
    for (const l of latency) {
      const bad = l.counts.filter((d) => d.missing || d.duplicates || d.badSignatures);
      notes.push(
        bad.length
          ? `Latency phase (${l.role}): ${bad.map((d) => `${d.name} missing ${d.missing}, duplicated ${d.duplicates}, bad signatures ${d.badSignatures}`).join('; ')}.`
          : `Latency phase (${l.role}): every event reached every receiver exactly once. Plugin send() calls (server metrics): ${Object.entries(
              l.sendCalls,
            )
              .map(([k, v]) => `${k} ${fmt(v.calls)} calls, ${fmt(v.meanMs)} ms mean`)
              .join('; ')}.`,
      );
    }
    if (opt.dbSetupSql) notes.push(`Before the run the benchmark ran on its database: \`${opt.dbSetupSql}\`.`);
    if (otherCores > QUIET_CORES) {
      notes.push(`Other processes used ${otherCores.toFixed(2)} cores before the run: the machine was not quiet.`);
    }
    const report: Report = {
      date: new Date().toISOString().slice(0, 10),
      command: `npm run bench:deliver${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine: { ...machine, speedIndex: [speedBefore, speedAfter] },
      loadAverage: load,
      uptime,
      otherCores,
      settings: {
        CAIRN_DB_POOL_MAX: process.env.CAIRN_DB_POOL_MAX || String(DEFAULTS.poolMax),
        CAIRN_IDENTIFY_CONCURRENCY: process.env.CAIRN_IDENTIFY_CONCURRENCY || String(DEFAULTS.identifyConcurrency),
        CAIRN_COMMIT_MAX_ROWS: process.env.CAIRN_COMMIT_MAX_ROWS || String(DEFAULTS.commitMaxRows),
      },
      people: people.length,
      destinations: dests.map<DestinationSetup>((d) => ({ name: d.name, id: d.id, description: d.description })),
      throughput,
      latency,
      notes,
    };
    console.log(`\n${throughputTable(throughput)}\n`);
    for (const l of latency) console.log(`${l.role}:\n\n${latencyTable(l)}\n\n${verdictLine(l)}\n`);
    console.log(`whole run: ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (opt.write) {
      const full = opt.destinations.length === DESTINATION_NAMES.length;
      writeResults(DOCS, report, full ? '' : opt.destinations.join(','));
      console.log(`wrote ${DOCS}`);
    } else if (process.env.BENCH_PRINT_SECTION === '1') {
      console.log(reportText(report));
    }
    return 0;
  } finally {
    await stopNode(worker);
    await stopNode(ingest);
    await receivers?.close();
    await sql.end({ timeout: 5 });
    if (opt.keep) console.log(`kept the database: ${db.url}`);
    else await db.drop();
  }
}

process.exitCode = await main();
