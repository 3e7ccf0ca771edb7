import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Inbox } from '../topics.ts';
import { type IdentifyContext, identifyEvents } from './process.ts';

/**
 * Stage 2's consumer of `events.stored`: identity resolution, profiles and traits for the events
 * each job names, several jobs per call (each chunk of events one transaction).
 *
 * @example
 * await startIdentifyWorker(boss, sql, handOff, ctx, metrics);
 */
export async function startIdentifyWorker(
  boss: PgBoss,
  sql: Sql,
  handOff: HandOff,
  ctx: IdentifyContext,
  metrics: Metrics,
): Promise<void> {
  await boss.work<Inbox<'identify'>>(
    QUEUES.identify.name,
    // Retries coming due are not notified: poll for them sooner than pg-boss's 30 s default.
    {
      // Jobs are ingest commits, of a few events each when ingest is not busy: a fetch of 50 lets a
      // backlog go through in chunks of 250 events instead of ~200 events per fetch.
      batchSize: 50,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 2,
      // A full fetch means a backlog: fetch again at once instead of waiting for the next poll.
      burstWhenBatchFull: true,
      localConcurrency: ctx.concurrency,
    },
    async function processCommitted(jobs) {
      const done = metrics.identifyDuration.startTimer();
      // One small query per batch: traits are folded with the data-quality rules as they are now.
      await ctx.refreshTraitRules?.();
      // Each chunk hands its events over (`events.attached`: fan-out and stage 3) in its own transaction:
      // processed means handed over (a retry skips processed events), and the first chunks go on while
      // later ones run.
      const r = await identifyEvents(
        sql,
        jobs.flatMap((j) => j.data.ids),
        ctx,
        async (tx, ids, restructured, traitChanges) => {
          await handOff(
            tx,
            'events.attached',
            restructured.length ? { ids: [...ids], restructured: [...restructured] } : { ids: [...ids] },
          );
          // Watched traits' changes (trait-changes.ts) reach flows and destinations as stage 3's do.
          if (traitChanges.length) await handOff(tx, 'memberships.changed', { ids: [...traitChanges] });
        },
      );
      done();
      metrics.identifyEvents.inc({ outcome: 'processed' }, r.processed);
      if (r.suppressed) metrics.identifyEvents.inc({ outcome: 'suppressed' }, r.suppressed);
      if (r.created) metrics.identifyChanges.inc({ kind: 'created' }, r.created);
      if (r.merges) metrics.identifyChanges.inc({ kind: 'merged' }, r.merges);
      if (r.retries) metrics.identifyRetries.inc(r.retries);
    },
  );
}
