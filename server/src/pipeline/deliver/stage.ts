import type { Hono } from 'hono';
import type { Runtime, Stage } from '../../runtime.ts';
import type { EventWriter } from '../ingest/writer.ts';
import { type DeliverCommands, deliverCommands } from './commands.ts';
import { createDestinationDirectory, type DestinationDirectory } from './directory.ts';
import { startFanoutWorker } from './fanout.ts';
import { startForgetWorker } from './forget.ts';
import { createRateLimits, type SenderDeps } from './sender.ts';
import { unsubscribeRoutes } from './unsubscribe.ts';

/** Stage 5: fan-out to destinations, their senders and sweeps, erasures forwarded, unsubscribe links. */
export interface DeliverStage extends Stage, DeliverCommands {
  /** The destinations of this database, kept current (every role reads them; workers also send). */
  readonly destinations: DestinationDirectory;
  /** What sending needs (the admin API's test send and replay use it). */
  readonly sender: SenderDeps;
  /** `GET|POST /u/:token`: one-click unsubscribe (RFC 8058), recorded as an event through `writer`. */
  routes(app: Hono, writer: EventWriter): void;
}

/**
 * Creates stage 5. With `work` (every role but `ingest`) it consumes `fanout` and `forget` and runs one
 * sender per enabled destination, with the sweep of waiting deliveries.
 *
 * @example
 * const deliver = createDeliverStage(runtime, { work: true });
 * await deliver.start();
 */
export function createDeliverStage(rt: Runtime, options: { work: boolean }): DeliverStage {
  const sender: SenderDeps = {
    sql: rt.sql,
    boss: rt.boss,
    log: rt.log,
    secret: rt.secret,
    pii: rt.pii,
    publicUrl: rt.publicUrl,
    delivery: rt.config.delivery,
    signal: rt.stopping,
    metrics: rt.metrics,
    plugins: rt.plugins,
    limits: createRateLimits(),
  };
  const destinations = createDestinationDirectory({
    ...sender,
    work: options.work,
    refreshMs: rt.config.sourceRefreshMs,
  });
  return {
    ...deliverCommands(sender),
    destinations,
    sender,
    routes(app, writer) {
      unsubscribeRoutes(app, {
        sql: rt.sql,
        secret: rt.secret,
        writer,
        maxFutureSkewMs: rt.config.maxFutureSkewMs,
        pii: rt.pii,
      });
    },
    async start() {
      await destinations.start();
      if (!options.work) return;
      await startFanoutWorker(rt.boss, rt.sql, destinations, rt.pii);
      await startForgetWorker(sender, destinations);
    },
    stop: () => destinations.stop(),
  };
}
