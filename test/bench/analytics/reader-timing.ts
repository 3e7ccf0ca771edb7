// Times the funnel and retention answers of bench:analytics through the analytics reader (the route's
// SQL and its JS pass, no HTTP, no server): a check beside the HTTP figures when the server is busy with
// other work. Run: bash scripts/with-node.sh tsx test/bench/analytics/reader-timing.ts [runs]

import { loadavg } from 'node:os';
import { addAttempt, funnelCounts, type RetentionQuery, retentionBounds, retentionTable } from '@cairn/core';
import postgres from 'postgres';
import { readFunnel } from '../../../server/src/api/analytics/funnel-read.ts';
import { readRetention } from '../../../server/src/api/analytics/retention-read.ts';
import type { Sql } from '../../../server/src/db/index.ts';
import { createAnalyticsReader } from '../../../server/src/pipeline/measure/index.ts';
import { FUNNEL } from './data.ts';
import { benchQueries } from './queries.ts';

const url = process.env.BENCH_URL ?? 'postgres://postgres@127.0.0.1:5432/cairn_bench_analytics';
const runs = Number(process.argv[2] ?? 3);
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
const qs = benchQueries(end, { runs: 1, slowRuns: 1 });
const range = (qs.find((q) => q.route === 'funnels')!.body as { range: { from: string; to: string } }).range;
const windowMs = 7 * 86_400_000;
const query = {
  steps: FUNNEL.map((s) => ({ event: s.name })),
  exclusions: [],
  order: 'sequential' as const,
  from: range.from,
  to: range.to,
  windowMs,
  now: end,
};
const pass = {
  steps: FUNNEL.length,
  order: 'sequential' as const,
  windowMs,
  from: Date.parse(range.from),
  to: Date.parse(range.to),
  until: end.getTime(),
  exclusions: [],
};
const timed = async (name: string, how: string, fn: () => Promise<string>) => {
  const ms: number[] = [];
  let answer = '';
  for (let k = 0; k <= runs; k++) {
    const t0 = performance.now();
    answer = await fn();
    if (k) ms.push(Math.round(performance.now() - t0));
  }
  console.log(`${name} (${how}): ${ms.join(', ')} ms; load ${loadavg()[0]!.toFixed(1)}; ${answer}`);
};
for (const how of ['packed', 'stream'] as const)
  await timed('funnel, 5 steps, 30 days, 7-day window', how, async () => {
    const c = funnelCounts(FUNNEL.length);
    await readFunnel(reader, query, pass, (_p, a) => void (a && addAttempt(c, a)), undefined, how);
    return c.entered.join(' / ');
  });
for (const q of qs.filter((x) => x.route === 'retention'))
  for (const how of ['pass', 'join'] as const)
    await timed(`retention, ${q.name}`, how, async () => {
      const rq = q.body as RetentionQuery;
      const rows = await readRetention(reader, rq, end, undefined, how);
      const t = retentionTable(rq, rows, end);
      return `${retentionBounds(rq).length - 1} buckets; cohort sizes ${t.map((c) => c.size).join(' ')}`;
    });
await reader.close();
await sql.end();
