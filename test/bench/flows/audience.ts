import type postgres from 'postgres';
import type { Receivers } from '../deliver/receiver.ts';
import { activityText, type PgActivity, sampleActivity } from '../deliver/sampler.ts';
import type { Node } from '../identify/servers.ts';
import { type CpuUse, cpuMeter } from '../ingest/machine.ts';
import { api, dbNowMs, fmt, liveFlow, type Spread, spread, traitIs } from './cairn.ts';

// Phase 3 of bench:flows: an audience whose rule is changed through the API so that `expected` seeded
// profiles enter it at once; a flow triggered by entering that audience sends through a webhook
// destination and then waits a week. Measured from the change (the PATCH) to every run's first step
// (entry, send handed to delivery, the wait reached: one transaction), and on to the ledger and the receiver.

/** The audience's key. */
export const AUDIENCE = 'bench_flow_cohort';
const POLL_MS = 250;

/**
 * The flow of this phase: audience entered → send → wait 7 days.
 *
 * @example
 * const def = audienceFlow('dst_1');
 */
export function audienceFlow(destination: string): Record<string, unknown> {
  return {
    version: 1,
    name: 'bench: audience entered → send → wait',
    trigger: { type: 'audience_entered', audience: AUDIENCE },
    entry: { reentry: 'once' },
    nodes: [
      { id: 'welcome', type: 'send', destination, message: { subject: 'Welcome', body: 'Hello {{ profile.id }}' } },
      { id: 'cool_off', type: 'wait', duration: { days: 7 } },
    ],
    edges: [{ from: 'welcome', to: 'cool_off', on: 'next' }],
  };
}

/** What the audience phase measured. */
export interface AudiencePhase {
  expected: number;
  members: number;
  runs: number;
  /** From the PATCH to the recompute's computedAt, ms. */
  recomputeMs: number;
  /** From the PATCH to the last `audience.entered` event's received_at, ms. */
  eventsMs: number;
  /** From the PATCH to the run's first step (journal time), per run, ms. */
  firstStep: Spread;
  /** From the PATCH to the watcher seeing every run, ms. */
  allVisibleMs: number;
  ledgerRows: number;
  /** From the PATCH to the last ledger row, ms. */
  ledgerMs: number;
  arrived: number;
  /** From the PATCH to the last arrival seen (or the give-up), ms. */
  arrivedMs: number;
  cpu: CpuUse;
  activity: PgActivity;
}

/**
 * Runs phase 3 on `node`: creates the audience (matching nobody yet) and the flow, then changes the
 * audience's rule to `bench_cohort = a`.
 *
 * @example
 * const r = await audiencePhase({ node, sql, receivers, destination, expected: 100_000, timeoutS: 300 });
 */
export async function audiencePhase(o: {
  node: Node;
  sql: postgres.Sql;
  url: string;
  database: string;
  receivers: Receivers;
  destination: string;
  expected: number;
  timeoutS: number;
  catchUpS: number;
}): Promise<AudiencePhase> {
  const { node, sql } = o;
  await api(node, 'POST', '/audiences', {
    key: AUDIENCE,
    name: 'bench: cohort',
    rule: traitIs('bench_cohort', 'none'),
  });
  for (;;) {
    const [a] = await sql<
      { done: boolean }[]
    >`SELECT computed_at IS NOT NULL AS done FROM audiences WHERE key = ${AUDIENCE}`;
    if (a?.done) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const flowId = await liveFlow(node, audienceFlow(o.destination));
  console.log(`  audience ${AUDIENCE} (nobody yet) and flow ${flowId} live; changing the rule to bench_cohort = a`);
  await o.receivers.take();
  const stopCpu = cpuMeter(node.server.proc.pid, o.database);
  const stopSampling = sampleActivity(o.url, o.database);
  const t0 = await dbNowMs(sql);
  await api(node, 'PATCH', `/audiences/${AUDIENCE}`, { rule: traitIs('bench_cohort', 'a') });
  let runs = 0;
  let allVisibleMs = Number.NaN;
  let lastReport = t0;
  for (;;) {
    const [r] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM flow_runs WHERE flow_id = ${flowId}`;
    runs = r!.n;
    const now = await dbNowMs(sql);
    if (runs >= o.expected) {
      allVisibleMs = now - t0;
      break;
    }
    if (now - lastReport > 10_000) {
      lastReport = now;
      console.log(`    ${((now - t0) / 1000).toFixed(0)} s: ${fmt(runs)} runs`);
    }
    if (now - t0 > o.timeoutS * 1000) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  console.log(
    `  ${fmt(runs)} runs ${Number.isFinite(allVisibleMs) ? `all there ${(allVisibleMs / 1000).toFixed(1)} s after the change` : `after ${o.timeoutS} s (gave up)`}`,
  );
  // Deliveries: until every message is at the receiver, or catchUpS more.
  let arrived = 0;
  let arrivedMs = Number.NaN;
  for (const until = performance.now() + o.catchUpS * 1000; performance.now() < until; ) {
    arrived = (await o.receivers.count())[0]!;
    if (arrived >= runs) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  arrivedMs = (await dbNowMs(sql)) - t0;
  const cpu = stopCpu();
  const activity = await stopSampling();
  const [arrivals] = await o.receivers.take();
  arrived = new Set(arrivals!.keys).size;
  const steps = await sql<{ ms: number }[]>`
    SELECT extract(epoch FROM min(s.at))::float8 * 1000 - ${t0}::float8 AS ms
    FROM flow_runs r JOIN flow_steps s ON s.run_id = r.id WHERE r.flow_id = ${flowId} GROUP BY r.id`;
  const [t] = await sql<{ members: number; computed: number; events: number; ledger: number; rows: number }[]>`
    SELECT (SELECT count(*)::int FROM audience_memberships WHERE audience = ${AUDIENCE} AND exited_at IS NULL) AS members,
      (SELECT extract(epoch FROM computed_at)::float8 * 1000 FROM audiences WHERE key = ${AUDIENCE}) - ${t0}::float8 AS computed,
      (SELECT extract(epoch FROM max(received_at))::float8 * 1000 FROM events
        WHERE source_id = 'cairn' AND event = 'audience.entered'
          AND payload #>> '{properties,audience,key}' = ${AUDIENCE}) - ${t0}::float8 AS events,
      (SELECT extract(epoch FROM max(created_at))::float8 * 1000 FROM deliveries
        WHERE destination_id = ${o.destination} AND event_id IS NULL) - ${t0}::float8 AS ledger,
      (SELECT count(*)::int FROM deliveries WHERE destination_id = ${o.destination} AND event_id IS NULL) AS rows`;
  const result: AudiencePhase = {
    expected: o.expected,
    members: t!.members,
    runs,
    recomputeMs: t!.computed,
    eventsMs: t!.events,
    firstStep: spread(steps.map((x) => x.ms)),
    allVisibleMs,
    ledgerRows: t!.rows,
    ledgerMs: t!.ledger,
    arrived,
    arrivedMs,
    cpu,
    activity,
  };
  console.log(
    `  members ${fmt(result.members)}; recompute done ${(result.recomputeMs / 1000).toFixed(1)} s, last audience.entered event ${(result.eventsMs / 1000).toFixed(1)} s, first steps p50/p95/max ${(result.firstStep.p50 / 1000).toFixed(1)}/${(result.firstStep.p95 / 1000).toFixed(1)}/${(result.firstStep.max / 1000).toFixed(1)} s after the change; ` +
      `ledger ${fmt(result.ledgerRows)} rows (last ${(result.ledgerMs / 1000).toFixed(1)} s), ${fmt(arrived)} arrived (${(arrivedMs / 1000).toFixed(1)} s)`,
  );
  console.log(`  Postgres: ${activityText(activity)}`);
  return result;
}
