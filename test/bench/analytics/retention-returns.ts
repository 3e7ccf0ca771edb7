// Times first-time retention of bench:analytics with its returns read from events and from the per-day
// people rollup (migration 0042), alternating in one run, through the analytics reader (no HTTP), and
// checks the two tables are equal. Run:
//   BENCH_URL=postgres://postgres@127.0.0.1:5432/<db> bash scripts/with-node.sh tsx test/bench/analytics/retention-returns.ts [runs]

import { loadavg } from 'node:os';
import { type RetentionQuery, retentionTable } from '@cairn/core';
import postgres from 'postgres';
import { answerRetention } from '../../../server/src/api/analytics/retention-read.ts';
import type { Sql } from '../../../server/src/db/index.ts';
import { createAnalyticsReader } from '../../../server/src/pipeline/measure/index.ts';
import { benchQueries } from './queries.ts';

const url = process.env.BENCH_URL ?? 'postgres://postgres@127.0.0.1:5432/cairn_bench_analytics';
const runs = Number(process.argv[2] ?? 5);
const sql = postgres(url, { onnotice: () => {} });
const reader = createAnalyticsReader({
  sql: sql as unknown as Sql,
  dbKind: 'postgres',
  databaseUrl: url,
  replicaUrl: undefined,
  timeoutMs: 300_000,
});
const [ds] = await sql<{ c: string }[]>`
  SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = current_database()`;
const end = new Date(JSON.parse(ds!.c).end);
const qs = benchQueries(end, { runs: 1, slowRuns: 1 }).filter(
  (x) => x.route === 'retention' && (x.body as RetentionQuery).mode === 'first_time',
);
for (const q of qs) {
  const rq = q.body as RetentionQuery;
  const ms = { events: [] as number[], auto: [] as number[] };
  const tables = new Map<string, string>();
  for (let k = 0; k <= runs; k++)
    for (const returns of ['events', 'auto'] as const) {
      const t0 = performance.now();
      const { rows, sources } = await answerRetention(reader.pin(), rq, end, undefined, returns);
      const took = Math.round(performance.now() - t0);
      if (k) ms[returns].push(took);
      tables.set(`${returns} (${sources.join(', ')})`, JSON.stringify(retentionTable(rq, rows, end)));
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const [a, b] = [...tables.values()];
  console.log(`retention, ${q.name}; load ${loadavg()[0]!.toFixed(1)}; tables equal: ${a === b}`);
  for (const [how, xs] of Object.entries(ms))
    console.log(
      `  returns ${how === 'auto' ? [...tables.keys()][1] : [...tables.keys()][0]}: ${xs.join(', ')} ms (median ${median(xs)})`,
    );
}
await reader.close();
await sql.end();
