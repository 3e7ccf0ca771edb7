// The whole flow in one place. Each stage is made by one factory from the runtime (runtime.ts) and
// hands facts over with `handOff(tx, topic, payload)` (jobs/handoff.ts) inside the transaction that
// made them true; pipeline/topics.ts (SUBSCRIPTIONS) says which stage's queue hears which fact:
//
//   1 ingest ──events.stored──▶ 2 identify ──events.attached──▶ 3 compute ──memberships.changed──▶ 5 fanout ─▶ senders
//                                         └───────────────events.attached────────────────────────▶ 5 fanout
//                                         └──events.attached──▶ 4 automate ◀──memberships.changed── 3 compute
//                                                                  │ (+ its timer: due runs)
//                                                                  └──messages.requested──▶ 5 messages ─▶ senders
//   admin API ──definition.changed──▶ 3 recompute       ──profiles.changed──▶ 3 compute
//   admin API ──profile.erased──▶ 5 forget
import { createRetentionStage } from '../jobs/retention.ts';
import type { Runtime, Stage } from '../runtime.ts';
import type { SourceDirectory } from '../sources/directory.ts';
import { type AutomateStage, createAutomateStage } from './automate/stage.ts';
import { type ComputeStage, createComputeStage } from './compute/stage.ts';
import { createDeliverStage, type DeliverStage } from './deliver/stage.ts';
import { createIdentifyStage, type IdentifyStage } from './identify/stage.ts';
import { createIngestStage, type IngestStage } from './ingest/stage.ts';
import { createMeasureStage, type MeasureStage } from './measure/stage.ts';

export { SUBSCRIPTIONS } from './topics.ts';

/** Every stage of one server, with their commands; started in order, stopped in reverse. */
export interface Pipeline extends Stage {
  readonly ingest: IngestStage;
  readonly identify: IdentifyStage;
  readonly compute: ComputeStage;
  readonly automate: AutomateStage;
  readonly deliver: DeliverStage;
  readonly measure: MeasureStage;
}

/**
 * Creates every stage. Workers run on every role but `ingest` (an ingest node serves the tracking and
 * admin APIs only; its facts wait in the queues for the worker nodes).
 *
 * @example
 * const pipeline = createPipeline(runtime, { sources });
 * await pipeline.start();
 * await pipeline.stop();
 */
export function createPipeline(rt: Runtime, deps: { sources: SourceDirectory }): Pipeline {
  const work = rt.config.role !== 'ingest';
  const ingest = createIngestStage(rt, deps); // 1
  const identify = createIdentifyStage(rt); // 2
  const compute = createComputeStage(rt); // 3: beside fan-out, not before it: an event's own delivery does not wait for audiences
  const automate = createAutomateStage(rt, { work }); // 4: beside fan-out too; its messages come back to stage 5
  const deliver = createDeliverStage(rt, { work }); // 5
  const measure = createMeasureStage(rt, { deliver }); // 6: the analytics queries' reader
  // Partitions ahead and retention (docs/retention.md): maintenance, on worker nodes only.
  const retention = createRetentionStage(rt, identify.traits);
  const order: Stage[] = [ingest, ...(work ? [identify, compute, automate] : []), deliver, measure];
  if (work) order.push(retention);
  return {
    ingest,
    identify,
    compute,
    automate,
    deliver,
    measure,
    async start() {
      for (const stage of order) await stage.start();
    },
    async stop() {
      for (const stage of [...order].reverse()) await stage.stop();
    },
  };
}
