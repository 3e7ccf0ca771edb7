import { DEFAULTS } from '../../config.ts';
import { isDataError, type Sql } from '../../db/index.ts';
import { withRetry } from '../../infra/transaction.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { createBatcher } from './batcher.ts';
import type { EventRow } from './enrich.ts';
import { insertEventsHandingOff } from './queries.ts';

/** How one request's events fared in the group commit that carried them. */
export interface WriteResult {
  inserted: number;
  duplicates: number;
}

/** Durable, deduplicating event writes with group commit. */
export interface EventWriter {
  /** Resolves once the rows are committed (and their hand-off job with them). */
  write(rows: EventRow[]): Promise<WriteResult>;
  pending(): number;
  drain(): Promise<void>;
}

/**
 * Creates the event writer: requests submit their rows, concurrent requests share one statement (its own
 * transaction) that inserts the rows (duplicates skipped by the (source, messageId) key) and hands the new
 * ones over as one `events.stored` fact. A request's promise resolves only after that commit.
 *
 * @example
 * const writer = createEventWriter({ sql, metrics, log, maxRows: 2000, concurrency: 4 });
 * const { inserted, duplicates } = await writer.write(rows);
 */
export function createEventWriter(deps: {
  sql: Sql;
  metrics: Metrics;
  log: Logger;
  maxRows: number;
  concurrency: number;
}): EventWriter {
  const { sql, metrics } = deps;

  async function commit(requests: EventRow[][]): Promise<WriteResult[]> {
    // Arrival order, not key order: ids then follow arrival (the live view and consumers read by id).
    // Duplicates racing in opposite orders can deadlock; withRetry re-runs the loser.
    const rows = requests.flat();
    const stop = metrics.commitDuration.startTimer();
    // One statement stores the rows and hands the new ones over: atomic without BEGIN and COMMIT, so the
    // group commit is one round trip, not four (BEGIN, INSERT, the job's INSERT, COMMIT), each a socket write
    // in which the event loop stalls (issue 16's profile).
    const inserted = await insertEventsHandingOff(sql, rows);
    stop();
    metrics.commitGroupSize.observe(rows.length);
    const fresh = new Set(inserted.map((r) => `${r.sourceId}\n${r.messageId}`));
    return requests.map((reqRows) => {
      let n = 0;
      for (const r of reqRows) if (fresh.delete(`${r.sourceId}\n${r.messageId}`)) n++;
      return { inserted: n, duplicates: reqRows.length - n };
    });
  }

  async function write(requests: EventRow[][]): Promise<Array<WriteResult | Error>> {
    try {
      // A deadlock or serialization failure aborts a group commit that would succeed if run again: a few
      // tries before the clients are told 503.
      return await withRetry(() => commit(requests), { attempts: 3 });
    } catch (err) {
      // One request's rows could not be stored: retry request by request so it cannot fail the others.
      if (requests.length === 1 || !isDataError(err)) throw err;
      deps.log.error(`group commit of ${requests.length} requests failed; retrying one by one`, err);
      const outs: Array<WriteResult | Error> = [];
      for (const r of requests)
        outs.push(
          await commit([r]).then(
            (o) => o[0]!,
            (e: Error) => e,
          ),
        );
      return outs;
    }
  }

  const batcher = createBatcher<EventRow[], WriteResult | Error>({
    write,
    weight: (rows) => rows.length,
    maxWeight: deps.maxRows,
    concurrency: deps.concurrency,
    parallelWeight: Math.min(DEFAULTS.commitParallelRows, deps.maxRows),
  });

  return {
    async write(rows) {
      if (rows.length === 0) return { inserted: 0, duplicates: 0 };
      const out = await batcher.submit(rows);
      if (out instanceof Error) throw out;
      return out;
    },
    pending: batcher.pending,
    drain: batcher.drain,
  };
}
