// The measure job's cost per batch of attached events on a bench:analytics database, before and after
// migration 0042's people per day: the job as it was (people per hour, then the hourly keys' recount)
// and addPeriodPeopleOf alone, for the same batch. The generated events already have their presence rows,
// so each batch is run twice: "new days" first deletes the batch's (person, key, day) rows (every event is
// then its person's first of the day in every kept key: the dearest case), "known days" leaves them (every
// event on a day its person already has: one probe). Each batch is rolled back.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_periods \
//     bash scripts/with-node.sh tsx test/bench/analytics/period-people-cost.ts [batches=10] [size=1000]
import { recountRollup, rollupKeysOf } from '../../../server/src/pipeline/measure/rollup.ts';
import { addPeopleOf } from '../../../server/src/pipeline/measure/rollup-people.ts';
import { addPeriodPeopleOf } from '../../../server/src/pipeline/measure/rollup-period-people.ts';
import { batchBench, batchIds, lastEventAt, perBatch, rolledBack } from './batches.ts';

const run = batchBench({ batches: 10, size: 1000 });
const { sql, batches, size } = run;
const ms = { before: 0, newDays: 0, knownDays: 0 };
const end = await lastEventAt(sql);
for (let b = 0; b < batches; b++) {
  const ids = await batchIds(sql, end, b, size);
  await rolledBack(sql, async (tx) => {
    const t0 = performance.now();
    await addPeopleOf(tx, ids);
    await recountRollup(tx, await rollupKeysOf(tx, { ids }));
    ms.before += performance.now() - t0;
  });
  await rolledBack(sql, async (tx) => {
    await addPeopleOf(tx, ids);
    await tx`
      DELETE FROM analytics_period_people p
      USING events e
      WHERE e.id = ANY(${ids}::bigint[]) AND p.profile_id = e.profile_id
        AND (p.event = '' OR p.event = e.event) AND p.day = (e.timestamp AT TIME ZONE p.zone)::date`;
    const t0 = performance.now();
    await addPeriodPeopleOf(tx, ids);
    ms.newDays += performance.now() - t0;
  });
  await rolledBack(sql, async (tx) => {
    await addPeopleOf(tx, ids);
    const t0 = performance.now();
    await addPeriodPeopleOf(tx, ids);
    ms.knownDays += performance.now() - t0;
  });
}
const per = (t: number) => perBatch(t, run, 0);
console.log(
  `${batches} batches of ${size} events: the job before 0042 ${per(ms.before)}; + people per day, new days ${per(ms.newDays)}; known days ${per(ms.knownDays)}`,
);
await sql.end();
