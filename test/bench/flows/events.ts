import type postgres from 'postgres';
import type { Receivers } from '../deliver/receiver.ts';
import { activityText, type PgActivity, sampleActivity } from '../deliver/sampler.ts';
import type { Node } from '../identify/servers.ts';
import { openLoop, percentile, type Target } from '../ingest/load.ts';
import { type CpuUse, cpuMeter } from '../ingest/machine.ts';
import { fmt, liveFlow, type Spread, spread } from './cairn.ts';

// Phase 1 of bench:flows: trigger events at a fixed rate through the tracking API to one server; a
// flow whose trigger is that event sends a message through a webhook destination to a local receiver.
// Latency of each event from its acceptance (`received_at`, stamped by the ingest handler) to the run's
// first step, to the ledger row of its message, and to the message's arrival at the receiver.

/** The trigger event's name. */
export const TRIGGER = 'Bench Flow Trigger';
const wallNow = () => performance.timeOrigin + performance.now();

/**
 * The flow of this phase: the trigger event → send through `destination` (the run then completes).
 *
 * @example
 * const def = eventFlow('dst_1');
 */
export function eventFlow(destination: string): Record<string, unknown> {
  return {
    version: 1,
    name: 'bench: event → send',
    trigger: { type: 'event', event: TRIGGER },
    entry: { reentry: 'every_time', concurrent: true },
    nodes: [
      {
        id: 'hello',
        type: 'send',
        destination,
        message: { subject: 'Hello', body: 'Order {{ event.properties.order | default: "?" }} is on its way' },
      },
    ],
    edges: [],
  };
}

/** What the phase measured. */
export interface EventPhase {
  rate: number;
  durationS: number;
  warmupS: number;
  people: number;
  sent: number;
  acked: number;
  errors: number;
  ingestP99Ms: number;
  maxLagMs: number;
  /** Events of the measured window. */
  measured: number;
  runs: number;
  ledgerRows: number;
  arrived: number;
  duplicates: number;
  /** Latency from acceptance (received_at), ms. */
  toStep: Spread;
  toLedger: Spread;
  toArrival: Spread;
  /** From the client's send time to arrival (the whole path, as bench:deliver measures it). */
  clientToArrival: Spread;
  /** Split: acceptance → stage 2 done (processed_at); processed_at → run's first step; step → ledger row. */
  toProcessed: Spread;
  processedToStep: Spread;
  stepToLedger: Spread;
  catchUpS: number;
  /** The `automate` queue's jobs of the measured window: how many, ids per job, queued and run ms. */
  automateJobs: { n: number; ids: number; queued: Spread; run: Spread };
  cpu: CpuUse;
  activity: PgActivity;
}

interface Row {
  m: string;
  received: number;
  processed: number | null;
  step: number | null;
  ledger: number | null;
  key: string;
}

/**
 * Runs phase 1 against `node` (CAIRN_ROLE=all): creates the flow, sends `rate` trigger events/s for
 * `warmupS + durationS` seconds (the warm-up's events are not counted), waits up to `catchUpS` for
 * the last arrivals.
 *
 * @example
 * const r = await eventPhase({ node, sql, receivers, destination, rate: 1000, durationS: 30, warmupS: 10 });
 */
export async function eventPhase(o: {
  node: Node;
  sql: postgres.Sql;
  url: string;
  database: string;
  receivers: Receivers;
  destination: string;
  rate: number;
  durationS: number;
  warmupS: number;
  people: number;
  catchUpS: number;
}): Promise<EventPhase> {
  const { node, sql } = o;
  const flowId = await liveFlow(node, eventFlow(o.destination));
  console.log(`  flow ${flowId} live: "${TRIGGER}" → send through the webhook destination`);
  const url = new URL(node.server.url);
  const target: Target = {
    host: url.hostname,
    port: Number(url.port),
    headers: {
      Authorization: `Basic ${Buffer.from(`${node.writeKey}:`).toString('base64')}`,
      'Content-Type': 'application/json',
    },
  };
  const sentAt = new Map<string, number>();
  let seq = 0;
  const next = (prefix: string) => () => {
    const i = seq++;
    const messageId = `${prefix}${i}`;
    sentAt.set(messageId, wallNow());
    return {
      path: '/v1/track',
      body: JSON.stringify({
        type: 'track',
        userId: `fe${i % o.people}`,
        event: TRIGGER,
        messageId,
        timestamp: new Date().toISOString(),
        properties: { order: `o-${i}` },
      }),
      events: 1,
    };
  };
  await o.receivers.take();
  if (o.warmupS > 0) {
    const w = await openLoop(target, {
      rate: o.rate,
      durationMs: o.warmupS * 1000,
      maxConnections: 256,
      next: next('fw-'),
    });
    console.log(`  warm-up: ${fmt(w.ackedEvents)} events answered 200 in ${w.seconds.toFixed(1)} s`);
  }
  const stopCpu = cpuMeter(node.server.proc.pid, o.database);
  const stopSampling = sampleActivity(o.url, o.database);
  const [{ from } = { from: new Date() }] = await sql<{ from: Date }[]>`SELECT now() AS from`;
  const r = await openLoop(target, {
    rate: o.rate,
    durationMs: o.durationS * 1000,
    maxConnections: 256,
    next: next('fm-'),
  });
  const sentDone = wallNow();
  const measured = [...sentAt.keys()].filter((m) => m.startsWith('fm-')).length;
  const errors = [...r.errors.values()].reduce((a, b) => a + b, 0);
  for (const [k, v] of r.errors) console.log(`  error ×${v}: ${k}`);
  // Every event's message at the receiver (warm-up included), or give up after catchUpS.
  const total = sentAt.size - errors;
  let arrivedCount = 0;
  for (const until = sentDone + o.catchUpS * 1000; wallNow() < until; ) {
    arrivedCount = (await o.receivers.count())[0]!;
    if (arrivedCount >= total) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const catchUpS = (wallNow() - sentDone) / 1000;
  const cpu = stopCpu();
  const activity = await stopSampling();
  const [arrivals] = await o.receivers.take();
  // The run an event starts has the id runIdFor(flow, event) (server/src/pipeline/automate/runner.ts),
  // derived here in SQL the same way; the message's idempotency key is flow:<run>:<node>:<iteration>.
  // Hash joins over whole tables (a fresh database has no statistics; nested loops took minutes once).
  await sql`ANALYZE events, deliveries, flow_steps`;
  const rows = await sql<Row[]>`
    WITH ev AS MATERIALIZED (
      SELECT e.message_id AS m, e.received_at, e.processed_at,
        encode(sha256(convert_to('cairn.flow-run:' || ${flowId}::text || ':' || e.id::text, 'UTF8')), 'hex') AS h
      FROM events e WHERE e.message_id LIKE 'fm-%' AND e.event = ${TRIGGER}),
    runs AS MATERIALIZED (
      SELECT ev.*, (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-8' || substr(h, 14, 3) || '-' || substr(h, 17, 4)
        || '-' || substr(h, 21, 12))::uuid AS run FROM ev),
    steps AS MATERIALIZED (
      SELECT run_id, min(at) AS at FROM flow_steps GROUP BY run_id),
    ledger AS MATERIALIZED (
      SELECT idempotency_key AS key, created_at FROM deliveries WHERE destination_id = ${o.destination} AND event_id IS NULL)
    SELECT runs.m, extract(epoch FROM runs.received_at)::float8 * 1000 AS received,
      extract(epoch FROM runs.processed_at)::float8 * 1000 AS processed,
      extract(epoch FROM s.at)::float8 * 1000 AS step,
      extract(epoch FROM l.created_at)::float8 * 1000 AS ledger,
      'flow:' || runs.run::text || ':hello:0' AS key
    FROM runs
    LEFT JOIN steps s ON s.run_id = runs.run
    LEFT JOIN ledger l ON l.key = 'flow:' || runs.run::text || ':hello:0'`;
  // Stage 4's queue: the time a job of attached events waited for the automate worker, and the worker's call.
  const jobs = await sql<{ ids: number; queued: number; run: number }[]>`
    SELECT jsonb_array_length(data -> 'ids')::int AS ids,
      extract(epoch FROM started_on - created_on)::float8 * 1000 AS queued,
      extract(epoch FROM completed_on - started_on)::float8 * 1000 AS run
    FROM pgboss.job WHERE name = 'automate' AND created_on >= ${from} AND state = 'completed'`;
  const automateJobs = {
    n: jobs.length,
    ids: jobs.reduce((a, j) => a + j.ids, 0) / (jobs.length || 1),
    queued: spread(jobs.map((j) => j.queued)),
    run: spread(jobs.map((j) => j.run)),
  };
  const arrival = new Map<string, number>();
  let duplicates = 0;
  arrivals!.keys.forEach((k, j) => {
    if (arrival.has(k)) duplicates++;
    else arrival.set(k, arrivals!.at[j]!);
  });
  const d = (a: number | null | undefined, b: number | null | undefined) =>
    a === null || a === undefined || b === null || b === undefined ? undefined : b - a;
  const pick = (f: (row: Row) => number | undefined) => rows.map(f).filter((x): x is number => x !== undefined);
  const result: EventPhase = {
    rate: o.rate,
    durationS: o.durationS,
    warmupS: o.warmupS,
    people: o.people,
    sent: measured,
    acked: r.ackedEvents,
    errors,
    ingestP99Ms: percentile(Float64Array.from(r.latencies).sort(), 99),
    maxLagMs: r.maxLagMs,
    measured: rows.length,
    runs: rows.filter((x) => x.step !== null).length,
    ledgerRows: rows.filter((x) => x.ledger !== null).length,
    arrived: rows.filter((x) => arrival.has(x.key)).length,
    duplicates,
    toStep: spread(pick((x) => d(x.received, x.step))),
    toLedger: spread(pick((x) => d(x.received, x.ledger))),
    toArrival: spread(pick((x) => d(x.received, arrival.get(x.key)))),
    clientToArrival: spread(pick((x) => d(sentAt.get(x.m), arrival.get(x.key)))),
    toProcessed: spread(pick((x) => d(x.received, x.processed))),
    processedToStep: spread(pick((x) => d(x.processed, x.step))),
    stepToLedger: spread(pick((x) => d(x.step, x.ledger))),
    catchUpS,
    automateJobs,
    cpu,
    activity,
  };
  console.log(
    `  ${fmt(result.acked)} of ${fmt(measured)} events answered 200 (${errors} errors; ingest p99 ${result.ingestP99Ms.toFixed(0)} ms; generator at most ${result.maxLagMs.toFixed(0)} ms late); ` +
      `runs ${fmt(result.runs)}, ledger rows ${fmt(result.ledgerRows)}, arrived ${fmt(result.arrived)} (duplicated keys ${duplicates}); the last arrived ${catchUpS.toFixed(1)} s after the last send`,
  );
  console.log(
    `  acceptance → first step p50/p95 ${result.toStep.p50.toFixed(0)}/${result.toStep.p95.toFixed(0)} ms; → ledger row ${result.toLedger.p50.toFixed(0)}/${result.toLedger.p95.toFixed(0)} ms; → arrival ${result.toArrival.p50.toFixed(0)}/${result.toArrival.p95.toFixed(0)} ms`,
  );
  console.log(
    `  automate queue: ${fmt(automateJobs.n)} jobs of ${automateJobs.ids.toFixed(1)} events; queued p50/p95 ${automateJobs.queued.p50.toFixed(0)}/${automateJobs.queued.p95.toFixed(0)} ms, worker call p50/p95 ${automateJobs.run.p50.toFixed(0)}/${automateJobs.run.p95.toFixed(0)} ms`,
  );
  console.log(`  Postgres: ${activityText(activity)}`);
  return result;
}
