import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Another process's metrics, as `registry.getMetricsAsJSON()` gives them (the pipeline child's). */
export type MetricsSource = () => ReturnType<Registry['getMetricsAsJSON']>;

/** The server's Prometheus metrics, created per server instance (never at import time). */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  eventsAccepted: Counter<'type'>;
  eventsDuplicate: Counter;
  eventsRejected: Counter<'reason'>;
  requestBatchSize: Histogram;
  commitGroupSize: Histogram;
  commitDuration: Histogram;
  queueDepth: Gauge<'queue'>;
  identifyEvents: Counter<'outcome'>;
  identifyChanges: Counter<'kind'>;
  identifyRetries: Counter;
  pipelineYield: Counter;
  identifyDuration: Histogram;
  deliveries: Counter<'destination' | 'status'>;
  deliverySendDuration: Histogram<'destination'>;
  /** Flow runs: steps taken by what moved them (entry, due, event), runs ended, how late due runs were taken. */
  flowSteps: Counter<'input'>;
  flowRunsEnded: Counter<'status'>;
  flowMessages: Counter;
  flowDueLag: Histogram;
  /** The analytics replica (CAIRN_ANALYTICS_DATABASE_URL): up, lag in seconds and in WAL bytes; probed on scrape. */
  replicaUp: Gauge<'replica'>;
  replicaLag: Gauge<'replica'>;
  replicaLagBytes: Gauge<'replica'>;
  /** Analytics statements by where they ran: replica, or primary (none configured, down, or too far behind). */
  analyticsReads: Counter<'source'>;
  /** Runs `probe` on each scrape before the replica gauges are read; returns a function that removes it. */
  collectReplica(probe: () => Promise<void>): () => void;
  /**
   * Adds another process's metrics to what /metrics answers (summed, or per each metric's
   * aggregator); returns a function that removes it again.
   */
  attach(source: MetricsSource): () => void;
  /** The text /metrics answers: this registry merged with every attached source that answers. */
  render(): Promise<string>;
}

/**
 * Creates the registry and every metric. `collectQueueDepth` is called on each scrape.
 *
 * @example
 * const metrics = createMetrics(async (set) => set('identify', 3));
 */
export function createMetrics(
  collectQueueDepth?: (set: (queue: string, depth: number) => void) => Promise<void>,
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cairn_' });
  const registers = [registry];
  const sources = new Set<MetricsSource>();
  const replicaProbes = new Set<() => Promise<void>>();
  // Each replica gauge waits for the same probes (the router shares one probe a second among its callers).
  const probeReplicas = async () => {
    await Promise.all([...replicaProbes].map((p) => p().catch(() => {})));
  };
  // Merged with the pipeline process's: both probe the same replica, so the larger value, not the sum.
  const replicaGauge = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ['replica'], aggregator: 'max', registers, collect: probeReplicas });
  return {
    registry,
    attach(source) {
      sources.add(source);
      return () => sources.delete(source);
    },
    async render() {
      if (sources.size === 0) return registry.metrics();
      // A source that fails (the child restarting) leaves its share out of this scrape, not the scrape.
      const others = await Promise.all([...sources].map((source) => source().catch(() => undefined)));
      const all = [await registry.getMetricsAsJSON(), ...others.filter((o) => o !== undefined)];
      return AggregatorRegistry.aggregate(all).metrics();
    },
    httpRequests: new Counter({
      name: 'cairn_http_requests_total',
      help: 'HTTP requests by route and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'cairn_http_request_duration_seconds',
      help: 'HTTP request duration.',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    eventsAccepted: new Counter({
      name: 'cairn_events_accepted_total',
      help: 'Events committed (new, not duplicates), by type.',
      labelNames: ['type'],
      registers,
    }),
    eventsDuplicate: new Counter({
      name: 'cairn_events_duplicate_total',
      help: 'Events acknowledged but not stored again: same source and messageId already stored.',
      registers,
    }),
    eventsRejected: new Counter({
      name: 'cairn_events_rejected_total',
      help: 'Events or payloads refused, by reason code.',
      labelNames: ['reason'],
      registers,
    }),
    requestBatchSize: new Histogram({
      name: 'cairn_ingest_request_events',
      help: 'Events per tracking request.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500],
      registers,
    }),
    commitGroupSize: new Histogram({
      name: 'cairn_ingest_commit_group_events',
      help: 'Events written by one group commit.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2000],
      registers,
    }),
    commitDuration: new Histogram({
      name: 'cairn_ingest_commit_duration_seconds',
      help: 'Duration of one group commit transaction.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    identifyEvents: new Counter({
      name: 'cairn_identify_events_total',
      help: 'Events through identity resolution: processed, or suppressed (an erased identity; dropped).',
      labelNames: ['outcome'],
      registers,
    }),
    identifyChanges: new Counter({
      name: 'cairn_identify_profile_changes_total',
      help: 'Profiles created and merged away by identity resolution.',
      labelNames: ['kind'],
      registers,
    }),
    pipelineYield: new Counter({
      name: 'cairn_pipeline_yield_seconds_total',
      help: 'Time queue batches waited before starting because the tracking API asked the pipeline to hold back (its group commits were slow).',
      registers,
    }),
    identifyRetries: new Counter({
      name: 'cairn_identify_retries_total',
      help: 'Identify transactions restarted (a component grew while locking, a deadlock or serialisation failure).',
      registers,
    }),
    identifyDuration: new Histogram({
      name: 'cairn_identify_batch_duration_seconds',
      help: 'Duration of one identify worker call (a batch of ingest jobs).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    deliveries: new Counter({
      name: 'cairn_deliveries_total',
      help: 'Delivery outcomes by destination: delivered, retrying, dead, skipped.',
      labelNames: ['destination', 'status'],
      registers,
    }),
    deliverySendDuration: new Histogram({
      name: 'cairn_delivery_send_duration_seconds',
      help: 'Duration of one plugin send() call (a batch), by destination.',
      labelNames: ['destination'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    flowSteps: new Counter({
      name: 'cairn_flow_steps_total',
      help: 'Steps of flow runs committed, by what moved the run: entry, due (a timer), event.',
      labelNames: ['input'],
      registers,
    }),
    flowRunsEnded: new Counter({
      name: 'cairn_flow_runs_ended_total',
      help: 'Flow runs that ended, by status: completed, exited, failed.',
      labelNames: ['status'],
      registers,
    }),
    flowMessages: new Counter({
      name: 'cairn_flow_messages_total',
      help: 'Messages flow steps handed to delivery (each goes into the ledger once).',
      registers,
    }),
    flowDueLag: new Histogram({
      name: 'cairn_flow_due_lag_seconds',
      help: 'How late the timer took a due flow run: the runtime clock at the step minus the run’s due time.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    replicaUp: replicaGauge(
      'cairn_replica_up',
      'Whether the analytics replica answered its last probe (1) or not (0).',
    ),
    replicaLag: replicaGauge(
      'cairn_replica_lag_seconds',
      'How far the analytics replica is behind the primary: 0 once it replayed all the primary wrote, else now() - pg_last_xact_replay_timestamp().',
    ),
    replicaLagBytes: replicaGauge(
      'cairn_replica_lag_bytes',
      'WAL the analytics replica has still to replay: the primary’s pg_current_wal_lsn() minus its pg_last_wal_replay_lsn().',
    ),
    analyticsReads: new Counter({
      name: 'cairn_analytics_reads_total',
      help: 'Analytics statements by where they ran (replica, or primary).',
      labelNames: ['source'],
      registers,
    }),
    collectReplica(probe) {
      replicaProbes.add(probe);
      return () => replicaProbes.delete(probe);
    },
    queueDepth: new Gauge({
      name: 'cairn_queue_depth',
      help: 'Jobs waiting in each pg-boss queue (collected on scrape).',
      labelNames: ['queue'],
      // Every process of a node reads the same queue: merged, the depth is theirs, not their sum.
      aggregator: 'max',
      registers,
      async collect() {
        await collectQueueDepth?.((queue, depth) => this.set({ queue }, depth));
      },
    }),
  };
}
