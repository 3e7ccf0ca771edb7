// Measures the two ways of reading a funnel's per-person pass (funnel-read.ts) on a bench:analytics
// database: `stream` (events ordered by person through a cursor, folded in JS) against `arrays`
// (array_agg per person in SQL), each after a warm-up, several runs one at a time, plus the plans.
// Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_analytics_small [SHAPES=30:sequential] \
//   [PLANS=1] npx tsx server/src/api/analytics/funnel-read.measure.ts [runs]
import { addAttempt, type FunnelOrder, funnelArraysQuery, funnelCounts, funnelEventsQuery } from '@cairn/core';
import postgres from 'postgres';
import type { Sql } from '../../db/index.ts';
import { createPii } from '../../pii/index.ts';
import { createAnalyticsReader } from '../../pipeline/measure/index.ts';
import { type FunnelRead, readFunnel } from './funnel-read.ts';
import { funnelOf } from './funnels.ts';

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
const [{ end }] = (await sql`SELECT max(timestamp) AS end FROM events`) as unknown as [{ end: Date }];
const [{ n }] = (await sql`SELECT count(*)::int AS n FROM events`) as unknown as [{ n: number }];
const to = end.toISOString();
const steps = ['Product Viewed', 'Product Added', 'Checkout Started', 'Payment Info Entered', 'Order Completed'];
console.log(`${n} events; 5-step funnel, 7-day window, ranges ending ${to}`);

for (const [days, order] of [
  [30, 'sequential'],
  [30, 'strict'],
  [120, 'sequential'],
  [120, 'strict'],
] as [number, FunnelOrder][]) {
  // SHAPES=30:sequential,120:strict runs only those.
  if (process.env.SHAPES && !process.env.SHAPES.split(',').includes(`${days}:${order}`)) continue;
  const from = new Date(end.getTime() - days * 86_400_000).toISOString();
  console.log(`${days} days, ${order}:`);
  const body = {
    range: { from, to, timezone: 'UTC' },
    steps: steps.map((event) => ({ events: { event } })),
    window: { value: 7, unit: 'days' as const },
    order,
    exclusions: [],
  };
  const { query, pass } = funnelOf(body, createPii({ secret: 'x'.repeat(32) }), new Date());
  for (const how of ['stream', 'arrays'] as FunnelRead[]) {
    const times: number[] = [];
    let entered: number[] = [];
    for (let r = 0; r <= runs; r++) {
      const counts = funnelCounts(pass.steps);
      const t0 = performance.now();
      await readFunnel(reader, query, pass, (_p, a) => void (a && addAttempt(counts, a)), undefined, how);
      if (r) times.push(performance.now() - t0);
      entered = counts.entered;
    }
    times.sort((a, b) => a - b);
    console.log(
      `  ${how.padEnd(6)} median ${times[times.length >> 1]!.toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms; entered ${entered.join(' / ')}`,
    );
    const { text, values } = (how === 'stream' ? funnelEventsQuery(query) : funnelArraysQuery(query)).render();
    const plan = (await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS OFF) ${text}`, values as never[])) as unknown as {
      'QUERY PLAN': string;
    }[];
    if (process.env.PLANS) console.log(plan.map((p) => `    ${p['QUERY PLAN']}`).join('\n'));
    else console.log(`    ${plan[0]!['QUERY PLAN'].replace(/\(cost=[^)]*\) /, '')}; ${plan.at(-1)!['QUERY PLAN']}`);
  }
}
await reader.close();
await sql.end();
