import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { type IngestCommitted, QUEUES } from '../../jobs/queues.ts';
import { type IdentifyContext, identifyEvents } from './process.ts';

/**
 * Stage 2's consumer of `ingest.committed`: identity resolution, profiles and traits for the events
 * each job names, several jobs per call (each chunk of events one transaction).
 *
 * @example
 * await startIdentifyWorker(boss, sql, ctx);
 */
export async function startIdentifyWorker(boss: PgBoss, sql: Sql, ctx: IdentifyContext): Promise<void> {
  await boss.work<IngestCommitted>(
    QUEUES.ingestCommitted.name,
    { batchSize: 20, pollingIntervalSeconds: 0.5, localConcurrency: ctx.concurrency },
    async function processCommitted(jobs) {
      await identifyEvents(
        sql,
        jobs.flatMap((j) => j.data.ids),
        ctx,
      );
    },
  );
}
