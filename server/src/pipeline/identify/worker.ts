import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { type IngestCommitted, QUEUES } from '../../jobs/queues.ts';
import { markProcessed } from './queries.ts';

/**
 * Stage 2's consumer of `ingest.committed`. Identity resolution replaces the body of this worker;
 * today it marks the handed-over events processed, several jobs per transaction.
 *
 * @example
 * await startIdentifyWorker(boss, sql);
 */
export async function startIdentifyWorker(boss: PgBoss, sql: Sql): Promise<void> {
  await boss.work<IngestCommitted>(
    QUEUES.ingestCommitted.name,
    { batchSize: 50, pollingIntervalSeconds: 0.5 },
    async function processCommitted(jobs) {
      await markProcessed(
        sql,
        jobs.flatMap((j) => j.data.ids),
      );
    },
  );
}
