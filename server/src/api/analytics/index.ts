import { OpenAPIHono } from '@hono/zod-openapi';
import type { AuthVariables } from '../../auth/middleware.ts';
import type { Sql } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { activeApi } from './active.ts';
import { attributionApi } from './attribution.ts';
import { campaignResultsApi } from './campaigns.ts';
import { funnelsApi } from './funnels.ts';
import { pathsApi } from './paths.ts';
import { retentionApi } from './retention.ts';
import { trendsApi } from './trends.ts';

/** What the analytics routes are built from. */
export interface AnalyticsDeps {
  sql: Sql;
  measure: MeasureStage;
  pii: Pii;
  now: () => Date;
}

/**
 * `/api/analytics/...`: the query API of stage 6. Every query is a read (POST with a JSON body, never
 * audited), counted per person after identity merges (events carry their current profile), run on the
 * read-only analytics connection with a statement timeout (422 `query_too_broad` past it), cancelled
 * when the client goes away, and answered with `meta` (where it was read, replica lag, time taken).
 *
 * @example
 * api.route('/analytics', analyticsApi({ sql, measure, pii, now }));
 */
export function analyticsApi(_deps: AnalyticsDeps) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  app.route('/', trendsApi(_deps));
  app.route('/', retentionApi(_deps));
  app.route('/', activeApi(_deps));
  app.route('/', attributionApi(_deps));
  app.route('/', funnelsApi(_deps));
  app.route('/', pathsApi(_deps));
  app.route('/', campaignResultsApi(_deps));
  return app;
}
