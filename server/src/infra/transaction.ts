import type postgres from 'postgres';
import type { Sql } from '../db/index.ts';

/** A transaction's `sql`, as `sql.begin` hands it to its callback. */
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;

/** Deadlock detected, serialization failure: the transaction was aborted and would succeed if run again. */
const TRANSIENT_CODES = new Set(['40P01', '40001']);

/** How often a transaction is tried before its last error is thrown. */
export const DEFAULT_ATTEMPTS = 3;
// Backoff before attempt n: a random wait in [0, n × BACKOFF_STEP_MS) ms. Random, so two transactions
// that deadlocked on each other do not collide again; small, because the locks are usually free by
// the time the aborted one has rolled back.
const BACKOFF_STEP_MS = 5;

/**
 * Whether Postgres aborted the statement for a reason that running the transaction again cures:
 * deadlock (40P01) or serialization failure (40001).
 *
 * @example
 * if (isTransientError(err)) retry();
 */
export function isTransientError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

/** Options of {@link retryTransaction} and {@link withRetry}. */
export interface RetryOptions {
  /** Tries in all, the first included (default {@link DEFAULT_ATTEMPTS}). */
  attempts?: number;
  /**
   * A condition of the caller's own that makes an error worth another try (the identify stage restarts
   * with more locks when a component grew while it was locking). It may record what the next try needs.
   * Deadlocks and serialization failures are always retried.
   */
  retryIf?: (err: unknown, attempt: number) => boolean;
  /** Called before each new try, with the error that ended the previous one (for metrics and logs). */
  onRetry?: (err: unknown, attempt: number) => void;
  /** Backoff step in ms (default 5): the wait before try n is random in [0, n × step). 0 = none. */
  backoffMs?: number;
}

/**
 * Runs `fn` again while it fails with a transient error (or one `retryIf` accepts), up to `attempts`
 * tries, with a small jittered backoff; the last error is thrown. `fn` must be safe to run again: a
 * whole transaction, not a statement inside one (see {@link retryTransaction}).
 *
 * @example
 * const rows = await withRetry(() => sql.begin((tx) => insertEvents(tx, batch)), { attempts: 3 });
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  const step = options.backoffMs ?? BACKOFF_STEP_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts) throw err;
      // retryIf runs first: it may record what the next try needs even for a transient error.
      const own = options.retryIf?.(err, attempt) ?? false;
      if (!own && !isTransientError(err)) throw err;
      options.onRetry?.(err, attempt);
      if (step > 0) await new Promise((r) => setTimeout(r, Math.random() * step * attempt));
    }
  }
}

/**
 * Runs `fn` in a transaction, and the whole transaction again when it is aborted by a deadlock or a
 * serialization failure (or an error `retryIf` accepts): the one retry loop of the pipeline.
 *
 * @example
 * const n = await retryTransaction(sql, async (tx) => (await tx`UPDATE t SET n = n + 1`).count, {
 *   attempts: 5,
 *   onRetry: () => metrics.identifyRetries.inc(),
 * });
 */
export async function retryTransaction<T>(
  sql: Sql,
  fn: (tx: TransactionSql, attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  // postgres.js types begin's result as an unwrapped array type; `fn` returns T itself.
  return withRetry((attempt) => sql.begin((tx) => fn(tx, attempt)) as Promise<T>, options);
}
