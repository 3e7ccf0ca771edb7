import { PgBoss, type Queue } from 'pg-boss';
import { bossExecutor, type Database } from '../db/index.ts';
import type { Logger } from '../log.ts';

import type { ConsumerQueue } from '../pipeline/topics.ts';

const STAGE_RETRIES = { retryLimit: 20, retryDelay: 1, retryBackoff: true, retryDelayMax: 300 } as const;
/** Retries of a flow's webhook or action call before its run takes the `failed` edge. */
export const EFFECT_RETRIES = 10;

/**
 * Every consumer queue, declared once with its options. Stages hand work to each other only through
 * these, and only by topic (jobs/handoff.ts; pipeline/topics.ts says which queue hears which topic).
 */
export const QUEUES = {
  /** Stage 2: one job per committed group of events, never one per event. */
  identify: {
    name: 'identify',
    ...STAGE_RETRIES,
    expireInSeconds: 120,
    // A worker killed mid-job stops its heartbeat (refreshed every 5 s): the job is failed by the next monitor
    // pass once it lapses (5-12 s after the kill) and retried 1-2 s later, not at expiry.
    heartbeatSeconds: 10,
    // Wake the workers at once (Postgres only; polling stays as the floor, and is all PGlite has).
    notify: true,
  },
  /** Stage 5: events attached to their profiles, and recorded membership changes, ready to fan out. */
  fanout: { name: 'fanout', ...STAGE_RETRIES, expireInSeconds: 120, heartbeatSeconds: 10, notify: true },
  /** Stage 3, incremental: computed traits, tags and audiences of the profiles events or changes touched. */
  compute: { name: 'compute', ...STAGE_RETRIES, expireInSeconds: 300, heartbeatSeconds: 10, notify: true },
  /** Stage 3, full: a created or changed definition, recomputed over every profile. */
  recompute: {
    name: 'recompute',
    retryLimit: 10,
    retryDelay: 10,
    retryBackoff: true,
    retryDelayMax: 600,
    expireInSeconds: 3600,
    heartbeatSeconds: 30,
    notify: true,
  },
  /**
   * Stage 5: a profile was erased; destinations that support deletion forward it. The notice names the
   * erased identities (a destination can only delete what it is told): sensitive ones sealed as
   * identities.value holds them, opened only when handed to the plugin; completed notices are deleted
   * after a day.
   */
  forget: {
    name: 'forget',
    retryLimit: 50,
    retryDelay: 60,
    retryBackoff: true,
    retentionSeconds: 90 * 24 * 3600,
    deleteAfterSeconds: 24 * 3600,
  },
  /** Stage 4: attached events and membership changes, for flow triggers and runs waiting for an event. */
  automate: { name: 'automate', ...STAGE_RETRIES, expireInSeconds: 120, heartbeatSeconds: 10, notify: true },
  /** Stage 5: messages flows' steps committed, written to the delivery ledger once per idempotency key. */
  messages: { name: 'messages', ...STAGE_RETRIES, expireInSeconds: 120, heartbeatSeconds: 10, notify: true },
  /**
   * Stage 4: a webhook or plugin action a run awaits, one job per call. Network errors, 408, 429 and 5xx
   * are retried with backoff (about half an hour in all); after the last attempt, or on a permanent
   * failure, the run takes its `failed` edge (automate/effects.ts).
   */
  /**
   * Stage 4: `effects` jobs whose last attempt never finished (a worker killed during it): their runs
   * would await forever; they take `failed` instead. Declared before `effects`, which names it.
   */
  // pg-boss inserts dead letters without a NOTIFY: their worker polls (every 2 s).
  effects_dead: { name: 'effects_dead', ...STAGE_RETRIES, expireInSeconds: 120, heartbeatSeconds: 10 },
  effects: {
    name: 'effects',
    deadLetter: 'effects_dead',
    retryLimit: EFFECT_RETRIES,
    retryDelay: 2,
    retryBackoff: true,
    retryDelayMax: 600,
    expireInSeconds: 120,
    heartbeatSeconds: 10,
    notify: true,
  },
  /** Stage 6: events attached or recorded, recounted into the hourly rollup trend tiles read. */
  measure: { name: 'measure', ...STAGE_RETRIES, expireInSeconds: 120, heartbeatSeconds: 10, notify: true },
} as const satisfies { [Q in ConsumerQueue]: Queue & { name: Q } };

/**
 * Stage 2's data-quality backfills (pipeline/identify/backfill.ts): a job is `{ backfillId }`. The job's
 * progress and cursor live on the backfill's row, so a retry after a crash resumes after the last
 * committed chunk; one job per backfill at a time (the row is locked per chunk).
 */
export const BACKFILL_QUEUE = {
  name: 'quality_backfill',
  retryLimit: 10,
  retryDelay: 5,
  retryBackoff: true,
  retryDelayMax: 300,
  expireInSeconds: 3600,
  heartbeatSeconds: 10,
} as const satisfies Queue;

/**
 * Stage 2's scheduled duplicate scans (pipeline/identify/duplicates/schedule.ts): a job is `{ period }`,
 * sent once per period with the period's claim. A scan refused because another runs is retried.
 */
export const DUPLICATE_SCAN_QUEUE = {
  name: 'duplicate_scan',
  retryLimit: 10,
  retryDelay: 30,
  retryBackoff: true,
  retryDelayMax: 900,
  expireInSeconds: 3600,
  heartbeatSeconds: 10,
} as const satisfies Queue;

/** How often lapsed heartbeats and expired jobs are looked for (by one worker of many per queue). */
export const MONITOR_SECONDS = 2;

/** The schema pg-boss keeps its tables in. */
export const BOSS_SCHEMA = 'pgboss';

/**
 * Starts pg-boss on the shared client and declares every queue. Concurrent installs of pg-boss's
 * schema collide (CREATE SCHEMA races), so callers serialise starts with `withStartupLock`.
 *
 * @example
 * const boss = await startBoss(db, log, { supervise: true });
 */
export async function startBoss(
  db: Database,
  log: Logger,
  options: {
    supervise: boolean;
    /**
     * Awaited before every handler of `work` runs (the pipeline process's yield gate, pipeline/yield.ts); the
     * function it resolves to is called when the handler has ended.
     */
    beforeWork?: () => Promise<() => void>;
  },
): Promise<PgBoss> {
  const boss = new PgBoss({
    db: bossExecutor(db.sql, { listen: db.kind === 'postgres' }),
    useListenNotify: db.kind === 'postgres',
    schema: BOSS_SCHEMA,
    backend: db.kind === 'embedded' ? 'pglite' : 'postgres',
    supervise: options.supervise,
    schedule: options.supervise,
    // A killed worker's jobs are failed (and so retried) only by a monitor pass once their heartbeat has
    // lapsed (heartbeatSeconds, at least 10 s). The pass is due per queue every monitorIntervalSeconds
    // (pg-boss's default 60 s: retries came 46-109 s after a kill) and looked for every
    // superviseIntervalSeconds. A pass costs a few indexed updates and counts of the live jobs.
    superviseIntervalSeconds: MONITOR_SECONDS,
    monitorIntervalSeconds: MONITOR_SECONDS,
    registerInstance: false,
  });
  boss.on('error', (err) => log.error('pg-boss', err));
  if (options.beforeWork) gateWork(boss, options.beforeWork);
  await boss.start();
  for (const queue of Object.values(QUEUES)) {
    const { name, ...rest } = queue;
    // An existing queue takes the declared options that pg-boss can change in place.
    const { retryDelayMax: _fixedAtCreation, ...updatable } = rest as Queue;
    if (await boss.getQueue(name)) await boss.updateQueue(name, updatable);
    else await boss.createQueue(name, rest).catch(ignoreExists);
  }
  return boss;
}

// Every handler given to `work` (with or without options) first awaits `before`: one place for every stage's
// queue, so no stage can forget it.
function gateWork(boss: PgBoss, before: () => Promise<() => void>): void {
  const work = boss.work.bind(boss) as (name: string, ...rest: unknown[]) => Promise<string>;
  const gated =
    (handler: (jobs: never) => Promise<unknown>) =>
    async (jobs: never): Promise<unknown> => {
      const done = await before();
      try {
        return await handler(jobs);
      } finally {
        done();
      }
    };
  boss.work = ((name: string, ...rest: unknown[]) => {
    const handler = rest.pop() as (jobs: never) => Promise<unknown>;
    return work(name, ...rest, gated(handler));
  }) as PgBoss['work'];
}

// Two servers starting together may both see the queue missing; the loser's create fails harmlessly.
function ignoreExists(err: unknown): void {
  if (!/already exists|duplicate key/i.test(String((err as Error)?.message))) throw err;
}

/** Payload of a destination's queue `deliver.<destination id>`: ledger rows to send. */
export interface DeliverJob {
  ids: string[];
}

/** Name of a destination's own queue (one per destination, so a slow one holds back no other). */
export function destinationQueueName(destinationId: string): string {
  return `deliver.${destinationId}`;
}

/**
 * Options of a destination's queue: pg-boss's `standard` policy for every plugin. Per-profile order
 * is kept by the ledger (`waiting` rows, pipeline/deliver/order.ts), not by the queue: the
 * `key_strict_fifo` policy it replaced spent 82% of Postgres time finding each key's head.
 * Retries back off exponentially (pg-boss adds jitter) up to `retryDelayMax`; the sender, not the retry
 * limit, decides when the retry window is over, so the limit is only a backstop.
 */
export function destinationQueue(destinationId: string, options: { retryDelay: number; retryDelayMax: number }): Queue {
  return {
    name: destinationQueueName(destinationId),
    policy: 'standard',
    retryLimit: 100_000,
    retryDelay: options.retryDelay,
    retryBackoff: true,
    retryDelayMax: options.retryDelayMax,
    expireInSeconds: 300,
    heartbeatSeconds: 10,
    notify: true,
  };
}

/**
 * Creates a queue if it is missing (two servers may race; the loser's error is harmless).
 *
 * @example
 * await ensureQueue(boss, destinationQueue(id, { ordered: true, retryDelay: 5, retryDelayMax: 600 }));
 */
export async function ensureQueue(boss: PgBoss, queue: Queue): Promise<void> {
  const { name, ...rest } = queue;
  if (!(await boss.getQueue(name))) await boss.createQueue(name, rest).catch(ignoreExists);
}
