import { createHash } from 'node:crypto';
import type { Sql } from '../db/index.ts';
import type { Logger } from '../log.ts';

/** A task started by {@link startPeriodic}. */
export interface PeriodicTask {
  /**
   * Runs the task now, or, when a run is under way, once more right after it (callers asking meanwhile
   * share that one): the run it resolves after started after the call. Never rejects.
   */
  runNow(): Promise<void>;
  /** No more runs; resolves once the run under way (if any) has finished. */
  stop(): Promise<void>;
}

/**
 * Runs on one server of many: a Postgres session advisory lock taken for each run, on a connection
 * reserved for it. A server that finds it held skips that run (the holder is doing the work).
 */
export interface PeriodicLease {
  sql: Sql;
  /** `embedded` (PGlite) has one process per data directory: no lock is needed, none is taken. */
  kind?: 'postgres' | 'embedded';
}

/** Options of {@link startPeriodic}. */
export interface PeriodicOptions {
  /** Names the task in logs, and its lease (two tasks of one name share a lease). */
  name: string;
  everyMs: number;
  run: () => Promise<unknown>;
  log: Logger;
  /** Only one server of many runs it at a time (see {@link PeriodicLease}). */
  lease?: PeriodicLease;
}

/**
 * Starts a single-flight periodic task: every `everyMs` (the first run after one period; call
 * `runNow()` to run at start), never two runs of it at once in this process (a tick that finds a run
 * under way is skipped), errors logged and never thrown, and a timer that does not keep the process
 * alive. With `lease`, a run also needs the task's advisory lock, so one server of many runs it.
 *
 * @example
 * const sweep = startPeriodic({ name: 'deliver.sweep', everyMs: 60_000, run: sweepAll, log, lease: { sql } });
 * void sweep.runNow();
 * await sweep.stop();
 */
export function startPeriodic(options: PeriodicOptions): PeriodicTask {
  const { name, log } = options;
  let stopped = false;
  let current: Promise<void> | undefined;
  let queued: Promise<void> | undefined;

  async function once(): Promise<void> {
    try {
      if (options.lease) await withLease(options.lease, name, options.run, log);
      else await options.run();
    } catch (err) {
      log.error(`${name} failed`, err);
    }
  }

  function start(): Promise<void> {
    const run: Promise<void> = once().finally(() => {
      if (current === run) current = undefined;
    });
    current = run;
    return run;
  }

  const timer = setInterval(() => {
    if (!current && !stopped) void start();
  }, options.everyMs);
  // A periodic task is background work: it never holds a process open that has nothing else to do.
  timer.unref();

  return {
    runNow() {
      if (stopped) return Promise.resolve();
      if (!current) return start();
      queued ??= current.then(() => {
        queued = undefined;
        // A run some other caller started meanwhile also started after ours asked: share it.
        return stopped ? undefined : (current ?? start());
      });
      return queued;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([current, queued]);
    },
  };
}

/**
 * The advisory lock key of a task: 64 bits of a hash of its name (Postgres takes a signed bigint).
 *
 * @example
 * leaseKey('deliver.sweep'); // '-4657908376980422015', the same in every process
 */
export function leaseKey(name: string): string {
  return createHash('sha256').update(`cairn.periodic:${name}`).digest().readBigInt64BE(0).toString();
}

// A session lock (not a transaction's) so the run's own queries use the pool and no transaction stays
// open while it works; the reserved connection keeps the session. If this process dies, Postgres ends
// the session and the lock with it.
async function withLease(lease: PeriodicLease, name: string, run: () => Promise<unknown>, log: Logger) {
  // A pool of one connection cannot lend one to the lock and still run the task's queries (embedded
  // PGlite is served through exactly one): such a database has one process, which needs no lease.
  if (lease.kind === 'embedded' || (lease.sql.options?.max ?? 1) <= 1) return run();
  const key = leaseKey(name);
  const reserved = await lease.sql.reserve();
  try {
    const [row] = await reserved<{ held: boolean }[]>`SELECT pg_try_advisory_lock(${key}::bigint) AS held`;
    if (!row?.held) {
      log.debug(`${name}: another server holds the lease; skipped`);
      return;
    }
    try {
      await run();
    } finally {
      // This fails only when the connection broke, which ended the session and its lock too.
      await reserved`SELECT pg_advisory_unlock(${key}::bigint)`.catch((err) => log.error(`${name}: unlock`, err));
    }
  } finally {
    reserved.release();
  }
}
