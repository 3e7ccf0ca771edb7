// The measure job's cost per batch of attached events on the bench:analytics database, by part: the
// hourly counts' recount, the rolled-up properties' values, the people-per-hour rows (migration 0037).
// Each batch runs in a transaction that is rolled back, so the database is left as it was. It calls the
// job's own functions (internal to the server, hence the relative import: no export of the package has them).
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/cairn_bench_analytics \
//     bash scripts/with-node.sh tsx test/bench/analytics/rollup-cost.ts [batches=20] [size=500]
import postgres from 'postgres';
import type { Transaction } from '../../../server/src/db/index.ts';
import { recountRollup, rollupKeysOf } from '../../../server/src/pipeline/measure/rollup.ts';
import { addPeopleOf } from '../../../server/src/pipeline/measure/rollup-people.ts';
import { recountValues } from '../../../server/src/pipeline/measure/rollup-values.ts';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL: the bench:analytics database');
const batches = Number(process.argv[2] ?? 20);
const size = Number(process.argv[3] ?? 500);
const sql = postgres(url, { max: 1, onnotice: () => {} });
const ms = { keys: 0, counts: 0, values: 0, people: 0 };
class Rollback extends Error {}
for (let b = 0; b < batches; b++) {
  // A batch as the pipeline sends one: events attached together (consecutive in time, a day apart per batch).
  const ids = (
    await sql<{ id: string }[]>`
      SELECT id::text AS id FROM events
      WHERE profile_id IS NOT NULL AND timestamp > now() - make_interval(days => ${2 + b})
      ORDER BY timestamp LIMIT ${size}`
  ).map((r) => r.id);
  try {
    await sql.begin(async (raw) => {
      const tx = raw as unknown as Transaction;
      let t0 = performance.now();
      const keys = await rollupKeysOf(tx, { ids });
      ms.keys += performance.now() - t0;
      t0 = performance.now();
      await recountRollup(tx, keys); // the counts, then the values of the same keys
      const both = performance.now() - t0;
      t0 = performance.now();
      // The values once more, alone: their share of the recount.
      await recountValues(
        tx,
        keys.map((k) => k.hour),
        keys.map((k) => k.type),
        keys.map((k) => k.event),
      );
      const values = performance.now() - t0;
      ms.values += values;
      ms.counts += both - values;
      t0 = performance.now();
      await addPeopleOf(tx, ids);
      ms.people += performance.now() - t0;
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
}
const per = (t: number) =>
  `${(t / batches).toFixed(1)} ms/batch (${((t / batches / size) * 1000).toFixed(0)} µs/event)`;
console.log(
  `${batches} batches of ${size} events: keys ${per(ms.keys)}; counts ${per(ms.counts)}; values ${per(ms.values)}; people ${per(ms.people)}`,
);
await sql.end();
