import { OpenAPIHono } from '@hono/zod-openapi';
import type { AuthVariables } from '../../auth/middleware.ts';
import type { Config } from '../../config.ts';
import type { Sql } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import type { MeasureStage } from '../../pipeline/measure/index.ts';
import { activeApi } from './active.ts';
import { attributionApi } from './attribution.ts';
import { campaignResultsApi } from './campaigns.ts';
import { funnelsApi } from './funnels.ts';
import { horizonGuard } from './horizon.ts';
import { pathsApi } from './paths.ts';
import { retentionApi } from './retention.ts';
import { rollupPropertiesApi } from './rollups.ts';
import { rollupPeopleApi } from './rollups-people.ts';
import { rollupTraitsApi } from './rollups-traits.ts';
import { trendsApi } from './trends.ts';

/** What the analytics routes are built from. */
export interface AnalyticsDeps {
  sql: Sql;
  measure: MeasureStage;
  pii: Pii;
  now: () => Date;
  /** The event retention named in a refusal (422 `before_retention`, ./horizon.ts). */
  config: { retention: Pick<Config['retention'], 'eventDays'> };
}

/**
 * `/api/analytics/...`: the query API of stage 6. Every query is a read (POST with a JSON body, never
 * audited), counted per person after identity merges (events carry their current profile), run on the
 * read-only analytics connection with a statement timeout (422 `query_too_broad` past it), refused when it reads events before the
 * retention horizon (422 `before_retention`, ./horizon.ts), cancelled
 * when the client goes away, and answered with `meta` (where it was read, replica lag, time taken).
 *
 * @example
 * api.route('/analytics', analyticsApi({ sql, measure, pii, now }));
 */
export function analyticsApi(deps: AnalyticsDeps) {
  const app = new OpenAPIHono<{ Variables: AuthVariables }>();
  // Every route refuses a query reading events before the retention horizon (422 before_retention).
  const _deps = { ...deps, horizon: horizonGuard({ sql: deps.sql, eventDays: deps.config.retention.eventDays }) };
  app.route('/', trendsApi(_deps));
  app.route('/', retentionApi(_deps));
  app.route('/', activeApi(_deps));
  app.route('/', attributionApi(_deps));
  app.route('/', funnelsApi(_deps));
  app.route('/', pathsApi(_deps));
  app.route('/', campaignResultsApi(_deps));
  app.route('/', rollupPeopleApi(deps));
  app.route('/', rollupPropertiesApi(deps));
  app.route('/', rollupTraitsApi(deps));
  return app;
}
