import type { Hono } from 'hono';
import { type PeriodicTask, startPeriodic } from '../../infra/periodic.ts';
import type { Runtime, Stage } from '../../runtime.ts';
import type { EventWriter } from '../ingest/writer.ts';
import { type DeliverCommands, deliverCommands } from './commands.ts';
import { createDestinationDirectory, type DestinationDirectory } from './directory.ts';
import { startFanoutWorker } from './fanout.ts';
import { startForgetWorker } from './forget.ts';
import { startMessagesWorker } from './messages.ts';
import { sweepWaiting } from './order.ts';
import { createRateLimits, type SenderDeps } from './sender.ts';
import { createSenders } from './senders.ts';
import { trackingRoutes } from './tracking.ts';
import { unsubscribeRoutes } from './unsubscribe.ts';

/**
 * Stage 5: fan-out to destinations, flows' messages into the ledger, their senders and the sweep of waiting
 * deliveries, erasures forwarded, unsubscribe links.
 */
export interface DeliverStage extends Stage, DeliverCommands {
  /** The destinations of this database, kept current (every role reads them; workers also send). */
  readonly destinations: DestinationDirectory;
  /**
   * `GET|POST /u/:token`: one-click unsubscribe (RFC 8058); `GET /t/c/:token`, `GET /t/o/:token.gif`: tracked
   * links and open pixels (tracking.ts). Each recorded as an event through `writer`.
   */
  routes(app: Hono, writer: EventWriter): void;
}

/**
 * What stage 5's senders (and anything that builds their plugin context) need of a server: its database, queue,
 * log, secrets, PII, public URL, delivery settings, shutdown signal, metrics, plugins and a fresh set of rate
 * limits (each call makes its own).
 *
 * @example
 * const sender = senderDeps(runtime);
 * const context = pluginContext(sender, destination, settings);
 */
export function senderDeps(rt: Runtime): SenderDeps {
  return {
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
}

/**
 * Creates stage 5. With `work` (every role but `ingest`) it consumes `fanout`, `messages` and `forget` and runs one
 * sender per enabled destination, with the sweep of waiting deliveries.
 *
 * @example
 * const deliver = createDeliverStage(runtime, { work: true });
 * await deliver.start();
 */
export function createDeliverStage(rt: Runtime, options: { work: boolean }): DeliverStage {
  const sender = senderDeps(rt);
  // Each fetch of a sender reads its destination's current entry (called only once both exist).
  const senders = createSenders(sender, (id) => directory.get(id));
  const directory = createDestinationDirectory({
    sql: rt.sql,
    log: rt.log,
    plugins: rt.plugins,
    refreshMs: rt.config.sourceRefreshMs,
    // Senders start and stop with the rows they serve (an ingest node sends nothing).
    onChange: options.work ? (list) => senders.sync(list) : undefined,
  });
  // Each destination's own errors are logged, not thrown: one broken destination does not stop the sweep.
  const sweep = async () => {
    for (const a of directory.active()) {
      try {
        const promoted = await sweepWaiting(rt.boss, rt.sql, a);
        if (promoted) rt.log.info(`destination ${a.destination.id}: the sweep promoted ${promoted} waiting deliveries`);
      } catch (err) {
        rt.log.error(`destination ${a.destination.id}: sweep`, err);
      }
    }
  };
  let sweeper: PeriodicTask | undefined;
  return {
    ...deliverCommands(sender),
    destinations: directory,
    routes(app, writer) {
      unsubscribeRoutes(app, {
        sql: rt.sql,
        secret: rt.secret,
        writer,
        maxFutureSkewMs: rt.config.maxFutureSkewMs,
        pii: rt.pii,
      });
      trackingRoutes(app, {
        sql: rt.sql,
        secret: rt.secret,
        writer,
        maxFutureSkewMs: rt.config.maxFutureSkewMs,
        pii: rt.pii,
        log: rt.log,
        trustProxy: rt.config.trustProxy,
        clock: rt.clock,
      });
    },
    async start() {
      await directory.start();
      if (!options.work) return;
      // With a lease: every server would repeat the same scan of every destination's waiting rows, and
      // two sweeps of one destination only contend for its (destination, profile) order locks, the
      // loser finding nothing left to promote. One server of many sweeps each period.
      sweeper = startPeriodic({
        name: 'deliver.sweep',
        everyMs: rt.config.delivery.sweepSeconds * 1000,
        run: sweep,
        log: rt.log,
        lease: { sql: rt.sql, kind: rt.dbKind },
      });
      // At once: rows an upgrade or a crash left waiting go without waiting for the first tick.
      void sweeper.runNow();
      await startFanoutWorker(rt.boss, rt.sql, directory, rt.pii, rt.clock);
      await startMessagesWorker(rt.boss, rt.sql, directory);
      await startForgetWorker(sender, directory);
    },
    async stop() {
      await Promise.all([directory.stop(), sweeper?.stop()]);
      await senders.stop();
    },
  };
}
