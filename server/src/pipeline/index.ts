// The whole flow in one place: each stage hands facts over with handOff (jobs/handoff.ts) inside the
// transaction that made them true; pipeline/topics.ts says which stages' queues hear which facts.
//
//   ingest ──events.stored──▶ identify ──events.attached──▶ compute ──memberships.changed──▶ fanout ─▶ deliver
//                                      └─────────────events.attached────────────────────────▶ fanout
//   admin API ──definition.changed──▶ recompute     ──profiles.changed──▶ compute     ──profile.erased──▶ forget
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../db/index.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Metrics } from '../observability/metrics.ts';
import { type ComputeDeps, startComputeWorker } from './compute/worker.ts';
import type { DestinationDirectory } from './deliver/directory.ts';
import { startFanoutWorker } from './deliver/fanout.ts';
import { startForgetWorker } from './deliver/forget.ts';
import type { SenderDeps } from './deliver/sender.ts';
import type { IdentifyContext } from './identify/process.ts';
import { startIdentifyWorker } from './identify/worker.ts';
import { type IngestDeps, trackingRoutes } from './ingest/routes.ts';

/** 1 ingest: the tracking API (`/v1/*`, `/beacon/v1/batch`), which commits events and hands them over (`events.stored`). */
export function ingestRoutes(deps: IngestDeps) {
  return trackingRoutes(deps);
}

/**
 * Starts the workers of every stage after ingest.
 *
 * @example
 * await startWorkers({ boss, sql, identify, metrics, destinations, sender });
 */
export async function startWorkers(deps: {
  boss: PgBoss;
  handOff: HandOff;
  sql: Sql;
  identify: IdentifyContext;
  metrics: Metrics;
  destinations: DestinationDirectory;
  sender: SenderDeps;
  compute: ComputeDeps;
}): Promise<() => Promise<void>> {
  // 2 identify
  await startIdentifyWorker(deps.boss, deps.sql, deps.handOff, deps.identify, deps.metrics);
  // 3 compute: tags and audiences of the profiles identify touched (beside fan-out, not before it:
  // an event's own delivery does not wait for audiences; their change events follow it to fan-out)
  const stopSweep = await startComputeWorker(deps.compute);
  // 5 deliver (4 automate comes in between in a later issue)
  await startFanoutWorker(deps.boss, deps.sql, deps.destinations, deps.identify.pii);
  await startForgetWorker(deps.sender, deps.destinations);
  return stopSweep;
}
