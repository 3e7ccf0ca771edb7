// The measure job's cost per batch of attached events on a bench:analytics database, before and after
// migration 0042's people per day: the job as it was (people per hour, then the hourly keys' recount)
// and addPeriodPeopleOf alone, for the same batch. The generated events already have their presence rows,
// so each batch is run twice: "new days" first deletes the batch's (person, key, day) rows (every event is
// then its person's first of the day in every kept key: the dearest case), "known days" leaves them (every
// event on a day its person already has: one probe). Each batch is rolled back.
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_periods \
//     bash scripts/with-node.sh tsx test/bench/analytics/period-people-cost.ts [batches=10] [size=1000]
import postgres from 'postgres';
import type { Transaction } from '../../../server/src/db/index.ts';
import { recountRollup, rollupKeysOf } from '../../../server/src/pipeline/measure/rollup.ts';
import { addPeopleOf } from '../../../server/src/pipeline/measure/rollup-people.ts';
import { addPeriodPeopleOf } from '../../../server/src/pipeline/measure/rollup-period-people.ts';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL: a bench:analytics database');
const batches = Number(process.argv[2] ?? 10);
const size = Number(process.argv[3] ?? 1000);
const sql = postgres(url, { max: 1, onnotice: () => {} });
const ms = { before: 0, newDays: 0, knownDays: 0 };
class Rollback extends Error {}
const rolledBack = async (fn: (tx: Transaction) => Promise<void>) => {
  try {
    await sql.begin(async (raw) => {
      await fn(raw as unknown as Transaction);
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
};
const [{ end }] = (await sql`SELECT max(timestamp) AS end FROM events`) as unknown as [{ end: Date }];
for (let b = 0; b < batches; b++) {
  // A batch as the pipeline sends one: events attached together (consecutive in time, a day apart per batch).
  const ids = (
    await sql<{ id: string }[]>`
      SELECT id::text AS id FROM events
      WHERE profile_id IS NOT NULL AND timestamp > ${end}::timestamptz - make_interval(days => ${2 + b})
      ORDER BY timestamp LIMIT ${size}`
  ).map((r) => r.id);
  await rolledBack(async (tx) => {
    const t0 = performance.now();
    await addPeopleOf(tx, ids);
    await recountRollup(tx, await rollupKeysOf(tx, { ids }));
    ms.before += performance.now() - t0;
  });
  await rolledBack(async (tx) => {
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
  await rolledBack(async (tx) => {
    await addPeopleOf(tx, ids);
    const t0 = performance.now();
    await addPeriodPeopleOf(tx, ids);
    ms.knownDays += performance.now() - t0;
  });
}
const per = (t: number) =>
  `${(t / batches).toFixed(1)} ms/batch (${((t / batches / size) * 1000).toFixed(0)} µs/event)`;
console.log(
  `${batches} batches of ${size} events: the job before 0042 ${per(ms.before)}; + people per day, new days ${per(ms.newDays)}; known days ${per(ms.knownDays)}`,
);
await sql.end();
