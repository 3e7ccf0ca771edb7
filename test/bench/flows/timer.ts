import type postgres from 'postgres';
import { activityText, type PgActivity, sampleActivity } from '../deliver/sampler.ts';
import type { Node } from '../identify/servers.ts';
import { type CpuUse, cpuMeter } from '../ingest/machine.ts';
import {
  api,
  dbNowMs,
  fmt,
  liveFlow,
  type RelationSize,
  relationSize,
  type Spread,
  seededProfileSql,
  spread,
} from './cairn.ts';

// Phase 2 of bench:flows: N people waiting at a one-hour wait whose ends come due spread over a window.
// The runs are seeded with set-based INSERT … SELECT generate_series, each a copy of a run the real
// runner wrote (one person entered through the API: its flow_runs row and its journal rows), so the
// rows are what the runner writes (state, listen, exclusive…) without an hour of entering. Measured:
// how late each run's step was (its journal's time, i.e. the claim, minus its due time; and from a
// watcher of the timer's index, when the step was committed), and the steps/s sustained.

/** Runs per seeding statement. */
const CHUNK = 100_000;
/** The watcher's period. */
const WATCH_MS = 200;
const FAR = '2999-01-01T00:00:00Z';
// The watcher counts the due backlog up to this many (counting a large backlog every 200 ms costs Postgres).
const BACKLOG_CAP = 10_000;

/**
 * The flow of this phase: entered through the API, a one-hour wait, then `next`: an exit (no effect) or
 * a send through `destination`.
 *
 * @example
 * const def = timerFlow('exit');
 */
export function timerFlow(next: 'exit' | 'send', destination?: string): Record<string, unknown> {
  const last =
    next === 'send'
      ? { id: 'remind', type: 'send', destination, message: { body: 'Still thinking about it?' } }
      : { id: 'done', type: 'exit' };
  return {
    version: 1,
    name: `bench: wait → ${next}`,
    trigger: { type: 'api' },
    entry: { reentry: 'once' },
    nodes: [{ id: 'later', type: 'wait', duration: { hours: 1 } }, last],
    edges: [{ from: 'later', to: last.id, on: 'next' }],
  };
}

/** What seeding wrote and how fast. */
export interface Seeded {
  flowId: string;
  runs: number;
  journalRows: number;
  seconds: number;
  /** Runs inserted per second (INSERT … SELECT with the table's indexes in place): the raw reference. */
  runsPerSec: number;
  /** Epoch ms: the first due time, and the window. */
  start: number;
  spreadS: number;
  before: RelationSize;
  after: RelationSize;
  bytesPerRun: number;
  /** Steps of the journal before the phase (later ids are the phase's). */
  maxStepId: string;
  next: 'exit' | 'send';
}

/**
 * Creates the flow, enters one person through the API (the template), and copies that run and its
 * journal for the seeded profiles 1..n; due times uniform over [start, start + spread), start chosen so that the
 * seeding (timed on its first chunk) and `leadS` more are over by then.
 *
 * @example
 * const s = await seedWaiting(node, sql, { n: 1_000_000, spreadS: 600, leadS: 60, next: 'exit' });
 */
export async function seedWaiting(
  node: Node,
  sql: postgres.Sql,
  o: { n: number; spreadS: number; leadS: number; next: 'exit' | 'send'; destination: string },
): Promise<Seeded> {
  const flowId = await liveFlow(node, timerFlow(o.next, o.destination));
  // The template's person: a profile of its own (the seeded ones' md5 ids are no RFC 4122 UUIDs, which the API wants).
  const [p1] = await sql<{ id: string }[]>`
    INSERT INTO profiles (id, created_at, updated_at) VALUES (gen_random_uuid(), now(), now()) RETURNING id::text`;
  const entry = await api<{ runId: string }>(node, 'POST', `/flows/${flowId}/enter`, { profile: p1!.id, key: 'tpl' });
  const template = entry.runId;
  const [t] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM flow_steps WHERE run_id = ${template}`;
  console.log(`  template run ${template} (written by the runner: ${t!.n} journal rows); seeding ${fmt(o.n)} copies`);
  await sql`CREATE TABLE IF NOT EXISTS bench_flow_due (id uuid PRIMARY KEY, due timestamptz NOT NULL)`;
  const before = await relationSize(sql, 'flow_runs');
  const insert = async (lo: number, hi: number, start: number | null) => {
    // Run k is person k; its due time is start + spread × random() (or far away while calibrating).
    const due =
      start === null
        ? `'${FAR}'::timestamptz + random() * interval '${o.spreadS} seconds'`
        : `to_timestamp(${start / 1000}) + random() * interval '${o.spreadS} seconds'`;
    await sql.begin(async (tx) => {
      await tx`SET LOCAL synchronous_commit = off`;
      await tx.unsafe(
        `WITH ins AS (
           INSERT INTO flow_runs (id, flow_id, version, profile_id, status, node, iteration, due, listen, exclusive,
             entered_at, source_id, state)
           SELECT md5('flow-bench-run-' || k)::uuid, t.flow_id, t.version, ${seededProfileSql('k')}, t.status,
             t.node, t.iteration, ${due}, t.listen, t.exclusive, t.entered_at, t.source_id, t.state
           FROM flow_runs t, generate_series($2::int, $3::int) AS k
           WHERE t.id = $1
           RETURNING id, due)
         INSERT INTO bench_flow_due SELECT id, due FROM ins`,
        [template, lo, hi] as never[],
      );
      await tx.unsafe(
        `INSERT INTO flow_steps (run_id, node, iteration, at, type, outcome, to_node, reason, detail, event_id, decided)
         SELECT md5('flow-bench-run-' || k)::uuid, s.node, s.iteration, s.at, s.type, s.outcome, s.to_node, s.reason,
           s.detail, s.event_id, s.decided
         FROM flow_steps s, generate_series($2::int, $3::int) AS k
         WHERE s.run_id = $1 ORDER BY k, s.id`,
        [template, lo, hi] as never[],
      );
    });
  };
  const t0 = performance.now();
  const first = Math.min(o.n, Math.max(10_000, Math.round(o.n / 50)));
  await insert(1, first, null);
  const perRun = (performance.now() - t0) / first;
  const start = (await dbNowMs(sql)) + perRun * (o.n - first) * 1.3 + 15_000 + o.leadS * 1000;
  // The calibration chunk gets its real due times (a few thousand updates).
  await sql.unsafe(
    `WITH moved AS (
       UPDATE flow_runs r SET due = to_timestamp($1::float8 / 1000) + (r.due - $2::timestamptz)
       FROM bench_flow_due d WHERE d.id = r.id RETURNING r.id, r.due)
     UPDATE bench_flow_due d SET due = moved.due FROM moved WHERE moved.id = d.id`,
    [start, FAR] as never[],
  );
  for (let lo = first + 1; lo <= o.n; lo += CHUNK) {
    const hi = Math.min(o.n, lo + CHUNK - 1);
    await insert(lo, hi, start);
    console.log(`    ${fmt(hi)} runs (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const [last] = await sql<{ max: string }[]>`SELECT max(id)::text AS max FROM flow_steps`;
  await sql`VACUUM ANALYZE flow_runs`;
  await sql`VACUUM ANALYZE flow_steps`;
  await sql`VACUUM ANALYZE bench_flow_due`;
  const after = await relationSize(sql, 'flow_runs');
  const lead = (start - (await dbNowMs(sql))) / 1000;
  console.log(
    `  seeded ${fmt(o.n)} runs and ${fmt(o.n * t!.n)} journal rows in ${seconds.toFixed(1)} s (${fmt(o.n / seconds)} runs/s); the first comes due in ${lead.toFixed(0)} s`,
  );
  return {
    flowId,
    runs: o.n,
    journalRows: o.n * t!.n,
    seconds,
    runsPerSec: o.n / seconds,
    start,
    spreadS: o.spreadS,
    before,
    after,
    bytesPerRun: (after.total - before.total) / o.n,
    maxStepId: last!.max,
    next: o.next,
  };
}

/** What the timer phase measured. */
export interface TimerPhase {
  runs: number;
  spreadS: number;
  /** Runs the timer had not stepped when the phase ended. */
  unmoved: number;
  /** Journal time of the step (the claim, the runner's clock) − due, ms. */
  claimLate: Spread;
  /** When the watcher first saw the run's step committed − due, ms (resolution WATCH_MS). */
  commitLate: Spread;
  /** Runs stepped per second, first due → last step. */
  stepsPerSec: number;
  /** Per-second counts of steps over the window (their p50 and lowest full second; the highest). */
  perSecond: { p50: number; min: number; max: number };
  /** The longest backlog of due runs the watcher saw. */
  maxBacklog: number;
  dueLagMetric: string;
  cpu: CpuUse;
  activity: PgActivity;
  /** Runs already due when the server started (seeding overran the lead). */
  dueAtStart: number;
}

interface Poll {
  t: number;
  min: number | null;
  backlog: number;
}

/**
 * Watches the timer of `node` move the seeded runs until all are stepped (or `spread + graceS` passed),
 * then reads the journal.
 *
 * @example
 * const r = await timerPhase(node, sql, seeded, { url, database, graceS: 120 });
 */
export async function timerPhase(
  node: Node,
  sql: postgres.Sql,
  s: Seeded,
  o: { url: string; database: string; graceS: number },
): Promise<TimerPhase> {
  const [atStart] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM flow_runs WHERE status = 'waiting' AND due <= now() AND flow_id = ${s.flowId}`;
  const end = s.start + s.spreadS * 1000;
  // Wait for the window to open, then watch.
  const untilStart = s.start - (await dbNowMs(sql)) - 2000;
  if (untilStart > 0) await new Promise((r) => setTimeout(r, untilStart));
  const stopCpu = cpuMeter(node.server.proc.pid, o.database);
  const stopSampling = sampleActivity(o.url, o.database);
  const polls: Poll[] = [];
  let lastReport = 0;
  for (;;) {
    const [p] = await sql<Poll[]>`
      SELECT extract(epoch FROM now())::float8 * 1000 AS t,
        (SELECT extract(epoch FROM min(due))::float8 * 1000 FROM flow_runs
          WHERE status = 'waiting' AND due IS NOT NULL AND flow_id = ${s.flowId}) AS min,
        (SELECT count(*)::int FROM (SELECT 1 FROM flow_runs WHERE status = 'waiting' AND due IS NOT NULL
          AND due <= now() LIMIT ${BACKLOG_CAP}) x) AS backlog`;
    polls.push(p!);
    if (p!.t - lastReport > 30_000) {
      lastReport = p!.t;
      console.log(
        `    ${((p!.t - s.start) / 1000).toFixed(0)} s into the window: ${fmt(p!.backlog)} due runs waiting, oldest ${p!.min !== null && p!.min < p!.t ? `${((p!.t - p!.min) / 1000).toFixed(1)} s late` : 'not due yet'}`,
      );
    }
    if (p!.t > end && (p!.min === null || p!.min > end)) break;
    if (p!.t > end + o.graceS * 1000) break;
    await new Promise((r) => setTimeout(r, WATCH_MS));
  }
  const cpu = stopCpu();
  const activity = await stopSampling();
  const metrics = await fetch(`${node.server.url}/metrics`)
    .then((r) => r.text())
    .catch(() => '');
  const dueLagMetric = metrics
    .split('\n')
    .filter(
      (l) => l.startsWith('cairn_flow_due_lag_seconds_bucket') || l.startsWith('cairn_flow_due_lag_seconds_count'),
    )
    .map((l) => l.replace('cairn_flow_due_lag_seconds_', ''))
    .join(', ');

  const [late] = await sql<{ n: number; p50: number; p95: number; p99: number; max: number; unmoved: number }[]>`
    WITH first AS (
      SELECT run_id, min(at) AS at FROM flow_steps WHERE id > ${s.maxStepId}::bigint GROUP BY run_id),
    l AS (
      SELECT extract(epoch FROM f.at - d.due)::float8 * 1000 AS ms FROM bench_flow_due d JOIN first f ON f.run_id = d.id)
    SELECT count(*)::int AS n,
      percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_disc(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
      percentile_disc(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max,
      (SELECT count(*)::int FROM bench_flow_due) - count(*)::int AS unmoved
    FROM l`;
  const perSecond = await sql<{ n: number }[]>`
    SELECT count(DISTINCT run_id)::int AS n FROM flow_steps
    WHERE id > ${s.maxStepId}::bigint AND at >= to_timestamp(${s.start / 1000}) AND at < to_timestamp(${end / 1000})
    GROUP BY date_trunc('second', at) ORDER BY date_trunc('second', at)`;
  const [span] = await sql<{ last: number }[]>`
    SELECT extract(epoch FROM max(at))::float8 * 1000 AS last FROM flow_steps WHERE id > ${s.maxStepId}::bigint`;
  // Commit lateness: a run due at d was committed by the first poll whose oldest waiting due is later than d.
  const dues = await sql<
    { d: number }[]
  >`SELECT extract(epoch FROM due)::float8 * 1000 AS d FROM bench_flow_due ORDER BY due`;
  const commitLate: number[] = [];
  let i = 0;
  for (const p of polls) {
    const bound = p.min === null ? Number.POSITIVE_INFINITY : p.min;
    for (; i < dues.length && dues[i]!.d < bound; i++) commitLate.push(Math.max(0, p.t - dues[i]!.d));
  }
  const counts = perSecond.map((r) => r.n).sort((a, b) => a - b);
  const result: TimerPhase = {
    runs: s.runs,
    spreadS: s.spreadS,
    unmoved: late!.unmoved,
    claimLate: { n: late!.n, p50: late!.p50, p95: late!.p95, p99: late!.p99, max: late!.max },
    commitLate: spread(commitLate),
    stepsPerSec: late!.n / ((span!.last - s.start) / 1000),
    perSecond: {
      p50: counts[Math.floor(counts.length / 2)] ?? NaN,
      min: counts.slice(1, -1)[0] ?? NaN,
      max: counts[counts.length - 1] ?? NaN,
    },
    maxBacklog: Math.max(...polls.map((p) => p.backlog)),
    dueLagMetric,
    cpu,
    activity,
    dueAtStart: atStart!.n,
  };
  console.log(
    `  ${fmt(result.claimLate.n)} runs stepped, ${fmt(result.unmoved)} not; late (journal time − due) p50/p95/p99/max ${result.claimLate.p50.toFixed(0)}/${result.claimLate.p95.toFixed(0)}/${result.claimLate.p99.toFixed(0)}/${result.claimLate.max.toFixed(0)} ms; ` +
      `committed − due p50/p95/max ${result.commitLate.p50.toFixed(0)}/${result.commitLate.p95.toFixed(0)}/${result.commitLate.max.toFixed(0)} ms; ${fmt(result.stepsPerSec)} steps/s (per second: p50 ${fmt(result.perSecond.p50)}, min ${fmt(result.perSecond.min)}, max ${fmt(result.perSecond.max)}); largest backlog ${fmt(result.maxBacklog)}`,
  );
  console.log(`  Postgres: ${activityText(activity)}`);
  if (dueLagMetric) console.log(`  cairn_flow_due_lag_seconds: ${dueLagMetric}`);
  return result;
}
