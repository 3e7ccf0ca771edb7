// The flows benchmark (`npm run bench:flows`): stage 4 (server/src/pipeline/automate) on a real Postgres
// with real Cairn server processes, against issue 17's budgets:
//   1. trigger events at 1,000/s through the tracking API → a flow's send through a webhook destination to a
//      local receiver: acceptance → run's first step / ledger row / arrival (flows/events.ts);
//   2. an audience whose rule change enters 100,000 seeded profiles at once: → every run's first step
//      (flows/audience.ts), and the bytes per waiting run those runs take (flow_runs and its indexes);
//   3. 1,000,000 runs waiting (seeded by INSERT … SELECT as copies of a runner-written run), due spread over
//      10 minutes: how late the timer steps them, steps/s (flows/timer.ts).
// References measured in the same run: a bare node:http echo at the same request rate, and the raw
// INSERT rate of the seeding. Prints the results as markdown (see docs/benchmarks.md, "Issue 17: flows").
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createTestDatabase } from '@cairn/server/testing';
import postgres from 'postgres';
import { type Receivers, startReceivers } from './deliver/receiver.ts';
import { audiencePhase } from './flows/audience.ts';
import { api, fmt, relationSize, seedProfiles, spread } from './flows/cairn.ts';
import { eventPhase } from './flows/events.ts';
import { type Report, reportText } from './flows/report.ts';
import { seedWaiting, timerPhase } from './flows/timer.ts';
import { type Node, startNode, stopNode } from './identify/servers.ts';
import { openLoop, type Target } from './ingest/load.ts';
import { describeMachine, otherLoad, speedIndex } from './ingest/machine.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const PHASES = ['events', 'audience', 'timer'] as const;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      people: { type: 'string' },
      spread: { type: 'string' },
      audience: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      next: { type: 'string', default: 'exit' },
      phases: { type: 'string', default: PHASES.join(',') },
      lead: { type: 'string', default: '20' },
      grace: { type: 'string', default: '120' },
      'catch-up': { type: 'string', default: '120' },
      keep: { type: 'boolean', default: false },
    },
  });
  const q = values.quick;
  const num = (v: string | undefined, full: number, small: number) => Number(v ?? (q ? small : full));
  const phases = values.phases.split(',').map((p) => p.trim());
  for (const p of phases)
    if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--phases: a subset of ${PHASES.join(',')}`);
  if (values.next !== 'exit' && values.next !== 'send') throw new Error('--next: exit or send');
  return {
    people: num(values.people, 1_000_000, 20_000),
    spreadS: num(values.spread, 600, 60),
    audience: num(values.audience, 100_000, 5_000),
    rate: Number(values.rate),
    durationS: num(values.duration, 30, 10),
    warmupS: num(values.warmup, 10, 3),
    next: values.next as 'exit' | 'send',
    phases: new Set(phases),
    leadS: Number(values.lead),
    graceS: Number(values.grace),
    catchUpS: Number(values['catch-up']),
    keep: values.keep,
  };
}

/** The bare node:http echo (ingest/bare-http.ts) in a process of its own, at `rate` requests/s for 10 s. */
async function bareReference(rate: number): Promise<NonNullable<Report['bare']>> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), 'ingest', 'bare-http.ts')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        const m = /listening on (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`bare-http exited with ${code}`)));
    });
    const target: Target = {
      host: '127.0.0.1',
      port,
      headers: {
        Authorization: `Basic ${Buffer.from('bench:').toString('base64')}`,
        'Content-Type': 'application/json',
      },
    };
    let i = 0;
    const next = () => ({
      path: '/v1/track',
      body: JSON.stringify({ type: 'track', userId: `fe${i}`, event: 'Bench', messageId: `bare-${i++}` }),
      events: 1,
    });
    await openLoop(target, { rate, durationMs: 2000, maxConnections: 256, next });
    const r = await openLoop(target, { rate, durationMs: 10_000, maxConnections: 256, next });
    const s = spread(r.latencies);
    return { rate, p50: s.p50, p95: s.p95, p99: s.p99 };
  } finally {
    proc.kill('SIGTERM');
  }
}

async function main(): Promise<number> {
  const opt = parseOptions();
  process.env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const started = performance.now();
  const db = await createTestDatabase(`bench-flows-${process.pid}-${Date.now()}`, 'postgres');
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  const database = new URL(db.url!).pathname.slice(1);
  let receivers: Receivers | undefined;
  let node: Node | undefined;
  try {
    const machine = await describeMachine(sql);
    console.log(
      `machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB; Node ${machine.node}; PostgreSQL ${machine.postgres}`,
    );
    const otherCores = await otherLoad(2000, database);
    console.log(`         other processes keep ${otherCores.toFixed(2)} cores busy before the run`);
    const speedBefore = speedIndex();
    const report: Report = {
      date: new Date().toISOString().slice(0, 16).replace('T', ' '),
      command: `npm run bench:flows${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine,
      otherCores,
      speed: [speedBefore, Number.NaN],
    };
    if (opt.phases.has('events')) {
      console.log(`reference: bare node:http echo at ${fmt(opt.rate)} requests/s`);
      report.bare = await bareReference(opt.rate);
      console.log(
        `  p50/p95/p99 ${report.bare.p50.toFixed(1)}/${report.bare.p95.toFixed(1)}/${report.bare.p99.toFixed(1)} ms`,
      );
    }
    receivers = await startReceivers([{ name: 'flows' }]);
    // The server migrates the database; the profiles are seeded while it idles.
    node = await startNode(db.env, { CAIRN_ROLE: 'all' });
    const profiles = Math.max(opt.phases.has('timer') ? opt.people : 0, opt.audience);
    console.log(`seeding ${fmt(profiles)} profiles (${fmt(opt.audience)} with bench_cohort = a)`);
    const seedS = await seedProfiles(sql, profiles, opt.audience);
    console.log(`  ${seedS.toFixed(1)} s`);
    // Flow messages only: the filter lets no tracked event through (a message is no event of the fan-out).
    const { id: destination } = await api<{ id: string }>(node, 'POST', '/destinations', {
      name: 'flows',
      plugin: 'webhook',
      settings: { url: receivers.urls[0], mode: 'single' },
      filter: { event: 'Bench: no such event' },
    });
    const common = { sql, url: db.url!, database, receivers, destination };

    if (opt.phases.has('audience')) {
      console.log(`audience: ${fmt(opt.audience)} people enter an audience at once`);
      report.audience = await audiencePhase({
        ...common,
        node,
        expected: opt.audience,
        timeoutS: 300,
        catchUpS: opt.catchUpS,
      });
      await sql`VACUUM ANALYZE flow_runs`;
      const [w] = await sql<{ n: number; all: number }[]>`
        SELECT count(*) FILTER (WHERE status = 'waiting')::int AS n, count(*)::int AS all FROM flow_runs`;
      report.storage = { runs: w!.n, size: await relationSize(sql, 'flow_runs') };
      console.log(
        `  storage: ${fmt(report.storage.size.total / w!.n)} bytes per waiting run (${fmt(w!.n)} waiting of ${fmt(w!.all)} rows)`,
      );
    }
    if (opt.phases.has('events')) {
      console.log(
        `events: ${fmt(opt.rate)} trigger events/s for ${opt.durationS} s after a ${opt.warmupS} s warm-up, one per request`,
      );
      report.events = await eventPhase({
        ...common,
        node,
        rate: opt.rate,
        durationS: opt.durationS,
        warmupS: opt.warmupS,
        people: 5000,
        catchUpS: opt.catchUpS,
      });
    }
    if (opt.phases.has('timer')) {
      // A fresh server: what the earlier phases left queued (deliveries) is done or dropped with the old one.
      await stopNode(node);
      await sql`DELETE FROM pgboss.job WHERE state IN ('created', 'retry')`;
      node = await startNode(db.env, { CAIRN_ROLE: 'all' });
      console.log(`timer: seeding ${fmt(opt.people)} waiting runs, due over ${opt.spreadS} s, next node ${opt.next}`);
      report.seeded = await seedWaiting(node, sql, {
        n: opt.people,
        spreadS: opt.spreadS,
        leadS: opt.leadS,
        next: opt.next,
        destination,
      });
      report.timer = await timerPhase(node, sql, report.seeded, { url: db.url!, database, graceS: opt.graceS });
    }
    report.speed[1] = speedIndex();
    const errors = await stopNode(node);
    node = undefined;
    for (const line of errors.slice(0, 10)) console.log(`  server: ${line}`);
    console.log(`\nwhole run: ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    console.log(reportText(report));
    return 0;
  } finally {
    await stopNode(node);
    await receivers?.close();
    await sql.end({ timeout: 5 });
    if (opt.keep) console.log(`kept the database: ${db.url}`);
    else await db.drop();
  }
}

process.exitCode = await main();
