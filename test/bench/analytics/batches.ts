import postgres from 'postgres';
import type { Transaction } from '../../../server/src/db/index.ts';

// What the benches of the measure job's cost per batch share (period-people-cost.ts, trait-cost.ts): the
// database and the batches from the command line, batches of attached events as the pipeline sends them,
// and cases run in a transaction that is rolled back, so the database is left as it was.

/**
 * The bench database (DATABASE_URL, one connection), the number of batches (argv[2]) and their size (argv[3]).
 *
 * @example
 * const { sql, batches, size } = batchBench({ batches: 10, size: 1000 });
 */
export function batchBench(defaults: { batches: number; size: number }) {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL: a bench:analytics database');
  const batches = Number(process.argv[2] ?? defaults.batches);
  const size = Number(process.argv[3] ?? defaults.size);
  return { sql: postgres(url, { max: 1, onnotice: () => {} }), batches, size };
}

class Rollback extends Error {}

/**
 * Runs `fn` in a transaction that is rolled back.
 *
 * @example
 * await rolledBack(sql, async (tx) => { await addPeopleOf(tx, ids); });
 */
export async function rolledBack(sql: postgres.Sql, fn: (tx: Transaction) => Promise<void>): Promise<void> {
  try {
    await sql.begin(async (raw) => {
      await fn(raw as unknown as Transaction);
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
}

/**
 * A batch as the pipeline sends one: `size` attached events together (consecutive in time, a day apart
 * per batch `b`), before the last event's time `end`.
 *
 * @example
 * const end = await lastEventAt(sql);
 * const ids = await batchIds(sql, end, 0, 1000);
 */
export async function batchIds(sql: postgres.Sql, end: Date, b: number, size: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    SELECT id::text AS id FROM events
    WHERE profile_id IS NOT NULL AND timestamp > ${end}::timestamptz - make_interval(days => ${2 + b})
    ORDER BY timestamp LIMIT ${size}`;
  return rows.map((r) => r.id);
}

/**
 * The time of the database's last event (batches are taken back from it).
 *
 * @example
 * const end = await lastEventAt(sql);
 */
export async function lastEventAt(sql: postgres.Sql): Promise<Date> {
  const [{ end }] = (await sql`SELECT max(timestamp) AS end FROM events`) as unknown as [{ end: Date }];
  return end;
}

/**
 * A total time as per batch and per event, the per-event time to `digits` decimals.
 *
 * @example
 * perBatch(1234.5, { batches: 10, size: 1000 }, 1); // '123.5 ms/batch (123.5 µs/event)'
 */
export const perBatch = (t: number, run: { batches: number; size: number }, digits: number) =>
  `${(t / run.batches).toFixed(1)} ms/batch (${((t / run.batches / run.size) * 1000).toFixed(digits)} µs/event)`;
