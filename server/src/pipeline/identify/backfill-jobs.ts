import type { TraitQualityRule } from '@cairn/core';
import type { PgBoss } from 'pg-boss';
import { bossExecutor, type Sql } from '../../db/index.ts';
import { DomainError } from '../../infra/errors.ts';
import { BACKFILL_QUEUE, ensureQueue } from '../../jobs/queues.ts';
import { type BackfillDeps, backfillRules, runBackfill } from './backfill.ts';
import { type BackfillRow, cancelBackfill, insertBackfill, markResumed } from './backfill-queries.ts';
import { listTraitRules } from './trait-rules.ts';

/** What a backfill is asked to do. */
export interface BackfillRequest {
  /** The traits whose rules to apply (each must have a rule). */
  keys: readonly string[];
  /** Count and sample what would change; write nothing. */
  dryRun: boolean;
  /** Let flows and destinations react to the changes as to live ones (default: held back, as imports are). */
  triggerFlows: boolean;
}

/**
 * Records a backfill and queues its job in one transaction (the job cannot be lost, nor run without its
 * row). The rules are taken as they are now: a later change of a rule needs a backfill of its own.
 *
 * @example
 * const b = await requestBackfill(sql, boss, { keys: ['country'], dryRun: true, triggerFlows: false }, 'api:key:k1');
 */
export async function requestBackfill(
  sql: Sql,
  boss: PgBoss,
  req: BackfillRequest,
  actor: string,
): Promise<BackfillRow> {
  const all = Object.fromEntries((await listTraitRules(sql)).map((r) => [r.key, r.rule] as const)) as Record<
    string,
    TraitQualityRule
  >;
  const missing = req.keys.filter((k) => !all[k]);
  if (missing.length) {
    throw new DomainError(400, 'invalid_request', `keys: no rule for ${missing.map((k) => `"${k}"`).join(', ')}`);
  }
  await ensureQueue(boss, BACKFILL_QUEUE);
  const keys = [...new Set(req.keys)].sort();
  return (await sql.begin(async (tx) => {
    const row = await insertBackfill(tx, { ...req, keys, rules: backfillRules(keys, all), actor });
    await boss.send(BACKFILL_QUEUE.name, { backfillId: row.id }, { db: bossExecutor(tx) });
    return row;
  })) as BackfillRow;
}

/**
 * Cancels a backfill (queued, running, or failed with retries pending): it stops at the next chunk
 * boundary, its counts those of the chunks committed. Cancelling a cancelled one again returns it as it
 * is; a finished one (done) is refused with 409.
 *
 * @example
 * const b = await requestCancel(sql, '3', 'api:key:k1'); // b.status === 'cancelled'
 */
export async function requestCancel(sql: Sql, id: string, actor: string): Promise<BackfillRow> {
  const b = await cancelBackfill(sql, id, actor);
  if (!b) throw new DomainError(404, 'not_found', `no backfill ${id}`);
  if (b.status === 'done') {
    throw new DomainError(
      409,
      'backfill_finished',
      `backfill ${id} is done (finished ${b.finished_at?.toISOString()}): nothing to cancel`,
    );
  }
  return b;
}

/**
 * Resumes a failed or cancelled backfill: queued again with a new job, which continues after its cursor
 * (the counts and sample so far kept). Refused with 409 when it is queued or running (it is under way) or
 * done (nothing is left; queue a new backfill to apply rules changed since).
 *
 * @example
 * const b = await requestResume(sql, boss, '3'); // b.status === 'queued'
 */
export async function requestResume(sql: Sql, boss: PgBoss, id: string): Promise<BackfillRow> {
  await ensureQueue(boss, BACKFILL_QUEUE);
  const { row, resumed } = (await sql.begin(async (tx) => {
    const r = await markResumed(tx, id);
    if (r.resumed) await boss.send(BACKFILL_QUEUE.name, { backfillId: id }, { db: bossExecutor(tx) });
    return r;
  })) as Awaited<ReturnType<typeof markResumed>>;
  if (!row) throw new DomainError(404, 'not_found', `no backfill ${id}`);
  if (!resumed) {
    const why =
      row.status === 'done'
        ? 'is done: nothing is left to resume (queue a new backfill to apply rules changed since)'
        : `is ${row.status}: it is under way already`;
    throw new DomainError(
      409,
      row.status === 'done' ? 'backfill_finished' : 'backfill_in_progress',
      `backfill ${id} ${why}`,
    );
  }
  return row;
}

/**
 * Starts the worker of the backfill queue: one backfill at a time per process; a failed attempt is
 * retried by pg-boss and resumes from the backfill's cursor.
 *
 * @example
 * const stop = await startBackfillWorker(boss, deps);
 */
export async function startBackfillWorker(boss: PgBoss, deps: BackfillDeps): Promise<() => Promise<void>> {
  await ensureQueue(boss, BACKFILL_QUEUE);
  const id = await boss.work<{ backfillId: string }>(
    BACKFILL_QUEUE.name,
    { batchSize: 1, pollingIntervalSeconds: 1 },
    async function backfill([job]) {
      if (job) await runBackfill(deps, job.data.backfillId);
    },
  );
  return async () => {
    await boss.offWork(BACKFILL_QUEUE.name, { id });
  };
}
