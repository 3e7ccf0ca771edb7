import { createAdaptorServer, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { warnDefinitionsBeyondRetention } from './api/rule-windows.ts';
import { createApp } from './app.ts';
import { createApiKeyVerifier } from './auth/api-keys.ts';
import { setupAdminKeys } from './auth/keys.ts';
import { ensureAdminFromEnv, setupPeople } from './auth/people.ts';
import { ensureDemoSource } from './bootstrap.ts';
import { type Config, DEFAULTS } from './config.ts';
import { openDatabase, type Sql, withStartupLock } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { demoRoutes } from './demo.ts';
import { createHandOff } from './jobs/handoff.ts';
import { startBoss } from './jobs/queues.ts';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { createPii, type Pii } from './pii/index.ts';
import { loadPlugins } from './pipeline/deliver/index.ts';
import { createPipeline } from './pipeline/index.ts';
import type { Runtime } from './runtime.ts';
import { resolveSecret } from './secret.ts';
import { createSourceDirectory } from './sources/directory.ts';
import type { Source } from './sources/queries.ts';
import { upgradeQueues } from './upgrade/queues.ts';
/** A running Cairn server. */
export interface Cairn {
  url: string;
  port: number;
  app: Hono;
  /** The shared database client (tests and tools inspect state through it; embedded mode has no other). */
  sql: Sql;
  /** Printed once at the first start when no CAIRN_ADMIN_API_KEY was given. */
  generatedAdminKey: string | undefined;
  demoSource: Source | undefined;
  /** PII protection (tests open what the database holds sealed through it). */
  pii: Pii;
  /** What /metrics answers; the supervisor attaches the pipeline process's metrics to it. */
  metrics: Metrics;
  /** Stop accepting, finish in-flight requests and group commits, stop workers, close the database. */
  close(): Promise<void>;
}

/**
 * Starts Cairn: database, migrations, queues, the HTTP server and the workers of the role.
 *
 * @example
 * const cairn = await startCairn(loadConfig(process.env), createLogger('info'));
 * await cairn.close();
 */
export async function startCairn(
  config: Readonly<Config>,
  log: Logger,
  options: {
    extraRoutes?: (app: Hono) => void;
    /** The clock rules are evaluated against (tests move it; production uses the system clock). */
    clock?: () => Date;
    /** Plugins given in code (tests), installed besides the built-ins and CAIRN_PLUGINS. */
    plugins?: readonly unknown[];
    /**
     * Awaited before each queue batch starts: the ms it waited (counted in cairn_pipeline_yield_seconds_total)
     * and what to call when the batch has ended (the pipeline process's yield gate, pipeline/yield.ts).
     */
    beforeWork?: () => Promise<{ waited: number; done: () => void }>;
  } = {},
): Promise<Cairn> {
  // First: a missing or malformed plugin stops the start before anything is opened (PluginLoadError).
  const plugins = await loadPlugins({ ...config.plugins, extra: options.plugins ?? [] });
  // Listening before anything else fixes the address (PORT=0 picks a port) that links in messages name,
  // so the runtime is complete and frozen before any stage exists. Until the app is ready, every
  // request is answered 503 (retryable), as /readyz says.
  let handler: Hono | undefined;
  // The node adapter's bindings (`incoming`, `outgoing`) go through: getConnInfo reads the peer from them.
  const server = await listen((req, env) => (handler ? handler.fetch(req, env) : starting(req)), config);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const publicUrl = config.publicUrl ?? `http://${host === '127.0.0.1' ? 'localhost' : host}:${port}`;
  try {
    return await startOn(server, `http://${host}:${port}`, port, (app) => {
      handler = app;
    });
  } catch (err) {
    await new Promise((resolve) => server.close(resolve));
    throw err;
  }

  async function startOn(server: ServerType, url: string, port: number, serve: (app: Hono) => void): Promise<Cairn> {
    const db = await openDatabase(config, log);
    const { sql } = db;
    const applied = await migrate(sql);
    if (applied.length) log.info(`applied migrations ${applied.join(', ')}`);
    // Definitions saved before CAIRN_EVENT_RETENTION_DAYS was set (or shortened) keep working on the kept events: named here.
    await warnDefinitionsBeyondRetention(sql, config.retention.eventDays, log, (options.clock ?? (() => new Date()))());
    const secret = await resolveSecret(sql, config);
    const pii = createPii({
      secret,
      oldSecrets: config.pii.oldSecrets,
      traits: config.pii.traits,
      identity: config.identity,
    });
    // better-auth's tables are created under the same lock as pg-boss's schema: servers starting
    // together on an empty database would otherwise race on CREATE TABLE.
    const { boss, people } = await withStartupLock(db, async () => {
      const people = await setupPeople(sql, config, secret);
      await ensureAdminFromEnv(sql, people, config);
      const gate = options.beforeWork;
      const started = await startBoss(db, log, {
        supervise: config.role !== 'ingest',
        beforeWork: gate
          ? async () => {
              const { waited, done } = await gate();
              if (waited > 0) metrics.pipelineYield.inc(waited / 1000);
              return done;
            }
          : undefined,
      });
      // Before any worker starts: queues of earlier versions (retired, or that pg-boss cannot change in place).
      await upgradeQueues(started, sql, log, config.delivery);
      return { people, boss: started };
    });
    const apiKeys = createApiKeyVerifier(sql, config.apiKeyCacheMs);
    const { authenticator, generatedKey } = await setupAdminKeys(sql, config);
    const demoSource = config.demo ? await ensureDemoSource(sql) : undefined;
    const sources = createSourceDirectory(sql, log, config.sourceRefreshMs);
    await sources.start();
    const metrics = createMetrics(async (set) => {
      const q = await boss.getQueue('identify');
      if (q) set('identify', q.queuedCount);
    });
    const stopping = new AbortController();
    const runtime: Runtime = Object.freeze({
      config,
      dbKind: db.kind,
      sql,
      boss,
      handOff: createHandOff(boss),
      log,
      metrics,
      pii,
      secret,
      clock: options.clock ?? (() => new Date()),
      plugins,
      publicUrl,
      stopping: stopping.signal,
    });
    const pipeline = createPipeline(runtime, { sources });
    let accepting = true;
    const inflight = { count: 0 };
    const app = createApp({
      runtime,
      pipeline,
      sources,
      authenticator,
      apiKeys,
      people,
      isAccepting: () => accepting,
      inflight,
      extra: (a) => {
        if (config.demo && config.role !== 'worker') demoRoutes(a, () => demoSource?.writeKey);
        options.extraRoutes?.(a);
      },
    });
    await pipeline.start();
    serve(app);

    let closing: Promise<void> | undefined;
    return {
      url,
      port,
      app,
      sql,
      generatedAdminKey: generatedKey,
      demoSource,
      pii,
      metrics,
      close() {
        closing ??= (async () => {
          accepting = false;
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          // Keep-alive connections would hold close() open; in-flight requests still finish first.
          const deadline = Date.now() + DEFAULTS.shutdownTimeoutMs;
          while (inflight.count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          if ('closeAllConnections' in server) server.closeAllConnections();
          // Every step is bounded: one that never settles (a query on a connection Postgres dropped) must
          // not hold the process for minutes. The log names the step; what it left undone is retried
          // after the restart (jobs by pg-boss, unacknowledged events by their clients).
          await bounded(log, 'closing the HTTP server', closed, 5_000);
          // The group commits in flight finish first; then plugin calls are aborted (retried later).
          await bounded(log, 'finishing the group commits in flight', pipeline.ingest.stop(), 10_000);
          stopping.abort();
          await bounded(log, 'stopping the pipeline stages', pipeline.stop(), 15_000);
          await bounded(log, 'stopping pg-boss', boss.stop({ graceful: true, timeout: 10_000, close: false }), 12_000);
          await bounded(log, 'stopping the source directory', sources.stop(), 5_000);
          await bounded(log, 'closing the database pool', db.close(), 10_000);
        })();
        return closing;
      },
    };
  }
}

// Waits for a shutdown step at most `ms`, then logs which step overran and goes on; its error is logged too.
async function bounded(log: Logger, step: string, work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const overran = new Promise<'overran'>((resolve) => {
    timer = setTimeout(() => resolve('overran'), ms);
  });
  try {
    const outcome = await Promise.race([work.then(() => 'done' as const), overran]);
    if (outcome === 'overran') log.error(`shutdown: ${step} did not finish in ${ms} ms; going on without it`);
  } catch (err) {
    log.error(`shutdown: ${step} failed`, err);
  } finally {
    clearTimeout(timer);
  }
}

// While starting (migrations, the startup lock, the first loads): the process is alive (/healthz 200, so a
// liveness probe does not restart a slow start) but not ready (everything else 503, retryable).
function starting(req: Request): Response {
  if (new URL(req.url).pathname === '/healthz') return Response.json({ status: 'starting' });
  return Response.json(
    { error: { code: 'unavailable', message: 'server is starting; retry' } },
    { status: 503, headers: { 'Retry-After': '1' } },
  );
}

function listen(
  fetch: (req: Request, env: unknown) => Response | Promise<Response>,
  config: Readonly<Config>,
): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    // Bounded requests: a client that trickles its headers or body is answered 408 and closed, not left
    // holding a socket for Node's default five minutes. Node checks the deadlines every
    // connectionsCheckingInterval (default 30 s): a second keeps them close to what they say.
    const server = createAdaptorServer({
      fetch,
      serverOptions: {
        headersTimeout: config.timeouts.headersMs,
        requestTimeout: config.timeouts.requestMs,
        connectionsCheckingInterval: Math.min(1000, config.timeouts.headersMs),
        // An idle keep-alive connection is closed after this. Node's 5 s default races clients that reuse a
        // connection just as the server closes it (ECONNRESET on the request they sent): seen with fetch under
        // load, where the client's own idle timer runs late. 65 s outlasts the idle timeouts of proxies and
        // HTTP clients (nginx 60 s, undici the server's hint minus a margin), so they close first.
        keepAliveTimeout: config.timeouts.keepAliveMs,
      },
    });
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
