// EXPLAIN (ANALYZE, BUFFERS) of the funnel and retention statements bench:analytics sends, on its
// database (cairn_bench_analytics), to see where their time goes:
//   bash scripts/with-node.sh tsx test/bench/analytics/explain.ts \
//     [funnel|funnel-packed|retention|retention-pass|retention2|retention2-pass] [--run]
// --run also times the statement read whole through a cursor (as the route reads it).
import {
  type Fragment,
  funnelEventsQuery,
  funnelPackedQuery,
  type RetentionQuery,
  retentionPassSql,
  retentionSql,
} from '@cairn/core';
import postgres from 'postgres';
import { FUNNEL } from './data.ts';
import { benchQueries } from './queries.ts';

const url = process.env.BENCH_URL ?? 'postgres://postgres@127.0.0.1:5432/cairn_bench_analytics';
const sql = postgres(url, { max: 1, onnotice: () => {} });
const [ds] = await sql<
  { c: string }[]
>`SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = current_database()`;
const end = new Date(JSON.parse(ds!.c).end);
const qs = benchQueries(end, { runs: 1, slowRuns: 1 });
const which = process.argv[2] ?? 'funnel';
const now = end;

function statement(): Fragment {
  if (which.startsWith('funnel')) {
    const b = qs.find((q) => q.route === 'funnels')!.body as { range: { from: string; to: string } };
    return (which === 'funnel-packed' ? funnelPackedQuery : funnelEventsQuery)({
      steps: FUNNEL.map((s) => ({ event: s.name })),
      exclusions: [],
      order: 'sequential',
      from: b.range.from,
      to: b.range.to,
      windowMs: 7 * 86_400_000,
      now,
    });
  }
  const r = qs.filter((q) => q.route === 'retention')[which.startsWith('retention2') ? 1 : 0]!.body as RetentionQuery;
  return which.endsWith('-pass') ? retentionPassSql(r, { now }) : retentionSql(r, { now });
}

const { text, values } = statement().render();
console.log(text, values);
for (const line of await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values as never[]))
  console.log(Object.values(line)[0]);
if (process.argv.includes('--run')) {
  const t0 = performance.now();
  let n = 0;
  for await (const rows of sql.unsafe(text, values as never[]).cursor(5_000)) n += rows.length;
  console.log(`read through a cursor: ${n} rows in ${Math.round(performance.now() - t0)} ms`);
}
await sql.end();
