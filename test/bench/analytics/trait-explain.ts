import { bucketStarts, foldTrends, type TrendRow, type TrendSeries, trendsQuery } from '@cairn/core';
import postgres from 'postgres';
import { TRAIT_REGISTRY, traitKeyOf, traitRollupQuery } from '../../../server/src/api/analytics/trends-traits.ts';
import { ZONE } from './queries.ts';

// EXPLAIN (ANALYZE, BUFFERS) of the trait tile ("average order by plan per week", 90 days in Berlin) on
// bench:analytics' database: (b) the rollup's statement as the route sends it, and (a) the same answer
// from the per-(person, day) cells joined to the current traits at query time. Prints plans and timings.
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/cairn_bench_analytics';
const sql = postgres(url, { max: 1, onnotice: () => {} });
const runs = Number(process.argv[2] ?? 5);
const [ds] = await sql<{ end: string }[]>`SELECT max(timestamp)::text AS end FROM events`;
const end = new Date(`${ds!.end.replace(' ', 'T')}`.replace(/\+00$/, 'Z'));
const to = new Date(Math.ceil(end.getTime() / 60_000) * 60_000).toISOString();
const days = bucketStarts(
  { from: new Date(Date.parse(to) - 100 * 86_400_000).toISOString(), to, timezone: ZONE },
  'day',
);
const range = { from: days.at(-90)!, to, timezone: ZONE };
const series: TrendSeries[] = [{ events: { event: 'Order Completed' }, measure: 'avg', property: 'total' }];
const starts = bucketStarts(range, 'week');
const { text: rt, values: rv } = TRAIT_REGISTRY.render();
const registry = (await sql.unsafe(rt, rv as never[])) as never[];
const key = traitKeyOf(series[0]!, { interval: 'week', range, breakdown: { trait: 'plan' }, registry });
if (!key) throw new Error('no trait rollup kept for the tile');
const now = new Date();
const b = traitRollupQuery({ series, keys: [key], trait: 'plan', range, starts, now }).render();
// (a): the whole days from the cells joined to profile_traits (only the rollup part; the edges are the same).
const a = {
  text: `SELECT width_bucket((c.day::timestamp + interval '12 hours') AT TIME ZONE $1, $2::timestamptz[]) - 1 AS bucket,
    t.value #>> '{}' AS grp, sum(c.n) AS n, sum(c.sum)::float8 AS sum, sum(c.nums) AS nums
  FROM analytics_trait_cells c
  LEFT JOIN profile_traits t ON t.profile_id = c.profile_id AND t.key = 'plan'
  WHERE c.rollup_id = $3 AND c.day >= $4::date AND c.day < $5::date
  GROUP BY 1, 2`,
  values: [ZONE, starts, key.id, key.days.from, key.days.to],
};
// (scan): what the route ran before, the events scan joined to the current traits.
const scan = trendsQuery({ range, starts, series, breakdown: { trait: 'plan' }, now }).render();
const time = async (name: string, q: { text: string; values: unknown[] }) => {
  const ms: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    await sql.unsafe(q.text, q.values as never[]);
    if (i > 0) ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  console.log(
    `${name}: ${runs} runs after a warm-up, ms min ${ms[0]!.toFixed(1)} p50 ${ms[Math.floor(ms.length / 2)]!.toFixed(1)} max ${ms.at(-1)!.toFixed(1)}`,
  );
};
console.log(`range ${JSON.stringify(range)}; whole days ${key.days.from} .. ${key.days.to}`);
for (const [name, q] of [
  ['(b) rollup statement (route)', b],
  ['(a) cells joined to traits (whole days only)', a],
] as const) {
  const plan = await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${q.text}`, q.values as never[]);
  console.log(`\n== ${name}\n${plan.map((r) => r['QUERY PLAN']).join('\n')}`);
  await time(name, q);
}
// The rollup's answer equals the scan's (floats to 6 decimals: day sums add in another order).
const answer = async (q: { text: string; values: unknown[] }) => {
  const rows = (await sql.unsafe(q.text, q.values as never[])) as unknown as TrendRow[];
  const folded = foldTrends(rows, { series, buckets: starts.length, breakdown: true });
  return JSON.stringify(folded, (_k, v) => (typeof v === 'number' ? Math.round(v * 1e6) / 1e6 : v));
};
const [fromScan, fromRollup] = [await answer(scan), await answer(b)];
console.log(`\nrollup answer equals the scan's: ${fromScan === fromRollup}`);
if (fromScan !== fromRollup) console.log(`scan   ${fromScan}\nrollup ${fromRollup}`);
// Same run, one after the other: the scan, the rollup, the join (3 rounds).
for (let round = 0; round < 3; round++)
  for (const [name, q] of [
    ['scan (before)', scan],
    ['(b) rollup', b],
    ['(a) join', a],
  ] as const)
    await time(`round ${round + 1} ${name}`, q);
await sql.end();
