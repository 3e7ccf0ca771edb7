import type { PgBoss } from 'pg-boss';
import type { Config } from '../config.ts';
import { bossExecutor, type Sql } from '../db/index.ts';
import { BOSS_SCHEMA, destinationQueue } from '../jobs/queues.ts';
import type { Logger } from '../log.ts';
import type { ConsumerQueue, Fact } from '../pipeline/topics.ts';

// Upgrade steps for queues: run at start, under the startup lock, before any worker starts. Each is
// idempotent (a second run finds nothing to do), so a server of this version may start any number of times.

type Old = Record<string, unknown> & { ids?: string[]; profileIds?: string[] };

/**
 * Queues of versions before facts had topics (named for their producer), and where their unfinished jobs
 * go now. Their consumers are gone: a job left there would never run.
 */
const RETIRED: Record<string, (data: Old) => { queue: ConsumerQueue; data: Fact }> = {
  'ingest.committed': (d) => ({ queue: 'identify', data: { topic: 'events.stored', ids: d.ids ?? [] } }),
  'identify.done': (d) => ({ queue: 'fanout', data: { topic: 'events.attached', ids: d.ids ?? [] } }),
  'compute.profiles': (d) =>
    d.ids?.length
      ? {
          queue: 'compute',
          data: {
            topic: 'events.attached',
            ids: d.ids,
            ...(d.profileIds?.length ? { restructured: d.profileIds } : {}),
          },
        }
      : { queue: 'compute', data: { topic: 'profiles.changed', profileIds: d.profileIds ?? [] } },
  'compute.definition': (d) => ({
    queue: 'recompute',
    data: { topic: 'definition.changed', kind: d.kind as 'audience', key: String(d.key) },
  }),
  'profile.erased': (d) => ({
    queue: 'forget',
    data: { ...(d as unknown as Fact<'profile.erased'>), topic: 'profile.erased' },
  }),
};

/**
 * Moves the unfinished jobs of retired queues (created, retrying, or active in a process that is gone)
 * to the queues that consume their facts now, each move in the transaction that deletes the old job.
 * Returns how many moved. Old servers still running during a rolling upgrade may add jobs to the old
 * queues after this ran: the next start moves them (stop old workers first, as docs/operations.md says).
 *
 * @example
 * await moveRetiredJobs(boss, sql, log); // 3
 */
export async function moveRetiredJobs(boss: PgBoss, sql: Sql, log: Logger): Promise<number> {
  let moved = 0;
  for (const [old, convert] of Object.entries(RETIRED)) {
    for (;;) {
      const n = (await sql.begin(async (tx) => {
        const rows = await tx.unsafe<{ id: string; data: Old | null }[]>(
          `SELECT id, data FROM ${BOSS_SCHEMA}.job WHERE name = $1 AND state < 'completed'
           ORDER BY created_on LIMIT 500 FOR UPDATE SKIP LOCKED`,
          [old],
        );
        if (!rows.length) return 0;
        const byQueue = new Map<ConsumerQueue, Fact[]>();
        for (const r of rows) {
          const { queue, data } = convert(r.data ?? {});
          byQueue.set(queue, [...(byQueue.get(queue) ?? []), data]);
        }
        for (const [queue, facts] of byQueue)
          await boss.insert(
            queue,
            facts.map((data) => ({ data })),
            { db: bossExecutor(tx) },
          );
        await tx.unsafe(`DELETE FROM ${BOSS_SCHEMA}.job WHERE name = $1 AND id = ANY($2::uuid[])`, [
          old,
          rows.map((r) => r.id),
        ]);
        return rows.length;
      })) as number;
      if (!n) break;
      moved += n;
    }
  }
  if (moved) log.info(`upgrade: ${moved} unfinished jobs moved from retired queues to their consumers' queues`);
  return moved;
}

/**
 * Upgrade from the queues of earlier versions: ordered destinations had `deliver.<id>` queues with
 * pg-boss's `key_strict_fifo` policy, which pg-boss cannot change in place. For each such queue: the
 * destination's unfinished rows are set `waiting` (committed first), then the queue is dropped with
 * its jobs and created again `standard`; the sweep (pipeline/deliver/order.ts) promotes the rows, with new jobs, in ledger order.
 * A crash in between leaves waiting rows, which the sweep promotes; nothing is lost. Run under the
 * startup lock, before any worker starts, by every server (a no-op once converted). Workers of an
 * earlier version must be stopped first: one still sending could send a batch twice.
 *
 * @example
 * await convertStrictQueues(boss, sql, log, config.delivery);
 */
export async function convertStrictQueues(
  boss: PgBoss,
  sql: Sql,
  log: Logger,
  delivery: Config['delivery'],
): Promise<void> {
  const queues = await boss.getQueues();
  for (const q of queues) {
    if (!q.name.startsWith('deliver.') || q.policy === 'standard') continue;
    const destinationId = q.name.slice('deliver.'.length);
    const reset = await sql`
      UPDATE deliveries SET status = 'waiting', updated_at = now()
      WHERE destination_id = ${destinationId} AND status IN ('pending', 'retrying')`;
    await boss.deleteQueue(q.name);
    const { name, ...options } = destinationQueue(destinationId, {
      retryDelay: delivery.retryDelaySeconds,
      retryDelayMax: delivery.retryMaxSeconds,
    });
    await boss.createQueue(name, options);
    log.info(
      `destination ${destinationId}: queue ${q.name} converted from ${q.policy} to standard; ${reset.count} unfinished deliveries wait for the sweep`,
    );
  }
}

/**
 * Every upgrade step of the queues, in order.
 *
 * @example
 * await upgradeQueues(boss, sql, log, config.delivery);
 */
export async function upgradeQueues(boss: PgBoss, sql: Sql, log: Logger, delivery: Config['delivery']): Promise<void> {
  await convertStrictQueues(boss, sql, log, delivery);
  await moveRetiredJobs(boss, sql, log);
}
