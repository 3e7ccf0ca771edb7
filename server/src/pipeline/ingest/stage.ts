import type { Hono } from 'hono';
import type { Runtime, Stage } from '../../runtime.ts';
import type { SourceDirectory } from '../../sources/directory.ts';
import { createFailureRecorder, type FailureRecorder } from './failures.ts';
import { trackingRoutes } from './routes.ts';
import { createEventWriter, type EventWriter } from './writer.ts';

/** Stage 1: the tracking API, its group-committing writer and the record of rejected events. */
export interface IngestStage extends Stage {
  readonly writer: EventWriter;
  readonly failures: FailureRecorder;
  /** The tracking API (`/v1/*`, the SDK paths of Segment and RudderStack, `/beacon/v1/batch`). */
  routes(): Hono;
}

/**
 * Creates stage 1: events are committed in groups and handed over as `events.stored`.
 *
 * @example
 * const ingest = createIngestStage(runtime, { sources });
 * app.route('/', ingest.routes());
 * await ingest.stop(); // finishes the group commits in flight
 */
export function createIngestStage(rt: Runtime, deps: { sources: SourceDirectory }): IngestStage {
  const writer = createEventWriter({
    sql: rt.sql,
    metrics: rt.metrics,
    log: rt.log,
    maxRows: rt.config.commitMaxRows,
    concurrency: rt.dbKind === 'embedded' ? 1 : rt.config.commitConcurrency,
  });
  const failures = createFailureRecorder(rt.sql, rt.metrics, rt.pii);
  return {
    writer,
    failures,
    routes: () =>
      trackingRoutes({
        config: rt.config,
        sources: deps.sources,
        writer,
        failures,
        metrics: rt.metrics,
        log: rt.log,
        pii: rt.pii,
      }),
    start: async () => {},
    async stop() {
      await writer.drain();
      await failures.drain();
    },
  };
}
