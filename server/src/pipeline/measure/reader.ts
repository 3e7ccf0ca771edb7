import type { Fragment } from '@cairn/core';
import type { Sql } from '../../db/index.ts';
import {
  createReadRouter,
  isReplicaFailure,
  openReadPool,
  type ReadRoute,
  type ReadSql,
  type ReplicaStatus,
} from '../../db/replica.ts';
import { apiError } from '../../http/errors.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../observability/metrics.ts';

/** Where an answer was read, and how far behind the primary that was. */
export interface ReadMeta {
  /** `primary`: the main database; `replica`: CAIRN_ANALYTICS_DATABASE_URL. */
  source: 'primary' | 'replica';
  /** Seconds the replica's data was behind the primary (0 on the primary; null when unknown). */
  lagSeconds: number | null;
  /** The newest instant the data read is complete to (ISO-8601): now on the primary. */
  dataAsOf: string;
  /** Why a configured replica was not read: down, or further behind than CAIRN_ANALYTICS_MAX_LAG_S. */
  fallback: 'replica_down' | 'replica_lagging' | null;
}

/** The reads of one answer; see {@link AnalyticsReader.pin}. */
export type PinnedReader = Pick<AnalyticsReader, 'rows' | 'stream' | 'meta'>;

/** The default of CAIRN_ANALYTICS_MAX_LAG_S: a replica further behind is not read. */
export const DEFAULT_MAX_LAG_SECONDS = 30;

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
  /** Where the next answer comes from and the replica's lag (a probe at most every second; cheap). */
  meta(): Promise<ReadMeta>;
  /**
   * One answer's reads: every statement run through it goes where the first one went (the replica, or the
   * primary and why), so an answer of several statements never mixes the two, and its `meta()` says where
   * its rows were read — not where the next answer would go (a probe between the two could disagree: the
   * replica read, then found behind, was reported as a primary answer). A replica that fails mid-answer
   * sends the rest of it to the primary, and the meta says `replica_down`.
   */
  pin(): PinnedReader;
  /**
   * Runs a console read (a lag-tolerant page: recent profiles, the event list, member counts) on the
   * replica when analytics would read there, else on the main pool; a replica that fails is replaced by
   * the main pool for this read and the next few seconds. `fn` gets a {@link ReadSql}: write helpers refuse it.
   */
  read<T>(fn: (sql: ReadSql) => Promise<T>): Promise<{ value: T; meta: ReadMeta }>;
  /** The replica's last probe (null: none configured, or not probed yet). */
  replicaStatus(): ReplicaStatus | null;
  close(): Promise<void>;
}

/**
 * The analytics connection. On Postgres: a small pool of its own (never the pipeline's connections),
 * every session read-only (`default_transaction_read_only`) with `statement_timeout` set. With
 * `CAIRN_ANALYTICS_DATABASE_URL` (a streaming replica) a second such pool reads there while the replica is
 * up and at most `maxLagSeconds` behind, else the primary's answers (db/replica.ts; answers say which). Embedded
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
  /** Connections of the analytics pool, and of the replica's (default 3 each). */
  max?: number;
  /** A replica further behind than this is not read (default {@link DEFAULT_MAX_LAG_SECONDS}). */
  maxLagSeconds?: number;
  /** The replica gauges and read counter of /metrics. */
  metrics?: Pick<Metrics, 'replicaUp' | 'replicaLag' | 'replicaLagBytes' | 'analyticsReads' | 'collectReplica'>;
  /** Where a replica's changes of state are logged (down, behind, back). */
  log?: Logger;
  /** Decides when a replica probe is stale (ms; default the system clock): tests hold it still. */
  clock?: () => number;
}): AnalyticsReader {
  const { timeoutMs } = options;
  if (options.replicaUrl && options.dbKind === 'embedded')
    throw new Error('CAIRN_ANALYTICS_DATABASE_URL needs DATABASE_URL: the embedded database (PGlite) has no replica');
  const max = options.max ?? 3;
  // The primary's read-only pool answers analytics without a replica, and when the replica is down or behind.
  const pool =
    options.dbKind === 'postgres' && options.databaseUrl
      ? openReadPool(options.databaseUrl, { name: 'cairn-analytics', max, timeoutMs })
      : undefined;
  const replica =
    pool && options.replicaUrl
      ? openReadPool(options.replicaUrl, { name: 'cairn-analytics-replica', max, timeoutMs })
      : undefined;
  const m = options.metrics;
  const replicaLabel = { replica: options.replicaUrl ? replicaName(options.replicaUrl) : '' };
  const router = createReadRouter({
    replica,
    primary: pool,
    maxLagSeconds: options.maxLagSeconds ?? DEFAULT_MAX_LAG_SECONDS,
    log: options.log,
    now: options.clock,
    onStatus(s) {
      if (!m) return;
      m.replicaUp.set(replicaLabel, s.up ? 1 : 0);
      if (s.lagSeconds === null) m.replicaLag.remove(replicaLabel);
      else m.replicaLag.set(replicaLabel, s.lagSeconds);
      if (s.lagBytes === null) m.replicaLagBytes.remove(replicaLabel);
      else m.replicaLagBytes.set(replicaLabel, s.lagBytes);
    },
  });
  // Each scrape of /metrics probes the replica (at most once a second), so its lag shows without queries.
  const detach = replica && m ? m.collectReplica(() => router.route().then(() => {})) : undefined;
  const metaOf = (r: ReadRoute): ReadMeta => ({
    source: r.source,
    lagSeconds: r.lagSeconds,
    dataAsOf: r.dataAsOf.toISOString(),
    fallback: r.fallback,
  });

  const tooBroad = () =>
    apiError(
      422,
      'query_too_broad',
      `the query ran longer than ${timeoutMs} ms (CAIRN_ANALYTICS_TIMEOUT_MS) and was cancelled: narrow the date range, the events or the breakdown`,
    );

  function exec<T>(target: Sql, text: string, values: unknown[], signal?: AbortSignal): Promise<T[]> {
    const pending = target.unsafe(text, values as never[]);
    const cancel = () => void pending.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    return (pending as unknown as Promise<T[]>).finally(() => signal?.removeEventListener('abort', cancel));
  }

  /** Where one answer's statements go: decided by its first, changed only when the replica fails under it. */
  interface Pin {
    route?: Promise<ReadRoute>;
  }
  const routeOf = (pin: Pin): Promise<ReadRoute> => {
    pin.route ??= router.route();
    return pin.route;
  };
  // The replica failed under this answer: the router reads the primary for a few seconds, this answer for its rest.
  const fellBack = (pin: Pin, err: unknown) => {
    router.markDown(err);
    pin.route = Promise.resolve({ source: 'primary', lagSeconds: 0, dataAsOf: new Date(), fallback: 'replica_down' });
  };

  async function run<T extends object>(pin: Pin, query: Fragment, signal?: AbortSignal): Promise<T[]> {
    const { text, values } = query.render();
    signal?.throwIfAborted();
    try {
      if (!pool) {
        return (await options.sql.begin('READ ONLY', (tx) => tx.unsafe(text, values as never[]))) as unknown as T[];
      }
      const r = await routeOf(pin);
      m?.analyticsReads.inc({ source: r.source });
      if (r.source === 'replica' && replica) {
        try {
          return await exec<T>(replica, text, values, signal);
        } catch (err) {
          if (signal?.aborted || !isReplicaFailure(err)) throw err;
          // The replica went away mid-answer: the primary answers this one (and the next few seconds').
          fellBack(pin, err);
          m?.analyticsReads.inc({ source: 'primary' });
        }
      }
      return await exec<T>(pool, text, values, signal);
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

  async function* stream<T extends object>(pin: Pin, query: Fragment, signal?: AbortSignal, batchRows = 2_000) {
    if (!pool) {
      const rows = await run<T>(pin, query, signal);
      for (let i = 0; i < rows.length; i += batchRows) yield rows.slice(i, i + batchRows);
      return;
    }
    const { text, values } = query.render();
    signal?.throwIfAborted();
    const r = await routeOf(pin);
    let target = r.source === 'replica' && replica ? replica : pool;
    m?.analyticsReads.inc({ source: r.source });
    for (;;) {
      const pending = target.unsafe(text, values as never[]);
      const cancel = () => void pending.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
      let yielded = false;
      try {
        for await (const rows of pending.cursor(batchRows)) {
          yielded = true;
          yield rows as unknown as T[];
        }
        return;
      } catch (err) {
        // Before its first batch a failed replica read starts again on the primary; after, rows were given out.
        if (target === replica && !yielded && !signal?.aborted && isReplicaFailure(err)) {
          fellBack(pin, err);
          m?.analyticsReads.inc({ source: 'primary' });
          target = pool;
          continue;
        }
        throw failure(err, signal);
      } finally {
        signal?.removeEventListener('abort', cancel);
      }
    }
  }

  return {
    rows: (query, signal) => run({}, query, signal),
    stream: (query, signal, batchRows) => stream({}, query, signal, batchRows),
    meta: async () => metaOf(await router.route()),
    pin() {
      const pin: Pin = {};
      return {
        rows: (query, signal) => run(pin, query, signal),
        stream: (query, signal, batchRows) => stream(pin, query, signal, batchRows),
        meta: async () => metaOf(await routeOf(pin)),
      };
    },
    async read(fn) {
      // The meta is the route this read took (a second probe after it could say otherwise).
      const pin: Pin = {};
      const r = await routeOf(pin);
      if (replica && r.source === 'replica') {
        try {
          return { value: await fn(replica), meta: metaOf(r) };
        } catch (err) {
          if (!isReplicaFailure(err)) throw err;
          fellBack(pin, err);
        }
      }
      return { value: await fn(options.sql), meta: metaOf(await routeOf(pin)) };
    },
    replicaStatus: () => router.status(),
    async close() {
      detach?.();
      await Promise.all([pool?.end({ timeout: 5 }), replica?.end({ timeout: 5 })]);
    },
  };
}

// The replica as /metrics names it: host and port, never the URL's credentials.
function replicaName(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

/**
 * The response headers of a lag-tolerant console read (the body keeps its shape): where it was read, the
 * replica's lag, and what the data is complete to.
 *
 * @example
 * const { value, meta } = await reader.read((s) => listEvents(s, q));
 * for (const [k, v] of Object.entries(readHeaders(meta))) c.header(k, v);
 */
export function readHeaders(meta: ReadMeta): Record<string, string> {
  return {
    'Cairn-Read-Source': meta.source,
    'Cairn-Replica-Lag': meta.lagSeconds === null ? 'unknown' : meta.lagSeconds.toFixed(3),
    'Cairn-Data-As-Of': meta.dataAsOf,
    ...(meta.fallback ? { 'Cairn-Read-Fallback': meta.fallback } : {}),
  };
}
