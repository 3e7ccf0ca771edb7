import type postgres from 'postgres';
import { type Percentiles, percentiles } from '../deliver/analysis.ts';
import type { Node } from '../identify/servers.ts';
import { openLoop, percentile, type Target } from '../ingest/load.ts';
import { type CpuUse, cpuMeter, speedIndex } from '../ingest/machine.ts';
import { type BenchAudience, BUYER_COUNTRIES } from './rules.ts';
import { type PgActivity, sampleActivity } from './sampler.ts';
import { type EdgeCount, edgeCandidates, type ObservedSweep, watchSweeps } from './sweep.ts';

// Event → membership latency: 'Order Completed' events sent at a fixed rate (open loop, one per
// request, through the tracking API) for profiles that each have exactly one order in the last 90
// days and otherwise satisfy the budget audience, so that this second order makes them enter it.
// Latency runs from the moment the load generator built the request to the moment the membership
// row was seen committed (a poll every POLL_MS of the pending profiles' rows); the row's entered_at
// (the compute worker's rule clock, taken before it evaluates) and the events' received_at and
// processed_at split it into steps.

/** What one latency run measured. */
export interface LatencyResult {
  label: string;
  /** Audiences (and dynamic tags) defined during the run. */
  definitions: number;
  rate: number;
  durationS: number;
  warmupS: number;
  sent: number;
  acked: number;
  errors: number;
  maxLagMs: number;
  ingestP99Ms: number;
  /** Sent events whose profile entered the audience before the benchmark stopped waiting. */
  entered: number;
  /** Events attached to another profile than the one the benchmark meant (must be 0). */
  misattached: number;
  /** Mean time between two polls of the memberships (the visibility times' resolution). */
  pollMs: number;
  /** Seconds from the last send to the last membership seen (or to giving up). */
  catchUpS: number;
  rows: Percentiles[];
  steps: Percentiles[];
  activity: PgActivity;
  cpu: CpuUse;
  /** The server's own sweeps during the measured part. */
  sweeps: ObservedSweep[];
  /** What the sweep's edges find in the last 15 s of sending (every sent event is in that interval's window entries). */
  edges: EdgeCount;
  /** Of the events sent, those stored before their timestamp (future-dated): only these can enter a window later. */
  futureDated: number;
  /** The machine's speed index (see Ingest) just before and just after the run. */
  speed: [number, number];
}

const POLL_MS = 20;
const wallNow = () => performance.timeOrigin + performance.now();

/**
 * Profiles one 'Order Completed' away from the budget audience: exactly one order in the last 90 days
 * (and not about to leave the window), a buyer country, no cart in the last 7 days, not a member.
 * The rule is restated here in plain SQL to choose targets; whether they enter is the engine's call.
 */
async function pickTargets(
  sql: postgres.Sql,
  audience: string,
  n: number,
  now: Date,
): Promise<{ id: string; userId: string }[]> {
  const day = 86_400_000;
  return sql<{ id: string; userId: string }[]>`
    WITH one_order AS (
      SELECT e.profile_id
      FROM events e
      WHERE e.event = 'Order Completed' AND e.profile_id IS NOT NULL
        AND e.timestamp > ${new Date(now.getTime() - 90 * day)} AND e.timestamp <= ${now}
      GROUP BY e.profile_id
      HAVING count(*) = 1 AND min(e.timestamp) > ${new Date(now.getTime() - 89 * day)}
    ),
    buyers AS (
      SELECT o.profile_id
      FROM one_order o
      JOIN profile_traits t ON t.profile_id = o.profile_id AND t.key = 'country'
      WHERE t.value #>> '{}' = ANY(${BUYER_COUNTRIES})
    )
    SELECT b.profile_id::text AS id, i.value AS "userId"
    FROM buyers b
    JOIN identities i ON i.profile_id = b.profile_id AND i.type = 'userId'
    WHERE NOT EXISTS (
        SELECT 1 FROM events x
        WHERE x.profile_id = b.profile_id AND x.event = 'Added to Cart' AND x.timestamp > ${new Date(now.getTime() - 7 * day)})
      AND NOT EXISTS (
        SELECT 1 FROM audience_memberships m
        WHERE m.audience = ${audience} AND m.profile_id = b.profile_id AND m.exited_at IS NULL)
    ORDER BY md5(b.profile_id::text)
    LIMIT ${n}`;
}

/**
 * Sends one order per target profile at `rate` events/s (after a warm-up at the same rate, not
 * counted) and measures how long each profile takes to enter `audience`.
 *
 * @example
 * const r = await latencyRun(node, sql, db, { label: 'x', audience: REPEAT_BUYERS, rate: 100, ... });
 */
export async function latencyRun(
  node: Node,
  sql: postgres.Sql,
  db: { url: string; database: string },
  o: {
    label: string;
    prefix: string;
    audience: BenchAudience;
    rate: number;
    durationMs: number;
    warmupMs: number;
    catchUpMs: number;
    definitions: number;
  },
): Promise<LatencyResult> {
  const measuredCount = Math.round((o.rate * o.durationMs) / 1000);
  const warmCount = Math.round((o.rate * o.warmupMs) / 1000);
  const targets = await pickTargets(sql, o.audience.key, measuredCount + warmCount, new Date());
  if (targets.length < measuredCount + warmCount)
    throw new Error(`only ${targets.length} profiles can enter ${o.audience.key}; ${measuredCount + warmCount} needed`);
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
  const messageOf = new Map<string, string>();
  const seen = new Map<string, { visible: number; enteredAt: number }>();
  let next = 0;
  const send = (durationMs: number, record: boolean) =>
    openLoop(target, {
      rate: o.rate,
      durationMs,
      maxConnections: 64,
      next: () => {
        const t = targets[next++]!;
        const messageId = `${o.prefix}-${next}`;
        const at = wallNow();
        if (record) {
          sentAt.set(t.id, at);
          messageOf.set(t.id, messageId);
        }
        const event = {
          type: 'track',
          event: 'Order Completed',
          userId: t.userId,
          messageId,
          timestamp: new Date(at).toISOString(),
          properties: { order_id: messageId, total: 42.5, currency: 'EUR' },
        };
        return { path: '/v1/track', body: JSON.stringify(event), events: 1 };
      },
    });

  // The poller: rows of the profiles sent and not yet seen, from the start of each poll.
  let polling = true;
  let polls = 0;
  const pollStarted = performance.now();
  const poller = (async () => {
    while (polling) {
      const pending = [...sentAt.keys()].filter((id) => !seen.has(id));
      if (pending.length) {
        const at = wallNow();
        const rows = await sql<{ id: string; entered: Date }[]>`
          SELECT profile_id::text AS id, entered_at AS entered FROM audience_memberships
          WHERE audience = ${o.audience.key} AND exited_at IS NULL AND profile_id = ANY(${pending}::uuid[])`;
        polls++;
        for (const r of rows) seen.set(r.id, { visible: at, enteredAt: r.entered.getTime() });
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();

  const speedBefore = speedIndex();
  await send(o.warmupMs, false);
  const stopSampling = sampleActivity(db.url, db.database);
  const stopCpu = cpuMeter(node.server.proc.pid, db.database);
  const stopWatching = watchSweeps(sql);
  const run = await send(o.durationMs, true);
  const lastSend = wallNow();
  const giveUp = performance.now() + o.catchUpMs;
  while (seen.size < sentAt.size && performance.now() < giveUp) await new Promise((r) => setTimeout(r, 50));
  polling = false;
  await poller;
  const cpu = stopCpu();
  const activity = await stopSampling();
  const sweeps = await stopWatching();
  const speedAfter = speedIndex();
  const edges = await edgeCandidates(sql, new Date(lastSend - 15_000), new Date(lastSend));
  const pollMs = (performance.now() - pollStarted) / Math.max(1, polls);
  const lastSeen = Math.max(...[...seen.values()].map((s) => s.visible), lastSend);

  const events = await sql<
    { m: string; profile: string | null; received: Date; processed: Date | null; future: boolean }[]
  >`
    SELECT message_id AS m, profile_id::text AS profile, received_at AS received, processed_at AS processed,
      received_at < timestamp AS future
    FROM events WHERE source_id = 'src_demo' AND message_id = ANY(${[...messageOf.values()]})`;
  const byMessage = new Map(events.map((e) => [e.m, e]));
  const steps = { ingest: [] as number[], identify: [] as number[], queue: [] as number[], compute: [] as number[] };
  const visible: number[] = [];
  const entered: number[] = [];
  let misattached = 0;
  for (const [id, at] of sentAt) {
    const s = seen.get(id);
    const e = byMessage.get(messageOf.get(id)!);
    if (e && e.profile !== id) misattached++;
    visible.push(s ? s.visible - at : Number.POSITIVE_INFINITY);
    entered.push(s ? s.enteredAt - at : Number.POSITIVE_INFINITY);
    if (e) steps.ingest.push(e.received.getTime() - at);
    if (e?.processed) steps.identify.push(e.processed.getTime() - e.received.getTime());
    if (s && e?.processed) {
      steps.queue.push(s.enteredAt - e.processed.getTime());
      steps.compute.push(s.visible - s.enteredAt);
    }
  }
  const errors = [...run.errors.values()].reduce((a, b) => a + b, 0);
  for (const [what, n] of run.errors) console.log(`    ${n} x ${what}`);
  return {
    label: o.label,
    definitions: o.definitions,
    rate: o.rate,
    durationS: o.durationMs / 1000,
    warmupS: o.warmupMs / 1000,
    sent: sentAt.size,
    acked: run.ackedEvents,
    errors,
    maxLagMs: run.maxLagMs,
    ingestP99Ms: percentile(Float64Array.from(run.latencies).sort(), 99),
    entered: seen.size,
    misattached,
    pollMs,
    catchUpS: (lastSeen - lastSend) / 1000,
    rows: [
      percentiles('send → membership row seen committed', visible),
      percentiles('send → `entered_at` (rule clock)', entered),
    ],
    steps: [
      percentiles('send → `received_at` (ingest)', steps.ingest),
      percentiles('`received_at` → `processed_at` (queue, stage 2)', steps.identify),
      percentiles('`processed_at` → `entered_at` (stage 2 commit, compute queue)', steps.queue),
      percentiles('`entered_at` → seen committed (evaluation, writes, commit, poll)', steps.compute),
    ],
    activity,
    cpu,
    sweeps,
    edges,
    futureDated: events.filter((e) => e.future).length,
    speed: [speedBefore, speedAfter],
  };
}
