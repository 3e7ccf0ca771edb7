import type { Histogram } from 'prom-client';

// The all-in-one start on two cores: the tracking API's group commits and the pipeline's queries run in
// Postgres backends of equal priority, so niceing the pipeline's Node process (supervisor.ts) leaves its
// share of Postgres's CPU untouched, and a busy pipeline made single-event requests wait 54-589 ms at p99
// (issue 16, docs/benchmarks.md; 15 ms with the pipeline held). Here the API side watches its own commits
// and, when they slow down, asks the pipeline to hold back. While asked, the pipeline runs one queue batch
// at a time, across all its queues, and rests after each for `restFactor` times as long as it took: its
// share of the machine is bounded (a quarter of one batch slot by default), and never zero, so a load
// that never lets up still sees the backlog move (its jobs are durable: holding back only defers them).
// Batches already running when the ask comes finish as they are. Off by default (CAIRN_PIPELINE_YIELD_AFTER_MS):
// the group commit's own wait under a busy pipeline is mostly WAL flushes (WALSync), which holding back
// only helps when it holds back nearly everything.

/** How long one signal holds the pipeline back; renewed while commits stay slow. */
export const YIELD_MS = 300;
/** How often the API side looks at its commits. */
export const WATCH_MS = 100;
/** While asked: the rest after each batch, as a multiple of the time the batch took. */
export const REST_FACTOR = 3;
/** How often a held batch looks again whether it may start. */
const POLL_MS = 25;

/** The pipeline's side: batches start freely unless asked, then one at a time with rests between. */
export interface YieldGate {
  /** Holds batches back during the next `ms`. */
  yieldFor(ms: number): void;
  /** Resolves when a batch may start: the ms it waited, and `done`, to call when the batch has ended. */
  pass(): Promise<{ waited: number; done: () => void }>;
}

const nothing = () => {};

/**
 * Creates the pipeline's gate.
 *
 * @example
 * const gate = createYieldGate({ restFactor: REST_FACTOR });
 * process.on('message', (m) => m.type === 'yield' && gate.yieldFor(m.ms));
 * const { done } = await gate.pass();
 * try { await handle(jobs); } finally { done(); }
 */
export function createYieldGate(options: { restFactor: number; now?: () => number }): YieldGate {
  const now = options.now ?? Date.now;
  let until = 0;
  // The one batch let through while asked, and when the next may start.
  let busy = false;
  let restUntil = 0;
  return {
    yieldFor(ms) {
      until = Math.max(until, now() + ms);
    },
    async pass() {
      const start = now();
      for (;;) {
        const t = now();
        if (t >= until) return { waited: t - start, done: nothing };
        if (!busy && t >= restUntil) break;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      busy = true;
      const began = now();
      return {
        waited: began - start,
        done() {
          busy = false;
          const t = now();
          restUntil = t + options.restFactor * (t - began);
        },
      };
    },
  };
}

/**
 * The API's side: every `WATCH_MS` it reads the group-commit histogram and calls `onSlow` when a commit
 * of the last interval took longer than `slowMs` (rounded down to a bucket bound; 0: every commit counts).
 * Returns the stop function.
 *
 * @example
 * const stop = watchCommits(metrics.commitDuration, 25, () => pipeline.yieldFor(YIELD_MS));
 */
export function watchCommits(histogram: Histogram, slowMs: number, onSlow: () => void): () => void {
  let last: { count: number; fast: number } | undefined;
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    read(histogram, slowMs / 1000)
      .then((now) => {
        if (last && now.count - last.count > now.fast - last.fast) onSlow();
        last = now;
      })
      .catch(() => {})
      .finally(() => {
        reading = false;
      });
  }, WATCH_MS);
  timer.unref();
  return () => clearInterval(timer);
}

// Commits so far, and those at most `slow` seconds (the largest bucket bound not above it).
async function read(histogram: Histogram, slow: number): Promise<{ count: number; fast: number }> {
  const { values } = await histogram.get();
  let count = 0;
  let fast = 0;
  let bound = -1;
  for (const v of values) {
    if (v.metricName?.endsWith('_count')) count = v.value;
    const le = v.labels.le;
    if (v.metricName?.endsWith('_bucket') && typeof le === 'number' && le <= slow && le > bound) {
      bound = le;
      fast = v.value;
    }
  }
  return { count, fast };
}
