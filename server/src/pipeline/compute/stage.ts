import type { Runtime, Stage } from '../../runtime.ts';
import { startClusteringWorker } from './clustering.ts';
import { changeStaticTag, changeStaticTagOf } from './static-tags.ts';
import { startComputeWorker } from './worker.ts';

/** Stage 3: computed traits, tags and audiences, kept current incrementally and recomputed on change. */
export interface ComputeStage extends Stage {
  /**
   * Adds (`enter`) or removes (`exit`) a static tag on a live profile, kept with `actor` and `reason`;
   * destinations and the audiences reading the tag follow. True when the profile's tags changed.
   * Refuses an unknown tag (404) and a dynamic one (409).
   */
  changeStaticTag(
    profileId: string,
    tag: string,
    action: 'enter' | 'exit',
    actor: string,
    reason: string | null,
  ): Promise<boolean>;
  /**
   * Adds a static tag to many profiles (those still live), in chunks; how many gained it. Refuses an
   * unknown tag (404) and a dynamic one (409).
   */
  tagProfiles(profileIds: readonly string[], tag: string, actor: string, reason: string | null): Promise<number>;
}

/**
 * Creates stage 3: the consumers of `compute` and `recompute`, the outbox drain and the sweep for
 * time windows; and the static-tag command of the admin API.
 *
 * @example
 * const compute = createComputeStage(runtime);
 * await compute.start();
 * await compute.changeStaticTag(profileId, 'vip', 'enter', 'api:key:k1', null);
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
      const stopClustering = await startClusteringWorker({ ...rt, now: rt.clock });
      const stopCompute = stop;
      stop = async () => {
        await stopClustering();
        await stopCompute();
      };
    },
    stop: () => stop(),
    changeStaticTag: (profileId, tag, action, actor, reason) =>
      changeStaticTag(rt, profileId, tag, action, actor, reason),
    tagProfiles: (profileIds, tag, actor, reason) => changeStaticTagOf(rt, profileIds, tag, 'enter', actor, reason),
  };
}
