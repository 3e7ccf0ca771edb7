import { describeIssues, RULE_HINT } from '@cairn/core';
import { getConnInfo } from '@hono/node-server/conninfo';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { PgBoss } from 'pg-boss';
import { auditWrites } from '../audit/middleware.ts';
import { auditedRoutes, loaders } from '../audit/resources.ts';
import type { ApiKeyVerifier } from '../auth/api-keys.ts';
import type { Authenticator } from '../auth/keys.ts';
import { type AuthVariables, authenticate, permissionOf } from '../auth/middleware.ts';
import { type PeopleAuth, signUp } from '../auth/people.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { HandOff } from '../jobs/handoff.ts';
import type { Logger } from '../log.ts';
import type { Pii } from '../pii/index.ts';
import type { AutomateStage } from '../pipeline/automate/index.ts';
import type { ComputeStage } from '../pipeline/compute/index.ts';
import type { DeliverCommands, DestinationDirectory, PluginRegistry } from '../pipeline/deliver/index.ts';
import type { IdentifyStage } from '../pipeline/identify/index.ts';
import type { EventWriter } from '../pipeline/ingest/index.ts';
import type { MeasureStage } from '../pipeline/measure/index.ts';
import type { SourceDirectory } from '../sources/directory.ts';
import { getSource } from '../sources/queries.ts';
import { alertsApi } from './alerts.ts';
import { funnelTagApi } from './analytics/funnel-tag.ts';
import { analyticsApi } from './analytics/index.ts';
import { dailyCountsApi } from './audience-counts.ts';
import { tagWhyApi } from './audience-tag-why.ts';
import { audiencesApi } from './audiences.ts';
import { auditApi } from './audit.ts';
import { calendarsApi } from './calendars.ts';
import { campaignsApi } from './campaigns.ts';
import { clusteringApi } from './clustering.ts';
import { computedTraitsApi, profileComputedApi } from './computed-traits.ts';
import { couponPoolsApi } from './coupons.ts';
import { dataQualityApi } from './data-quality.ts';
import { apiDescription } from './description.ts';
import { destinationsApi, destinationView } from './destinations.ts';
import { apiReference } from './docs.ts';
import { duplicatesApi } from './duplicates.ts';
import { employeesApi } from './employees.ts';
import { eventsApi } from './events.ts';
import { eventsLiveApi } from './events-live.ts';
import { failedEventsApi } from './failed-events.ts';
import { flowCountsApi } from './flow-counts.ts';
import { flowExperimentsApi } from './flow-experiments.ts';
import { flowGovernanceApi } from './flow-governance.ts';
import { flowReviewApi } from './flow-review.ts';
import { flowStatsApi } from './flow-stats.ts';
import { flowVersionsApi } from './flow-versions.ts';
import { flowsApi } from './flows.ts';
import { importsApi } from './imports.ts';
import { profileUpsertApi } from './imports-upsert.ts';
import { keysApi } from './keys.ts';
import { kpisApi } from './kpis.ts';
import { meApi } from './me.ts';
import { profilePointsApi } from './points.ts';
import { profileEmployeesApi } from './profile-employees.ts';
import { profileListApi } from './profile-list.ts';
import { profileTimelineApi } from './profile-timeline.ts';
import { profilesApi } from './profiles.ts';
import { reportsApi } from './reports.ts';
import { sourceSnippetApi } from './source-snippet.ts';
import { sourcesApi } from './sources.ts';
import { subscriptionsApi } from './subscriptions.ts';
import { profileTagsApi, tagsApi } from './tags.ts';
import { usersApi } from './users.ts';

// The description and its reference viewer (page, start script, the viewer's files) are public.
const isPublic = (path: string) =>
  path === '/api/openapi.json' || path === '/api/docs' || path.startsWith('/api/docs/');

/**
 * The admin API under `/api`: JSON, bearer-key auth, OpenAPI at `/api/openapi.json` (with the
 * tracking API, every path under its full prefix), reference at `/api/docs` (served from this
 * server's own dependencies). Request bodies are validated by each route's zod schema; a failure is
 * a 400 that names the field.
 *
 * @example
 * app.route('/api', adminApi({ sql, authenticator, sources }));
 */
export function adminApi(deps: {
  sql: Sql;
  authenticator: Authenticator;
  apiKeys: ApiKeyVerifier;
  people: PeopleAuth;
  sources: SourceDirectory;
  writer: EventWriter;
  config: Readonly<Config>;
  log: Logger;
  boss: PgBoss;
  handOff: HandOff;
  identify: IdentifyStage;
  /** Stage 3's commands (static tags set by hand). */
  compute: ComputeStage;
  /** Stage 4's commands (entering a person into a flow through the API). */
  automate: AutomateStage;
  pii: Pii;
  /** Aborted when the server stops (ends live event streams). */
  stopping: AbortSignal;
  destinations: DestinationDirectory;
  plugins: PluginRegistry;
  /** Stage 5's commands (test send, replay). */
  deliver: DeliverCommands;
  /** Stage 6: the analytics reader. */
  measure: MeasureStage;
  /** The clock rules are evaluated against (previews, explanations). */
  now: () => Date;
}) {
  const api = new OpenAPIHono<{ Variables: AuthVariables }>({
    defaultHook(result) {
      if (result.success) return;
      // Messages that name what is valid: every option of an enum, `required` for a missing field.
      // @hono/zod-validator hands the input over as `data` on failure too; its type only says so on success.
      const input = (result as { data?: unknown }).data;
      const details = describeIssues(result.error, input, { rule: RULE_HINT });
      const first = details[0];
      throw apiError(
        400,
        'invalid_request',
        first ? `${first.path || 'body'}: ${first.message}` : 'invalid request',
        details,
      );
    },
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer' });
  api.openAPIRegistry.registerComponent('securitySchemes', 'session', {
    type: 'apiKey',
    in: 'cookie',
    name: 'better-auth.session_token',
    description:
      'From POST /api/auth/sign-in/email (named __Secure-better-auth.session_token over https); writes must send this server as Origin',
  });
  const describe = apiDescription(api.openAPIRegistry, { publicUrl: deps.config.publicUrl });
  api.get('/openapi.json', (c) => c.json(describe()));
  const reference = apiReference();
  api.get('/docs', reference.page);
  api.get('/docs/init.js', reference.init);
  api.get('/docs/:version/:file', reference.asset);

  // Request bodies are limited for every route outside the tracking API in app.ts (CAIRN_BODY_LIMIT_BYTES).
  const authed = authenticate({
    authenticator: deps.authenticator,
    apiKeys: deps.apiKeys,
    people: deps.people,
    publicUrl: deps.config.publicUrl,
  });
  // Everything under /api needs a key or a session except its own description and better-auth's
  // endpoints (sign-in, sign-up, sign-out, change-password: better-auth checks those itself).
  api.use('*', function requireKey(c, next) {
    return isPublic(c.req.path) || c.req.path.startsWith('/api/auth/') ? next() : authed(c, next);
  });
  // Every write below is recorded in audit_log, once, by this one middleware (after authentication,
  // so it knows who; before the routes, so it sees the resource before and after).
  api.use(
    '*',
    auditWrites({
      sql: deps.sql,
      log: deps.log,
      routes: auditedRoutes(loaders((d) => destinationView(d, deps.plugins))),
    }),
  );
  api.post('/auth/sign-up/email', async (c) =>
    withRetryAfter(await signUp(deps.sql, deps.people, withPeer(c), { openFirst: deps.config.openFirstSignUp })),
  );
  api.on(['GET', 'POST'], '/auth/*', async (c) => withRetryAfter(await deps.people.handler(withPeer(c))));
  api.route('/sources', sourcesApi(deps.sql, deps.sources));
  api.route('/sources', sourceSnippetApi(deps.sql, deps.config.publicUrl));
  api.route('/me', meApi(deps));
  api.route('/events', eventsLiveApi(deps));
  api.route('/events', eventsApi(deps.measure.reader, deps.pii));
  // Before profilesApi: its GET /profiles/{id} would take /profiles/recent for an id.
  api.route('/profiles', profileListApi(deps));
  api.route('/profiles', profilesApi(deps));
  api.route('/profiles', profileTimelineApi(deps));
  api.route('/profiles', subscriptionsApi(deps.sql, deps.pii));
  api.route('/profiles', profileTagsApi(deps));
  api.route('/tags', tagsApi(deps));
  api.route('/imports', importsApi(deps));
  api.route('/profiles', profileUpsertApi(deps));
  api.route('/duplicates', duplicatesApi(deps));
  api.route('/tags', funnelTagApi(deps));
  api.route('/profiles', profileComputedApi(deps.sql));
  api.route('/computed-traits', computedTraitsApi(deps));
  api.route('/clusterings', clusteringApi(deps));
  api.route('/data-quality', dataQualityApi(deps));
  api.route('/audiences', audiencesApi(deps));
  api.route('/audiences', dailyCountsApi(deps, 'audience'));
  api.route('/tags', dailyCountsApi(deps, 'tag'));
  api.route('/tags', tagWhyApi(deps));
  api.route('/destinations', destinationsApi(deps));
  // Review first: its GET /flows/stale before flowsApi's GET /flows/{id}.
  api.route('/flows', flowReviewApi(deps));
  api.route('/flows', flowCountsApi(deps));
  api.route('/flows', flowsApi(deps));
  api.route('/flows', flowStatsApi(deps));
  api.route('/flows', flowVersionsApi(deps));
  api.route('/flows', flowExperimentsApi(deps));
  api.route('/calendars', calendarsApi(deps));
  api.route('/flow-governance', flowGovernanceApi(deps));
  api.route('/employees', employeesApi(deps));
  api.route('/profiles', profileEmployeesApi(deps));
  api.route('/coupon-pools', couponPoolsApi(deps));
  api.route('/profiles', profilePointsApi(deps));
  api.route('/campaigns', campaignsApi(deps));
  api.route(
    '/users',
    usersApi(deps.sql, deps.people, () => deps.apiKeys.clear()),
  );
  api.route(
    '/keys',
    keysApi(deps.sql, deps.people, () => deps.apiKeys.clear()),
  );
  api.route(
    '/failed-events',
    failedEventsApi(deps.sql, {
      writer: deps.writer,
      maxFutureSkewMs: deps.config.maxFutureSkewMs,
      pii: deps.pii,
      sourceExists: async (id) => (await getSource(deps.sql, id)) !== undefined,
    }),
  );
  api.route('/audit', auditApi(deps.sql));
  api.route('/analytics', analyticsApi(deps));
  api.route('/reports', reportsApi(deps));
  api.route('/kpis', kpisApi(deps));
  api.route('/alerts', alertsApi(deps));
  describePermissions(api);
  return api;
}

// Each operation names the permission it needs (x-cairn-permission), read from the requirePermission
// middleware Hono registered for it: the OpenAPI description shows the permission table, and the
// role-matrix test walks it. (@hono/zod-openapi keeps a route's middleware out of its registry.)
function describePermissions(api: OpenAPIHono<{ Variables: AuthVariables }>) {
  const byRoute = new Map<string, string>();
  for (const r of api.routes) {
    const permission = permissionOf(r.handler);
    if (permission) byRoute.set(`${r.method.toUpperCase()} ${r.path}`, permission);
  }
  for (const def of api.openAPIRegistry.definitions) {
    if (def.type !== 'route') continue;
    const route = def.route as typeof def.route & { 'x-cairn-permission'?: string };
    const path = route.path.replaceAll(/\/{(.+?)}/g, '/:$1');
    const permission = byRoute.get(`${route.method.toUpperCase()} ${path}`);
    if (permission) route['x-cairn-permission'] = permission;
  }
}

// better-auth's rate limiter keys on a header; hand it the socket peer so a client cannot pick its own
// address (behind a proxy, CAIRN_TRUST_PROXY makes it read X-Forwarded-For instead).
function withPeer(c: Context): Request {
  const req = new Request(c.req.raw);
  let ip = '127.0.0.1';
  try {
    ip = getConnInfo(c).remote.address ?? ip;
  } catch {
    // app.request() in tests has no socket.
  }
  req.headers.set('x-cairn-peer-ip', ip);
  return req;
}

// better-auth answers 429 with X-Retry-After; HTTP clients look for Retry-After. A 500 of its own
// (an APIError it raised) may carry an internal message: it goes to the log, the client gets ours.
async function withRetryAfter(res: Response): Promise<Response> {
  if (res.status >= 500) throw new Error(`better-auth answered ${res.status}: ${await res.text()}`);
  if (res.status !== 429 || res.headers.has('retry-after')) return res;
  const out = new Response(res.body, res);
  out.headers.set('Retry-After', res.headers.get('x-retry-after') ?? '60');
  return out;
}
