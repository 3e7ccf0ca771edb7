import type { Runtime, Stage } from '../../runtime.ts';
import { startComputeWorker } from './worker.ts';

/** Stage 3: computed traits, tags and audiences, kept current incrementally and recomputed on change. */
export type ComputeStage = Stage;

/**
 * Creates stage 3: the consumers of `compute` and `recompute`, the outbox drain and the sweep for
 * time windows.
 *
 * @example
 * const compute = createComputeStage(runtime);
 * await compute.start();
 */
export function createComputeStage(rt: Runtime): ComputeStage {
  let stop: () => Promise<void> = async () => {};
  return {
    async start() {
      stop = await startComputeWorker({
        sql: rt.sql,
        boss: rt.boss,
        handOff: rt.handOff,
        log: rt.log,
        now: rt.clock,
        sweepSeconds: rt.config.computeSweepSeconds,
      });
    },
    stop: () => stop(),
  };
}
