// Measures an attribution query (the statement and the fold of the endpoint) on a bench:analytics database:
// 'Order Completed' over the last 30 and 90 days, 30-day lookback, all six models, after a warm-up; with
// PLANS=1 the EXPLAIN ANALYZE of each statement too.
// Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_analytics_small [PLANS=1] \
//   npx tsx server/src/api/analytics/attribution.measure.ts [runs]
import {
  ATTRIBUTION_MODELS,
  type AttributionQuery,
  type AttributionRow,
  attributionFold,
  attributionSql,
} from '@cairn/core';
import postgres from 'postgres';
import type { Sql } from '../../db/index.ts';
import { createAnalyticsReader } from '../../pipeline/measure/index.ts';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL: a bench:analytics database');
const runs = Number(process.argv[2] ?? 5);
const sql = postgres(url, { onnotice: () => {} }) as unknown as Sql;
const reader = createAnalyticsReader({
  sql,
  dbKind: 'postgres',
  databaseUrl: url,
  replicaUrl: undefined,
  timeoutMs: 120_000,
});
const [{ end, n }] = (await sql`SELECT max(timestamp) AS end, count(*)::int AS n FROM events`) as unknown as [
  { end: Date; n: number },
];
console.log(
  `${n} events; attribution of Order Completed, 30-day lookback, six models, ranges ending ${end.toISOString()}`,
);
for (const days of [30, 90]) {
  const q: AttributionQuery = {
    range: { from: new Date(end.getTime() - days * 86_400_000).toISOString(), to: end.toISOString(), timezone: 'UTC' },
    conversion: { event: 'Order Completed' },
    lookbackDays: 30,
    channelOf: 'campaign',
    models: [...ATTRIBUTION_MODELS],
    halfLifeDays: 7,
  };
  const statement = attributionSql(q, { now: new Date() });
  const times: number[] = [];
  let rows = 0;
  let conversions = 0;
  for (let r = 0; r <= runs; r++) {
    const t0 = performance.now();
    const fold = attributionFold(q);
    rows = 0;
    for await (const batch of reader.stream<AttributionRow>(statement)) {
      rows += batch.length;
      fold.add(batch);
    }
    conversions = fold.result().totals.conversions;
    if (r) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${days} days: ${rows} rows, ${conversions} conversions; median ${times[times.length >> 1]!.toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms`,
  );
  if (process.env.PLANS) {
    const { text, values } = statement.render();
    const plan = await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values as never[]);
    for (const line of plan) console.log(`  ${(line as Record<string, string>)['QUERY PLAN']}`);
  }
}
await reader.close();
await sql.end();
