import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { adminApi } from './api/index.ts';
import type { ApiKeyVerifier } from './auth/api-keys.ts';
import type { Authenticator } from './auth/keys.ts';
import type { PeopleAuth } from './auth/people.ts';
import { consoleRoutes, loadConsole } from './http/console.ts';
import { apiError, onError } from './http/errors.ts';
import { limitBodies, securityHeaders } from './http/hardening.ts';
import { loadSnippet, sdkRoutes } from './http/sdk.ts';
import type { Pipeline } from './pipeline/index.ts';
import type { Runtime } from './runtime.ts';
import type { SourceDirectory } from './sources/directory.ts';

const PROBES = new Set(['/healthz', '/readyz']);

/** Everything the HTTP app is built from. */
export interface AppDeps {
  runtime: Runtime;
  pipeline: Pipeline;
  sources: SourceDirectory;
  authenticator: Authenticator;
  apiKeys: ApiKeyVerifier;
  people: PeopleAuth;
  /** False once shutdown has begun: /readyz answers 503 so load balancers stop sending. */
  isAccepting(): boolean;
  /** Requests being handled, so shutdown can wait for them. */
  inflight: { count: number };
  /** Extra routes mounted last (the demo page). */
  extra?: (app: Hono) => void;
}

/**
 * Builds the Hono app for a server role: `ingest` and `all` serve the tracking and admin APIs;
 * every role serves /healthz, /readyz and /metrics.
 *
 * @example
 * const app = createApp(deps);
 * const res = await app.request('/healthz');
 */
export function createApp(deps: AppDeps): Hono {
  const { runtime, pipeline } = deps;
  const { metrics, config, sql, boss } = runtime;
  const app = new Hono();
  app.onError(onError(runtime.log));
  app.notFound(() => {
    throw apiError(404, 'not_found', 'no such route');
  });
  // First, so every answer (the shutdown 503 too) carries an id that a 500's log line also names.
  app.use('*', requestId());
  app.use('*', async function requestIdOnEveryAnswer(c, next) {
    await next();
    // A Response built elsewhere (better-auth's) misses the header requestId() set on the context.
    if (!c.res.headers.has('x-request-id')) c.res.headers.set('X-Request-Id', c.get('requestId'));
  });
  app.use('*', async function measure(c, next) {
    // Once shutdown begins, requests arriving on kept-alive connections are turned away (retryable)
    // and the connection closed, so in-flight work can drain instead of being refilled.
    if (!deps.isAccepting() && !PROBES.has(c.req.path)) {
      c.header('Connection', 'close');
      c.header('Retry-After', '1');
      return c.json({ error: { code: 'unavailable', message: 'server is shutting down; retry' } }, 503);
    }
    const stop = metrics.httpDuration.startTimer();
    deps.inflight.count++;
    try {
      await next();
    } finally {
      deps.inflight.count--;
    }
    const route = c.req.routePath || 'unmatched';
    stop({ method: c.req.method, route });
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
  });
  // Not on the tracking API, which keeps its own limits and CORS (pipeline/ingest/routes.ts). /api
  // gets no CORS at all: the admin API and its session cookies are for this origin only.
  app.use('*', securityHeaders());
  app.use('*', limitBodies(config.bodyLimitBytes));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (!deps.isAccepting()) return c.json({ status: 'shutting down' }, 503);
    try {
      await Promise.race([
        sql`SELECT 1`,
        new Promise((_, reject) => setTimeout(() => reject(new Error('database timeout')), 2000).unref()),
      ]);
      await boss.getQueue('identify');
      return c.json({ status: 'ready' });
    } catch (err) {
      return c.json({ status: 'not ready', reason: (err as Error).message }, 503);
    }
  });
  app.get('/metrics', async (c) => {
    if (config.metricsToken && !bearerMatches(c.req.header('authorization'), config.metricsToken)) {
      c.header('WWW-Authenticate', 'Bearer realm="metrics"');
      throw apiError(401, 'unauthorized', 'metrics need Authorization: Bearer <CAIRN_METRICS_TOKEN>');
    }
    c.header('Content-Type', metrics.registry.contentType);
    return c.body(await metrics.render());
  });

  if (config.role !== 'worker') {
    app.route('/', pipeline.ingest.routes());
    app.route(
      '/api',
      adminApi({
        ...runtime,
        now: runtime.clock,
        sources: deps.sources,
        authenticator: deps.authenticator,
        apiKeys: deps.apiKeys,
        people: deps.people,
        writer: pipeline.ingest.writer,
        identify: pipeline.identify,
        compute: pipeline.compute,
        automate: pipeline.automate,
        destinations: pipeline.deliver.destinations,
        deliver: pipeline.deliver,
        measure: pipeline.measure,
      }),
    );
    app.route('/sdk', sdkRoutes(loadSnippet(), config.publicUrl));
    const consoleFiles = loadConsole();
    app.get('/console', (c) => c.redirect('/console/', 301));
    app.route('/console', consoleRoutes(consoleFiles));
    pipeline.deliver.routes(app, pipeline.ingest.writer);
  }
  deps.extra?.(app);
  return app;
}

// Constant-time comparison of the presented bearer token (hashed first: equal lengths, nothing leaked by timing).
function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1]?.trim() ?? '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return presented.length > 0 && timingSafeEqual(digest(presented), digest(token));
}
