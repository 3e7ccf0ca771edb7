import type { DeliverCpu } from '../deliver/cpu.ts';
import type { PgTotals, Waits } from './postgres.ts';

// The results of bench:scale's two sweeps, shared by the runner (scale.ts) and the report.

/** What every measured configuration records about Postgres and the machine. */
export interface Costs {
  seconds: number;
  cpu: DeliverCpu;
  /** Cores used by Postgres' WAL writer, checkpointer and background writer (part of cpu.postgres). */
  pgBackground: number;
  /** Share of the Cairn processes' quota periods in which they ran out of quota (0-1). */
  throttled: number;
  pg: PgTotals;
  waits: Waits;
  /** Tables whose sequential scans read the most rows during the configuration. */
  seqScans: string[];
}

/** One ingest configuration: `processes` ingest nodes, each limited to `quota` cores. */
export interface IngestResult extends Costs {
  processes: number;
  quota: number;
  concurrency: number;
  acked: number;
  stored: number;
  errors: number;
  p99: number;
}

/** One worker configuration: `processes` worker nodes, each limited to `quota` cores, on a backlog. */
export interface WorkerResult extends Costs {
  processes: number;
  quota: number;
  /** Events per second each stage's queue completed (identify = attached to profiles, ...). */
  stages: Record<string, number>;
  /** Events per second the webhook receiver got. */
  delivered: number;
  /** Unprocessed events when the window opened and closed (0 at the end = the backlog ran out). */
  backlog: [number, number];
  /** Stage 2's events per second: the unit the per-event costs are divided by. */
  perEvent: number;
}
