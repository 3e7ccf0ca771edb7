import { type ChildProcess, fork } from 'node:child_process';
import type { Logger } from './log.ts';
import type { MetricsSource } from './observability/metrics.ts';

// The all-in-one start (`npm start`, CAIRN_ROLE=all on Postgres) runs the tracking and admin APIs in the
// main process and the pipeline (identify, compute, deliver) in a child process of its own, which this
// module keeps running: restarted when it dies (with a backoff), asked for its metrics over IPC, and
// drained on shutdown. Why a process and not a worker thread: a process can be given a lower CPU
// priority (nice), so the tracking API wins the CPU when both compete; threads of one process share
// the process's priority as Node exposes it, and a thread that dies or leaks takes its process along.

/** What the parent and the pipeline process say to each other over the IPC channel. */
export type PipelineMessage =
  | { type: 'ready'; pid: number }
  | { type: 'metrics?'; id: number }
  /** From the API side: hold back queue batches that would start within `ms` (pipeline/yield.ts). */
  | { type: 'yield'; ms: number }
  | { type: 'metrics'; id: number; metrics: Awaited<ReturnType<MetricsSource>> };

/** A supervised pipeline process. */
export interface Supervised {
  /** The current child's pid (undefined while restarting). */
  pid(): number | undefined;
  /** How many times the child was restarted after dying. */
  restarts(): number;
  /** Resolves when the first child reported ready. */
  ready: Promise<void>;
  /** The child's metrics (rejects when no child answers within 2 s). */
  metrics: MetricsSource;
  /** Asks the child to hold back queue batches for `ms` (dropped when no child is connected). */
  yieldFor(ms: number): void;
  /** SIGTERM to the child, SIGKILL after `timeoutMs`; resolves once it has exited. No restart after. */
  stop(timeoutMs: number): Promise<void>;
}

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A child that lived this long before dying starts the backoff over. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * Forks `entry` with `env` and keeps it running until `stop()`.
 *
 * @example
 * const pipeline = supervise({ entry, env: process.env, log, name: 'pipeline' });
 * await pipeline.stop(30_000);
 */
export function supervise(options: { entry: string; env: NodeJS.ProcessEnv; log: Logger; name: string }): Supervised {
  const { log, name } = options;
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let backoff = FIRST_BACKOFF_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  let nextId = 0;
  const pending = new Map<number, (m: Awaited<ReturnType<MetricsSource>>) => void>();
  let markReady: () => void;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  const start = () => {
    const startedAt = Date.now();
    // stdio inherited: one log stream (the child's lines carry its own tag); the IPC channel for
    // readiness and metrics. execArgv is inherited too (the tsx loader when run from source).
    const proc = fork(options.entry, [], { env: options.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child = proc;
    proc.on('message', (m: PipelineMessage) => {
      if (m.type === 'ready') {
        log.info(`${name} process ready (pid ${m.pid})`);
        markReady();
      } else if (m.type === 'metrics') {
        pending.get(m.id)?.(m.metrics);
        pending.delete(m.id);
      }
    });
    proc.on('error', (err) => log.error(`${name} process`, err));
    proc.once('exit', (code, signal) => {
      if (child === proc) child = undefined;
      if (stopping) return;
      // A child that ran for a while is restarted at once; one that keeps dying, less and less often.
      if (Date.now() - startedAt >= HEALTHY_AFTER_MS) backoff = FIRST_BACKOFF_MS;
      const how = signal ? `signal ${signal}` : `code ${code}`;
      log.error(`${name} process (pid ${proc.pid}) exited with ${how}; restarting in ${backoff} ms`);
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (stopping) return;
        restarts++;
        start();
      }, backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    });
  };
  start();

  return {
    pid: () => child?.pid,
    restarts: () => restarts,
    ready,
    metrics() {
      const proc = child;
      if (!proc?.connected) return Promise.reject(new Error(`no ${name} process`));
      const id = ++nextId;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name} process did not answer for its metrics`));
        }, 2000);
        pending.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        proc.send({ type: 'metrics?', id } satisfies PipelineMessage, (err) => {
          if (!err) return;
          clearTimeout(timer);
          pending.delete(id);
          reject(err);
        });
      });
    },
    yieldFor(ms) {
      const proc = child;
      // A lost message only means one batch less held back: no callback, no retry.
      if (proc?.connected) proc.send({ type: 'yield', ms } satisfies PipelineMessage, () => {});
    },
    async stop(timeoutMs) {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        log.error(`${name} process did not stop within ${timeoutMs} ms: killing it`);
        proc.kill('SIGKILL');
      }, timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
