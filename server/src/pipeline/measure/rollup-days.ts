import type { Sql, Tx } from '../../db/index.ts';
import { retentionHorizon } from '../../jobs/retention-queries.ts';
import { lockKey } from '../identify/locks.ts';

// What the per-day rollups kept per person (people per day, 0042; trait breakdowns, 0044) do alike: every
// writer holds its people's locks of the rollup's class, appends deltas to per-day rows and now and then
// folds the busy days; an entry is kept by filling it under the registry's EXCLUSIVE lock; retention
// forgets the days before the horizon. Each rollup keeps its own SQL; only these steps are shared.

/**
 * Takes the people's locks of a rollup's advisory lock class, sorted and blocking (after the profiles'
 * identify locks, by every writer of that rollup).
 *
 * @example
 * await lockPeople(tx, 44, ['0192…', '0193…']);
 */
export async function lockPeople(tx: Tx, lockClass: number, people: readonly string[]): Promise<void> {
  if (!people.length) return;
  const sorted = [...new Set(people.map(lockKey))].sort((a, b) => a - b);
  await tx`SELECT pg_advisory_xact_lock(${lockClass}::int, k) FROM unnest(${sorted}::int[]) AS k`;
}

/**
 * One write in `every` (at random) folds the days it just wrote deltas to, each day once (`dayOf` names
 * a day); the others return at once. A day gains a few rows a write, so folding stays well ahead.
 *
 * @example
 * await sometimesFold(written, 8, (w) => `${w.r}\n${w.d}`, (days) => foldTraitDays(tx, days, 64));
 */
export async function sometimesFold<D>(
  written: readonly D[],
  every: number,
  dayOf: (d: D) => string,
  fold: (days: D[]) => Promise<number>,
): Promise<void> {
  if (!written.length || Math.random() * every >= 1) return;
  await fold([...new Map(written.map((w) => [dayOf(w), w])).values()]);
}

/**
 * Folds each busy day that no other transaction is folding: `fold` runs under the day's try-lock (of
 * `lockClass`, keyed by the hash of `dayOf`). Returns the days folded.
 *
 * @example
 * await foldUnlessBusy(tx, busy, 45, (d) => `${d.r}|${d.d}`, (d) => tx`...`); // 12
 */
export async function foldUnlessBusy<D>(
  tx: Tx,
  busy: readonly D[],
  lockClass: number,
  dayOf: (d: D) => string,
  fold: (d: D) => Promise<unknown>,
): Promise<number> {
  let folded = 0;
  for (const d of busy) {
    const [got] = await tx<{ ok: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(${lockClass}::int, hashtext(${dayOf(d)})) AS ok`;
    if (!got?.ok) continue;
    await fold(d);
    folded++;
  }
  return folded;
}

/**
 * Keeps an entry of a rollup's registry from now on, in one transaction: `lock` takes the registry
 * EXCLUSIVE (the pipeline's writers of its rows wait for it), `add` records the entry (null when it was
 * kept already: nothing is filled) and `fill` counts its rows from the attached events. Returns whether it
 * was new, the rows filled and the time taken.
 *
 * @example
 * await keepEntry(sql, { lock: (tx) => tx`LOCK TABLE ... IN EXCLUSIVE MODE`, add, fill }); // { added: true, rows: 812, ms: 90 }
 */
export async function keepEntry<K>(
  sql: Sql,
  steps: {
    lock: (tx: Tx) => Promise<unknown>;
    add: (tx: Tx) => Promise<K | null>;
    fill: (tx: Tx, added: K) => Promise<number>;
  },
): Promise<{ added: boolean; rows: number; ms: number }> {
  const started = performance.now();
  return sql.begin(async (tx) => {
    await steps.lock(tx);
    const added = await steps.add(tx);
    if (added === null) return { added: false, rows: 0, ms: Math.round(performance.now() - started) };
    const rows = await steps.fill(tx, added);
    return { added: true, rows, ms: Math.round(performance.now() - started) };
  });
}

/**
 * The first day a rollup kept per local day keeps once retention dropped events (two days before the
 * horizon: every zone is within a day of UTC), or null while nothing was dropped. Rows of earlier days go.
 *
 * @example
 * const before = await firstKeptDay(sql); // '2027-01-31', or null
 */
export async function firstKeptDay(sql: Tx): Promise<string | null> {
  const horizon = await retentionHorizon(sql);
  if (!horizon) return null;
  return new Date(horizon.getTime() - 2 * 86_400_000).toISOString().slice(0, 10);
}
