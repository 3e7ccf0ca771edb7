// The measure job's cost per batch of attached events on a bench:analytics database, with and without
// migration 0044's trait breakdowns (one kept entry: plan x Order Completed.total, as bench:analytics keeps
// it). Per batch of consecutive attached events, each case rolled back:
//   job: the job's other parts (people per hour, people per day, the hourly keys' recount), for reference;
//   none kept: addTraitCellsOf with the registry emptied (what every deployment pays by default);
//   kept, cells current: the batch's cells exist (the recount reads them and writes nothing);
//   kept, new cells: the batch's cells deleted first (every kept event's cell is written, the dearest case);
//   kept, plan changed: every person of the batch has a new plan (all their cells move).
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_analytics \
//     bash scripts/with-node.sh tsx test/bench/analytics/trait-cost.ts [batches=10] [size=1000]
import type { Transaction } from '../../../server/src/db/index.ts';
import { recountRollup, rollupKeysOf } from '../../../server/src/pipeline/measure/rollup.ts';
import { addPeopleOf } from '../../../server/src/pipeline/measure/rollup-people.ts';
import { addPeriodPeopleOf } from '../../../server/src/pipeline/measure/rollup-period-people.ts';
import { addTraitCellsOf } from '../../../server/src/pipeline/measure/rollup-traits.ts';
import { batchBench, batchIds, lastEventAt, perBatch, rolledBack } from './batches.ts';

const run = batchBench({ batches: 10, size: 1000 });
const { sql, batches, size } = run;
const ms = { job: 0, none: 0, current: 0, fresh: 0, changed: 0 };
let kept = 0;
let moved = 0;
const timed = async (key: keyof typeof ms, ids: string[], before?: (tx: Transaction) => Promise<unknown>) =>
  rolledBack(sql, async (tx) => {
    await addPeopleOf(tx, ids);
    await before?.(tx);
    const t0 = performance.now();
    await addTraitCellsOf(tx, ids, []);
    ms[key] += performance.now() - t0;
  });
const end = await lastEventAt(sql);
for (let b = 0; b < batches; b++) {
  const ids = await batchIds(sql, end, b, size);
  const [k] = await sql<{ n: number; people: number }[]>`
    SELECT count(*) FILTER (WHERE event = 'Order Completed')::int AS n, count(DISTINCT profile_id)::int AS people
    FROM events WHERE id = ANY(${ids}::bigint[])`;
  kept += k!.n;
  await rolledBack(sql, async (tx) => {
    const t0 = performance.now();
    await addPeopleOf(tx, ids);
    await addPeriodPeopleOf(tx, ids);
    await recountRollup(tx, await rollupKeysOf(tx, { ids }));
    ms.job += performance.now() - t0;
  });
  await timed('none', ids, (tx) => tx`DELETE FROM analytics_rollup_traits`);
  await timed('current', ids);
  await timed(
    'fresh',
    ids,
    (tx) => tx`
      DELETE FROM analytics_trait_cells c USING events e
      WHERE e.id = ANY(${ids}::bigint[]) AND c.profile_id = e.profile_id
        AND c.day = (e.timestamp AT TIME ZONE 'Europe/Berlin')::date`,
  );
  await timed('changed', ids, async (tx) => {
    const r = await tx`
      UPDATE profile_traits SET value = to_jsonb(value #>> '{}' || '+')
      WHERE key = 'plan' AND profile_id IN (SELECT profile_id FROM events WHERE id = ANY(${ids}::bigint[]))`;
    const [c] = await tx<{ n: number }[]>`
      SELECT count(*)::int AS n FROM analytics_trait_cells
      WHERE profile_id IN (SELECT profile_id FROM events WHERE id = ANY(${ids}::bigint[]))`;
    moved += c!.n;
    return r;
  });
}
const per = (t: number) => perBatch(t, run, 1);
console.log(
  `${batches} batches of ${size} attached events (${(kept / batches).toFixed(0)} Order Completed per batch; ${(moved / batches).toFixed(0)} cells moved per batch when every plan changed):`,
);
console.log(`  the job's other parts (people per hour, per day, hourly recount): ${per(ms.job)}`);
console.log(`  trait breakdowns, none kept: ${per(ms.none)}`);
console.log(`  one kept, cells current: ${per(ms.current)}`);
console.log(`  one kept, new cells: ${per(ms.fresh)}`);
console.log(`  one kept, every plan of the batch changed: ${per(ms.changed)}`);
await sql.end();
