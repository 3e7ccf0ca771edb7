import type { JobInsert, PgBoss } from 'pg-boss';
import { bossExecutor, type Tx } from '../../db/index.ts';
import { type DeliverJob, destinationQueueName } from '../../jobs/queues.ts';
import type { ActiveDestination } from './types.ts';

/** A ledger row about to get a job: its id and the profile it was fanned out for. */
export interface QueuedRow {
  id: string;
  profileId: string | null;
}

/** Ledger ids compare as numbers; they arrive as text (bigint). */
export function byLedgerId(a: { id: string }, b: { id: string }): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * The jobs for `pending` ledger rows of one destination: up to the plugin's batch size rows per job,
 * in ledger id order. For ordered plugins a profile's rows are never split over two jobs (two workers
 * could then send them at once, out of order): a job takes whole profiles, and a profile with more
 * rows than the batch size gets a job of its own.
 *
 * @example
 * const jobs = jobsFor({ plugin }, [{ id: '1', profileId: 'p' }, { id: '2', profileId: 'p' }]);
 */
export function jobsFor(a: Pick<ActiveDestination, 'plugin'>, rows: readonly QueuedRow[]): JobInsert<DeliverJob>[] {
  const size = a.plugin.batchSize ?? 1;
  const sorted = [...rows].sort(byLedgerId);
  const groups: string[][] = [];
  if (a.plugin.ordering === 'profile') {
    const byProfile = new Map<string, string[]>();
    for (const r of sorted) {
      if (r.profileId === null) groups.push([r.id]);
      else if (byProfile.has(r.profileId)) byProfile.get(r.profileId)!.push(r.id);
      else {
        const ids = [r.id];
        byProfile.set(r.profileId, ids);
        groups.push(ids);
      }
    }
  } else {
    for (const r of sorted) groups.push([r.id]);
  }
  const jobs: JobInsert<DeliverJob>[] = [];
  let ids: string[] = [];
  for (const group of groups) {
    if (ids.length && ids.length + group.length > size) {
      jobs.push({ data: { ids } });
      ids = [];
    }
    ids.push(...group);
  }
  if (ids.length) jobs.push({ data: { ids } });
  return jobs;
}

/**
 * Inserts jobs for `pending` ledger rows on each destination's queue, inside the caller's transaction
 * (the rows and their jobs commit together, or neither does).
 *
 * @example
 * await enqueueDeliveries(boss, tx, destinations, rows);
 */
export async function enqueueDeliveries(
  boss: PgBoss,
  tx: Tx,
  active: readonly Pick<ActiveDestination, 'plugin' | 'destination'>[],
  rows: readonly (QueuedRow & { destinationId: string })[],
): Promise<void> {
  // One round trip for every queue (pipelined on the transaction's connection).
  await Promise.all(
    active.map((a) => {
      const mine = rows.filter((r) => r.destinationId === a.destination.id);
      return mine.length
        ? boss.insert(destinationQueueName(a.destination.id), jobsFor(a, mine), { db: bossExecutor(tx) })
        : undefined;
    }),
  );
}
