import type { PgBoss } from 'pg-boss';
import { bossExecutor, type Transaction } from '../db/index.ts';
import { type Facts, SUBSCRIPTIONS, type Topic } from '../pipeline/topics.ts';

/**
 * Hands a fact over to every queue subscribed to its topic, inside the producer's transaction: the
 * jobs commit with what made the fact true, or neither does. A process that dies after the commit has
 * already handed it over; one that dies before leaves nothing to hand over. The type takes only a
 * transaction (`sql.begin`'s), never the pool: a hand-off after the commit does not compile.
 */
export type HandOff = <T extends Topic>(tx: Transaction, topic: T, payload: Facts[T]) => Promise<void>;

/**
 * The one way stages hand work to each other (pipeline/topics.ts says who hears of what).
 *
 * @example
 * const handOff = createHandOff(boss);
 * await sql.begin(async (tx) => {
 *   const ids = await insertEvents(tx, rows);
 *   await handOff(tx, 'events.stored', { ids });
 * });
 */
export function createHandOff(boss: PgBoss): HandOff {
  return async function handOff(tx, topic, payload) {
    const db = bossExecutor(tx);
    // One job per subscriber; the payload keeps its fields at the top (`data->'ids'` in SQL) beside the topic.
    for (const queue of SUBSCRIPTIONS[topic]) await boss.send(queue, { ...payload, topic }, { db });
  };
}

/**
 * Hands over a list of event ids in facts of at most `size` ids each (a job stays small enough for one
 * consumer call, and a retry redoes little).
 *
 * @example
 * await handOffIds(handOff, tx, 'memberships.changed', eventIds);
 */
export async function handOffIds(
  handOff: HandOff,
  tx: Transaction,
  topic: 'memberships.changed' | 'events.stored',
  ids: readonly string[],
  size = 1000,
): Promise<void> {
  for (let i = 0; i < ids.length; i += size) await handOff(tx, topic, { ids: ids.slice(i, i + size) });
}
