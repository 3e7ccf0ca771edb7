import type { Fragment } from '@cairn/core';
import postgres from 'postgres';
import { CONNECT_TIMEOUT_SECONDS, reconnectDelay, type Sql } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';

/** Where an answer was read, and how far behind the primary that was. */
export interface ReadMeta {
  /** `primary`: the main database; `replica`: CAIRN_ANALYTICS_DATABASE_URL. */
  source: 'primary' | 'replica';
  /** Seconds since the last transaction the replica replayed (0 on the primary; null when unknown). */
  lagSeconds: number | null;
}

/** Runs analytics statements read-only, under a statement timeout, cancellable; see {@link createAnalyticsReader}. */
export interface AnalyticsReader {
  /**
   * Runs one statement built by the core query builders and returns its rows. `signal` (the request's)
   * cancels it in Postgres when the client goes away. A statement past the timeout is a 422
   * `query_too_broad` that says what to narrow.
   */
  rows<T extends object>(query: Fragment, signal?: AbortSignal): Promise<T[]>;
  /**
   * Runs one statement and yields its rows in batches of `batchRows` through a cursor, so a pass over
   * many rows never holds them all (Postgres). Same timeout (the whole read, from first to last batch,
   * is one statement), cancel and 422 as {@link AnalyticsReader.rows}; leaving the loop early closes
   * the cursor. Embedded PGlite has one session: there the rows are read whole, then yielded in batches.
   */
  stream<T extends object>(query: Fragment, signal?: AbortSignal, batchRows?: number): AsyncIterable<T[]>;
  /** Where the next answer comes from and the replica's lag (read once per call; cheap). */
  meta(): Promise<ReadMeta>;
  close(): Promise<void>;
}

/**
 * The analytics connection. On Postgres: a small pool of its own (never the pipeline's connections),
 * every session read-only (`default_transaction_read_only`) with `statement_timeout` set, on
 * `CAIRN_ANALYTICS_DATABASE_URL` when set (a streaming replica), else on `DATABASE_URL`. Embedded
 * PGlite has one session: each statement runs in a `READ ONLY` transaction on the shared connection.
 * PGlite runs in this thread and honours neither `statement_timeout` nor cancel requests (measured:
 * `pg_sleep(5)` under a 300 ms timeout ran 5 s), so on the embedded database nothing bounds a query:
 * a limit of the embedded start, which is for trials and small sites.
 *
 * @example
 * const reader = createAnalyticsReader({ sql, dbKind: 'postgres', databaseUrl, timeoutMs: 20_000 });
 * const rows = await reader.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM events`, c.req.raw.signal);
 */
export function createAnalyticsReader(options: {
  sql: Sql;
  dbKind: 'postgres' | 'embedded';
  /** The main database's URL (Postgres), or undefined when embedded. */
  databaseUrl: string | undefined;
  /** A replica's URL (CAIRN_ANALYTICS_DATABASE_URL). */
  replicaUrl: string | undefined;
  timeoutMs: number;
  /** Connections of the analytics pool (default 3). */
  max?: number;
}): AnalyticsReader {
  const { timeoutMs } = options;
  const url = options.replicaUrl ?? options.databaseUrl;
  const source: ReadMeta['source'] = options.replicaUrl ? 'replica' : 'primary';
  const pool =
    options.dbKind === 'postgres' && url
      ? (postgres(url, {
          onnotice: () => {},
          max: options.max ?? 3,
          idle_timeout: 60,
          connect_timeout: CONNECT_TIMEOUT_SECONDS,
          backoff: reconnectDelay,
          connection: {
            application_name: 'cairn-analytics',
            default_transaction_read_only: true,
            statement_timeout: timeoutMs,
            // JIT compiles each big statement anew: measured 5.3 s of a 15 s retention query on 10M events.
            jit: false,
          },
        }) as unknown as Sql)
      : undefined;

  const tooBroad = () =>
    apiError(
      422,
      'query_too_broad',
      `the query ran longer than ${timeoutMs} ms (CAIRN_ANALYTICS_TIMEOUT_MS) and was cancelled: narrow the date range, the events or the breakdown`,
    );

  async function run<T extends object>(query: Fragment, signal?: AbortSignal): Promise<T[]> {
    const { text, values } = query.render();
    signal?.throwIfAborted();
    try {
      if (pool) {
        const pending = pool.unsafe(text, values as never[]);
        const cancel = () => void pending.cancel();
        signal?.addEventListener('abort', cancel, { once: true });
        try {
          return (await pending) as unknown as T[];
        } finally {
          signal?.removeEventListener('abort', cancel);
        }
      }
      return (await options.sql.begin('READ ONLY', (tx) => tx.unsafe(text, values as never[]))) as unknown as T[];
    } catch (err) {
      throw failure(err, signal);
    }
  }

  // 57014: query_canceled — by the statement timeout, or by the client that went away.
  function failure(err: unknown, signal?: AbortSignal): unknown {
    if ((err as { code?: string }).code !== '57014') return err;
    if (signal?.aborted) return apiError(499 as never, 'client_closed', 'the client closed the request');
    return tooBroad();
  }

  async function* stream<T extends object>(query: Fragment, signal?: AbortSignal, batchRows = 2_000) {
    if (!pool) {
      const rows = await run<T>(query, signal);
      for (let i = 0; i < rows.length; i += batchRows) yield rows.slice(i, i + batchRows);
      return;
    }
    const { text, values } = query.render();
    signal?.throwIfAborted();
    const pending = pool.unsafe(text, values as never[]);
    const cancel = () => void pending.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const rows of pending.cursor(batchRows)) yield rows as unknown as T[];
    } catch (err) {
      throw failure(err, signal);
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  return {
    rows: run,
    stream,
    async meta() {
      if (source === 'primary') return { source, lagSeconds: 0 };
      const [row] = await pool!<{ lag: number | null }[]>`
        SELECT CASE WHEN pg_is_in_recovery()
          THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 ELSE 0 END AS lag`;
      return { source, lagSeconds: row?.lag ?? null };
    },
    async close() {
      await pool?.end({ timeout: 5 });
    },
  };
}
