import { OpenAPIHono } from '@hono/zod-openapi';
import { Scalar } from '@scalar/hono-api-reference';
import { bodyLimit } from 'hono/body-limit';
import type { PgBoss } from 'pg-boss';
import type { Authenticator } from '../auth/keys.ts';
import { type AuthVariables, authenticate } from '../auth/middleware.ts';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { DestinationDirectory } from '../pipeline/deliver/directory.ts';
import type { SenderDeps } from '../pipeline/deliver/sender.ts';
import type { IdentifyContext } from '../pipeline/identify/process.ts';
import type { EventWriter } from '../pipeline/ingest/writer.ts';
import type { SourceDirectory } from '../sources/directory.ts';
import { getSource } from '../sources/queries.ts';
import { audiencesApi } from './audiences.ts';
import { computedTraitsApi, profileComputedApi } from './computed-traits.ts';
import { destinationsApi } from './destinations.ts';
import { eventsApi } from './events.ts';
import { failedEventsApi } from './failed-events.ts';
import { profilesApi } from './profiles.ts';
import { sourcesApi } from './sources.ts';
import { subscriptionsApi } from './subscriptions.ts';
import { profileTagsApi, tagsApi } from './tags.ts';
import { describeTrackingApi } from './tracking-doc.ts';

const PUBLIC_PATHS = new Set(['/api/openapi.json', '/api/docs']);

/**
 * The admin API under `/api`: JSON, bearer-key auth, OpenAPI at `/api/openapi.json`, reference at
 * `/api/docs`. Request bodies are validated by each route's zod schema; a failure is a 400 that names
 * the field.
 *
 * @example
 * app.route('/api', adminApi({ sql, authenticator, sources }));
 */
export function adminApi(deps: {
  sql: Sql;
  authenticator: Authenticator;
  sources: SourceDirectory;
  writer: EventWriter;
  config: Readonly<Config>;
  boss: PgBoss;
  identify: IdentifyContext;
  destinations: DestinationDirectory;
  sender: SenderDeps;
  /** The clock rules are evaluated against (previews, explanations). */
  now: () => Date;
}) {
  const api = new OpenAPIHono<{ Variables: AuthVariables }>({
    defaultHook(result) {
      if (result.success) return;
      const details = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
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
  describeTrackingApi(api.openAPIRegistry);
  api.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Cairn API', version: '0.1.0', description: 'Tracking API (Segment-compatible) and admin API.' },
    security: [{ apiKey: [] }],
  });
  api.get('/docs', Scalar({ url: '/api/openapi.json', pageTitle: 'Cairn API' }));

  api.use(
    '*',
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw apiError(413, 'payload_too_large', 'request body is larger than 1 MiB');
      },
    }),
  );
  const authed = authenticate(deps.authenticator);
  // Everything under /api needs a key except its own description.
  api.use('*', function requireKey(c, next) {
    return PUBLIC_PATHS.has(c.req.path) ? next() : authed(c, next);
  });
  api.route('/sources', sourcesApi(deps.sql, deps.sources));
  api.route('/events', eventsApi(deps.sql));
  api.route('/profiles', profilesApi(deps));
  api.route('/profiles', subscriptionsApi(deps.sql));
  api.route('/profiles', profileTagsApi(deps));
  api.route('/tags', tagsApi(deps));
  api.route('/profiles', profileComputedApi(deps.sql));
  api.route('/computed-traits', computedTraitsApi(deps));
  api.route('/audiences', audiencesApi(deps));
  api.route('/destinations', destinationsApi(deps));
  api.route(
    '/failed-events',
    failedEventsApi(deps.sql, {
      writer: deps.writer,
      maxFutureSkewMs: deps.config.maxFutureSkewMs,
      sourceExists: async (id) => (await getSource(deps.sql, id)) !== undefined,
    }),
  );
  return api;
}
