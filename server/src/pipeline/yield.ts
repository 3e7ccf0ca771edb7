import type { Histogram } from 'prom-client';

// The all-in-one start on two cores: the tracking API's group commits and the pipeline's queries run in
// Postgres backends of equal priority, so niceing the pipeline's Node process (supervisor.ts) leaves its
// share of Postgres's CPU untouched, and a busy pipeline made single-event requests wait 54-316 ms at p99
// (issue 16, docs/benchmarks.md). Here the API side watches its own commits and, when they slow down,
// asks the pipeline to hold back: each queue batch waits before it starts while the API is under
// pressure, for at most `maxWaitMs`, so the backlog still moves (its jobs are durable; a wait only defers).

/** How long one signal holds the pipeline back; renewed while commits stay slow. */
export const YIELD_MS = 300;
/** How often the API side looks at its commits. */
export const WATCH_MS = 100;
/** The longest a batch waits: under pressure that never ends the backlog still moves. */
export const MAX_WAIT_MS = 2000;

/** The pipeline's side: batches pass once the API has not asked for a while, or after `maxWaitMs`. */
export interface YieldGate {
  /** Holds batches that start within the next `ms`. */
  yieldFor(ms: number): void;
  /** Resolves when a batch may start; the ms it waited. */
  pass(): Promise<number>;
}

/**
 * Creates the pipeline's gate.
 *
 * @example
 * const gate = createYieldGate({ maxWaitMs: 2000 });
 * process.on('message', (m) => m.type === 'yield' && gate.yieldFor(m.ms));
 * await gate.pass();
 */
export function createYieldGate(options: { maxWaitMs: number; now?: () => number }): YieldGate {
  const now = options.now ?? Date.now;
  let until = 0;
  return {
    yieldFor(ms) {
      until = Math.max(until, now() + ms);
    },
    async pass() {
      const start = now();
      const deadline = start + options.maxWaitMs;
      for (let t = start; t < until && t < deadline; t = now())
        await new Promise((resolve) => setTimeout(resolve, Math.min(until, deadline) - t));
      return now() - start;
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
