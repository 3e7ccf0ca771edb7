import type { Sql } from '../../db/index.ts';
import { type TransactionSql, withRetry } from '../../infra/transaction.ts';

// Two import chunks in flight on two connections, committed in file order. A resumed import skips the
// lines up to the last committed one, so chunk n may commit only after chunk n-1 has: it does its
// writes meanwhile and waits, before its progress update and its commit, for its predecessor.
//
// That wait happens in this process, where Postgres's deadlock detector cannot see it; so it must
// never close a cycle. Chunk n starts locking only once chunk n-1 holds all its locks (identities,
// then their profiles), and after its lock phase a chunk waits on no lock (every writer of an
// identity, its profile, its events and its row hash holds the identity's lock first). So n-1 never
// waits for n. When an attempt of n-1 fails (a deadlock with the live pipeline, say), n gives up its
// locks too, since n-1's next attempt may need them, and starts again after n-1's next lock phase.

interface Attempt {
  locked: Promise<void>;
  lock: () => void;
  /** true once committed; false when this attempt failed. */
  ended: Promise<boolean>;
  end: (committed: boolean) => void;
}

function newAttempt(): Attempt {
  let lock!: () => void;
  let end!: (committed: boolean) => void;
  const locked = new Promise<void>((r) => {
    lock = r;
  });
  const ended = new Promise<boolean>((r) => {
    end = r;
  });
  return { locked, lock, ended, end };
}

/** A chunk's place in the commit order. */
export interface Turn {
  attempt: Attempt;
  committed: boolean;
  failed: unknown;
}

/** What a chunk's transaction calls at its two points of order. */
export interface TurnHooks {
  /** The chunk holds every lock it needs: the next chunk may start locking. */
  locked(): void;
  /** Resolves once the previous chunk has committed; throws if it failed (this one must roll back). */
  predecessorCommitted(): Promise<void>;
}

/** The predecessor's attempt failed: roll back, and run again after its next attempt locked. */
class PredecessorRetried extends Error {
  constructor() {
    super('the previous import chunk is run again; this one follows it');
  }
}

/**
 * A new turn, for one chunk.
 *
 * @example
 * const turn = createTurn();
 */
export function createTurn(): Turn {
  return { attempt: newAttempt(), committed: false, failed: undefined };
}

// The predecessor's current attempt, once it holds its locks (null: it has committed).
async function predecessorLocked(prev: Turn | null): Promise<Attempt | null> {
  for (;;) {
    if (!prev || prev.committed) return null;
    if (prev.failed !== undefined) throw new Error('the previous import chunk failed', { cause: prev.failed });
    const a = prev.attempt;
    const locked = await Promise.race([a.locked.then(() => true), a.ended]);
    if (locked) return a;
    // That attempt failed before locking: wait for the next one (or the final failure).
  }
}

/**
 * Runs one chunk's transaction in its turn after `prev` (null for the first chunk), retrying it on a
 * deadlock or serialization failure and when the predecessor's attempt failed. `body` must call
 * `hooks.locked()` after its lock phase and await `hooks.predecessorCommitted()` before it writes
 * anything the commit order matters for (the committed line).
 *
 * @example
 * await inTurn(sql, prev, turn, async (tx, hooks) => { await lock(tx); hooks.locked(); ...; await hooks.predecessorCommitted(); });
 */
export async function inTurn<T>(
  sql: Sql,
  prev: Turn | null,
  me: Turn,
  body: (tx: TransactionSql, hooks: TurnHooks) => Promise<T>,
): Promise<T> {
  try {
    const out = await withRetry(
      async () => {
        // Outside the transaction: no connection is held while waiting.
        const before = await predecessorLocked(prev);
        const hooks: TurnHooks = {
          locked: () => me.attempt.lock(),
          predecessorCommitted: async () => {
            if (!before || (await before.ended)) return;
            if (prev!.failed !== undefined) {
              throw new Error('the previous import chunk failed', { cause: prev!.failed });
            }
            throw new PredecessorRetried();
          },
        };
        try {
          return (await sql.begin((tx) => body(tx, hooks))) as T;
        } catch (err) {
          const a = me.attempt;
          me.attempt = newAttempt();
          a.lock();
          a.end(false);
          throw err;
        }
      },
      { attempts: 6, retryIf: (err) => err instanceof PredecessorRetried },
    );
    me.committed = true;
    me.attempt.lock();
    me.attempt.end(true);
    return out;
  } catch (err) {
    me.failed = err;
    me.attempt.lock();
    me.attempt.end(false);
    throw err;
  }
}
