import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { type IngestCommitted, QUEUES } from '../../jobs/queues.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { type IdentifyContext, identifyEvents } from './process.ts';

/**
 * Stage 2's consumer of `ingest.committed`: identity resolution, profiles and traits for the events
 * each job names, several jobs per call (each chunk of events one transaction).
 *
 * @example
 * await startIdentifyWorker(boss, sql, ctx, metrics);
 */
export async function startIdentifyWorker(
  boss: PgBoss,
  sql: Sql,
  ctx: IdentifyContext,
  metrics: Metrics,
): Promise<void> {
  await boss.work<IngestCommitted>(
    QUEUES.ingestCommitted.name,
    // Retries coming due are not notified: poll for them sooner than pg-boss's 30 s default.
    {
      batchSize: 20,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 2,
      // A full fetch means a backlog: fetch again at once instead of waiting for the next poll.
      burstWhenBatchFull: true,
      localConcurrency: ctx.concurrency,
    },
    async function processCommitted(jobs) {
      const done = metrics.identifyDuration.startTimer();
      const r = await identifyEvents(
        sql,
        jobs.flatMap((j) => j.data.ids),
        ctx,
      );
      done();
      // Hand over to the next stage. Outside the identify transaction but after it: a crash in between
      // retries this job, which skips the processed events and sends this again; fan-out is idempotent.
      const ids = jobs.flatMap((j) => j.data.ids);
      await boss.send(QUEUES.identifyDone.name, { ids });
      await boss.send(QUEUES.computeProfiles.name, { ids });
      metrics.identifyEvents.inc({ outcome: 'processed' }, r.processed);
      if (r.suppressed) metrics.identifyEvents.inc({ outcome: 'suppressed' }, r.suppressed);
      if (r.created) metrics.identifyChanges.inc({ kind: 'created' }, r.created);
      if (r.merges) metrics.identifyChanges.inc({ kind: 'merged' }, r.merges);
      if (r.retries) metrics.identifyRetries.inc(r.retries);
    },
  );
}
