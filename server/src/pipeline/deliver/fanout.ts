import type { AcceptedEvent } from '@cairn/plugin-api';
import type { JobInsert, PgBoss } from 'pg-boss';
import { bossExecutor, type Sql, type Tx } from '../../db/index.ts';
import { type DeliverJob, destinationQueueName, type IngestCommitted, QUEUES } from '../../jobs/queues.ts';
import type { ActiveDestination, DestinationDirectory } from './directory.ts';
import { matchesFilter } from './filter.ts';
import { eventsForFanout, insertDeliveries, type NewDelivery } from './queries.ts';

/**
 * The jobs for ledger rows of one destination (rows in event order).
 *
 * @example
 * const jobs = jobsFor(plugin, rows);
 */
export function jobsFor(
  a: Pick<ActiveDestination, 'plugin'>,
  rows: readonly { id: string; profileId: string | null }[],
): JobInsert<DeliverJob>[] {
  if (a.plugin.ordering === 'profile') {
    const byProfile = new Map<string, string[]>();
    for (const r of rows) {
      const key = r.profileId ?? `event:${r.id}`;
      byProfile.set(key, [...(byProfile.get(key) ?? []), r.id]);
    }
    return [...byProfile].map(([key, ids]) => ({ data: { ids }, singletonKey: key }));
  }
  const size = a.plugin.batchSize ?? 1;
  const jobs: JobInsert<DeliverJob>[] = [];
  for (let i = 0; i < rows.length; i += size) jobs.push({ data: { ids: rows.slice(i, i + size).map((r) => r.id) } });
  return jobs;
}

/**
 * Inserts jobs for ledger rows on each destination's queue, inside the caller's transaction.
 *
 * @example
 * await enqueueDeliveries(boss, tx, destinations, rows);
 */
export async function enqueueDeliveries(
  boss: PgBoss,
  tx: Tx,
  active: readonly Pick<ActiveDestination, 'plugin' | 'destination'>[],
  rows: readonly { id: string; destinationId: string; profileId: string | null }[],
): Promise<void> {
  for (const a of active) {
    const mine = rows.filter((r) => r.destinationId === a.destination.id);
    if (!mine.length) continue;
    await boss.insert(destinationQueueName(a.destination.id), jobsFor(a, mine), { db: bossExecutor(tx) });
  }
}

/**
 * Stage 5's consumer of `identify.done`.
 *
 * @example
 * await startFanoutWorker(boss, sql, destinations);
 */
export async function startFanoutWorker(boss: PgBoss, sql: Sql, destinations: DestinationDirectory): Promise<void> {
  await boss.work<IngestCommitted>(
    QUEUES.identifyDone.name,
    // Retries coming due are not notified: poll for them sooner than pg-boss's 30 s default.
    {
      batchSize: 20,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 2,
      // A full fetch means a backlog: fetch again at once instead of waiting for the next poll.
      burstWhenBatchFull: true,
      localConcurrency: 2,
    },
    async function fanOutCommitted(jobs) {
      await fanOutWith(
        boss,
        sql,
        destinations.active(),
        jobs.flatMap((j) => j.data.ids),
      );
    },
  );
}

/**
 * Fans events out: for each enabled destination whose plugin accepts the event type, a ledger row —
 * `pending` when the destination's filter matches, `skipped` (reason `filter`) when not — and jobs on
 * the destination's own queue, in the same transaction. Idempotent: the ledger is unique per (event,
 * destination), and only newly inserted rows get jobs, so a re-delivered batch sends nothing twice.
 *
 * @example
 * await fanOutWith(boss, sql, destinations.active(), ids);
 */
export async function fanOutWith(
  boss: PgBoss,
  sql: Sql,
  active: readonly ActiveDestination[],
  ids: readonly string[],
): Promise<number> {
  if (!active.length || !ids.length) return 0;
  return sql.begin(async (tx) => {
    const events = await eventsForFanout(tx, ids);
    const rows: NewDelivery[] = [];
    for (const a of active) {
      for (const e of events) {
        if (!a.plugin.accepts.includes(e.type as AcceptedEvent)) continue;
        const pass = matchesFilter(e.payload, a.destination.filter);
        rows.push({
          destinationId: a.destination.id,
          eventId: e.id,
          profileId: e.profileId,
          idempotencyKey: `${e.messageId}:${a.destination.id}`,
          status: pass ? 'pending' : 'skipped',
          reason: pass ? null : 'filter',
        });
      }
    }
    const inserted = await insertDeliveries(tx, rows);
    const profileOf = new Map(events.map((e) => [e.id, e.profileId]));
    await enqueueDeliveries(
      boss,
      tx,
      active,
      inserted.map((r) => ({ ...r, profileId: profileOf.get(r.eventId) ?? null })),
    );
    return inserted.length;
  }) as Promise<number>;
}
