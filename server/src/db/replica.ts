import postgres from 'postgres';
import type { Logger } from '../log.ts';
import { CONNECT_TIMEOUT_SECONDS, reconnectDelay, type Sql } from './index.ts';

/**
 * A handle that only reads: postgres.js's tagged template and nothing else. A pool's or a transaction's
 * `sql` fits it (read queries take it first, so they run on the primary or a replica alike), but it is
 * not a {@link Sql}, `Tx` or `Transaction`: a write helper, which takes one of those, refuses it at compile
 * time. The replica's handle is only ever given out as this type, and its sessions are opened
 * `default_transaction_read_only` besides, so a write that got there anyway fails in Postgres.
 *
 * @example
 * export async function listEvents(sql: ReadSql, filter: EventFilter) { return sql`SELECT ...`; }
 */
export type ReadSql = <T extends readonly (object | undefined)[] = postgres.Row[]>(
  template: TemplateStringsArray,
  ...parameters: readonly postgres.ParameterOrFragment<never>[]
) => postgres.PendingQuery<T>;

/**
 * Opens a small pool whose every session is read-only (`default_transaction_read_only`) with a statement
 * timeout: the analytics reads, on the primary or on a replica.
 *
 * @example
 * const replica = openReadPool(config.analytics.databaseUrl, { name: 'cairn-replica', max: 3, timeoutMs: 20_000 });
 */
export function openReadPool(url: string, options: { name: string; max: number; timeoutMs: number }): Sql {
  return postgres(url, {
    onnotice: () => {},
    max: options.max,
    idle_timeout: 60,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    backoff: reconnectDelay,
    connection: {
      application_name: options.name,
      default_transaction_read_only: true,
      statement_timeout: options.timeoutMs,
      // JIT compiles each big statement anew: measured 5.3 s of a 15 s retention query on 10M events.
      jit: false,
    },
  }) as unknown as Sql;
}

/** What a probe of the replica found. */
export interface ReplicaStatus {
  up: boolean;
  /** Seconds the replica's data is behind the primary (0: it has replayed all the primary wrote); null: unknown. */
  lagSeconds: number | null;
  /** WAL bytes the replica has still to replay (the primary's current LSN minus the replica's replay LSN). */
  lagBytes: number | null;
  /** The newest instant the replica's data is complete to. */
  dataAsOf: Date | null;
  /**
   * The replica has not replayed every migration the primary has (after an upgrade, or a new database):
   * queries of this version would find tables or columns missing there.
   */
  schemaBehind: boolean;
  /** Why it is down. */
  error?: string;
}

/**
 * Measures the replica's lag. The primary's current WAL position is read first: a replica that has
 * replayed up to it is 0 s behind (also when the primary is idle, where `now() -
 * pg_last_xact_replay_timestamp()` alone would grow forever); otherwise the lag is the time since the last
 * transaction it replayed. Without the primary's position (it is unreachable) the replica's own received
 * WAL stands in for it.
 *
 * @example
 * const { lagSeconds, lagBytes } = await probeReplica(replica, primary);
 */
export async function probeReplica(replica: Sql, primary: Sql | undefined): Promise<ReplicaStatus> {
  const primaryLsn = primary
    ? ((await primary<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`.catch(() => []))[0]?.lsn ?? null)
    : null;
  // The primary's version may be unknown (unreachable); the replica's read must succeed, or the replica is
  // down (a session cut by its shutdown read as "no migrations" made it look behind, not down).
  const [primaryVersion, replicaVersion] = await Promise.all([
    primary ? schemaVersion(primary).catch(() => null) : null,
    schemaVersion(replica),
  ]);
  // On a server that is not in recovery (a copy kept some other way) the pg_last_* functions are null: 0 lag.
  const [row] = await replica<{ lagSeconds: number | null; lagBytes: number | null; dataAsOf: Date | null }[]>`
    WITH r AS (
      SELECT
        pg_is_in_recovery() AS recovering,
        pg_last_wal_replay_lsn() AS replayed,
        coalesce(${primaryLsn}::pg_lsn, pg_last_wal_receive_lsn()) AS target,
        pg_last_xact_replay_timestamp() AS replayed_at
    ), l AS (
      SELECT r.*,
        CASE
          WHEN NOT r.recovering OR r.replayed >= r.target THEN 0
          ELSE extract(epoch FROM now() - r.replayed_at)
        END::float8 AS lag
      FROM r
    )
    SELECT
      GREATEST(lag, 0) AS "lagSeconds",
      CASE WHEN recovering THEN GREATEST(pg_wal_lsn_diff(target, replayed), 0) ELSE 0 END::float8 AS "lagBytes",
      CASE WHEN lag = 0 THEN now() ELSE replayed_at END AS "dataAsOf"
    FROM l`;
  return {
    up: true,
    lagSeconds: row?.lagSeconds ?? null,
    lagBytes: row?.lagBytes ?? null,
    dataAsOf: row?.dataAsOf ?? null,
    schemaBehind: primaryVersion !== null && (replicaVersion ?? -1) < primaryVersion,
  };
}

// The newest migration applied (db/migrate.ts records them), or null when there is no record (yet).
async function schemaVersion(sql: Sql): Promise<number | null> {
  const rows = await sql<{ v: number | null }[]>`SELECT max(version)::int AS v FROM cairn_migrations`.catch((err) => {
    // No table yet (a database the migrations have not reached): no record. Anything else is a failure.
    if ((err as { code?: string }).code === '42P01') return [];
    throw err;
  });
  return rows[0]?.v ?? null;
}

/** Where reads go now, and why. */
export interface ReadRoute {
  source: 'primary' | 'replica';
  /** The replica's lag when reading there; 0 on the primary. */
  lagSeconds: number | null;
  /** The newest instant the answer's data is complete to. */
  dataAsOf: Date;
  /** Why a configured replica is not used: down, or further behind than the bound. */
  fallback: 'replica_down' | 'replica_lagging' | null;
}

/** How long a probe's answer is trusted (each route decision reuses it). */
export const PROBE_MS = 1000;
/** After a replica failed, reads stay on the primary this long before it is tried again. */
export const DOWN_MS = 5000;

/** Decides between the primary and the replica; see {@link createReadRouter}. */
export interface ReadRouter {
  /** Where the next read goes (a probe at most every {@link PROBE_MS}, shared by concurrent callers). */
  route(): Promise<ReadRoute>;
  /** The replica failed a read: reads go to the primary for {@link DOWN_MS}. */
  markDown(err: unknown): void;
  /** The last probe's findings (null: no replica configured or not probed yet). */
  status(): ReplicaStatus | null;
}

/**
 * Routes reads to the replica while it is up and at most `maxLagSeconds` behind, else to the primary
 * (answers say which, and why). Without a replica every route is the primary.
 *
 * @example
 * const router = createReadRouter({ replica, primary, maxLagSeconds: 30, log });
 * const { source, lagSeconds } = await router.route();
 */
export function createReadRouter(options: {
  replica: Sql | undefined;
  /** Where the primary's WAL position is read (any session on the primary). */
  primary: Sql | undefined;
  maxLagSeconds: number;
  log?: Logger;
  /** Called with every probe's findings (the /metrics gauges). */
  onStatus?: (status: ReplicaStatus) => void;
  /** The clock deciding when a probe is stale (tests need none; the system clock). */
  now?: () => number;
}): ReadRouter {
  const { replica, primary, maxLagSeconds, log } = options;
  const now = options.now ?? Date.now;
  let last: ReplicaStatus | null = null;
  let checkedAt = Number.NEGATIVE_INFINITY;
  let downUntil = Number.NEGATIVE_INFINITY;
  let probing: Promise<ReplicaStatus> | undefined;
  let wasUsable: boolean | undefined;
  /** How many reads failed on the replica (markDown); a probe begun before the last one is stale. */
  let marks = 0;

  const record = (status: ReplicaStatus) => {
    last = status;
    checkedAt = now();
    options.onStatus?.(status);
    const usable =
      status.up && !status.schemaBehind && status.lagSeconds !== null && status.lagSeconds <= maxLagSeconds;
    // One line per change, not per read.
    if (usable !== wasUsable) {
      if (usable) log?.info(`analytics replica: reading there (lag ${status.lagSeconds?.toFixed(1)} s)`);
      else if (!status.up) log?.info(`analytics replica: down (${status.error}); reading the primary`);
      else if (status.schemaBehind)
        log?.info('analytics replica: has not replayed the latest migrations yet; reading the primary');
      else
        log?.info(
          `analytics replica: ${status.lagSeconds ?? 'unknown'} s behind (bound ${maxLagSeconds} s, CAIRN_ANALYTICS_MAX_LAG_S); reading the primary`,
        );
      wasUsable = usable;
    }
    return status;
  };

  const down = (err: unknown): ReplicaStatus => ({
    up: false,
    lagSeconds: null,
    lagBytes: null,
    dataAsOf: null,
    schemaBehind: false,
    error: err instanceof Error ? err.message : String(err),
  });

  async function probe(): Promise<ReplicaStatus> {
    if (!replica) throw new Error('no replica');
    if (now() < downUntil) return last?.up === false ? last : down('marked down');
    if (last && now() - checkedAt < PROBE_MS) return last;
    if (!probing) {
      const started = marks;
      probing = probeReplica(replica, primary)
        .catch((err) => {
          downUntil = now() + DOWN_MS;
          return down(err);
        })
        // A read failed on the replica while this probe ran: that failure is the newer finding.
        .then((status) => (marks !== started && last ? last : record(status)))
        .finally(() => {
          probing = undefined;
        });
    }
    return probing;
  }

  return {
    async route() {
      const primaryRoute = (fallback: ReadRoute['fallback']): ReadRoute => ({
        source: 'primary',
        lagSeconds: 0,
        dataAsOf: new Date(),
        fallback,
      });
      if (!replica) return primaryRoute(null);
      const s = await probe();
      if (!s.up) return primaryRoute('replica_down');
      if (s.schemaBehind || s.lagSeconds === null || s.lagSeconds > maxLagSeconds)
        return primaryRoute('replica_lagging');
      return { source: 'replica', lagSeconds: s.lagSeconds, dataAsOf: s.dataAsOf ?? new Date(), fallback: null };
    },
    markDown(err) {
      marks += 1;
      downUntil = now() + DOWN_MS;
      record(down(err));
    },
    status: () => last,
  };
}

/**
 * Whether a failed read on the replica should be answered by the primary instead: the replica is
 * unreachable or going away (connection errors, SQLSTATE classes 08 and 57P), Postgres cancelled the
 * statement for a conflict with recovery (40001 or 40P01 on a standby: a vacuum it replayed removed rows
 * the query needed), or the replica lacks what the primary has (3D000 database, 42P01 table, 42703
 * column, 42883 function: it has not replayed a new database or migration yet; measured: a replica 6 s
 * behind answered `relation "analytics_hourly_counts" does not exist` right after a start). A genuine
 * error fails on the primary too. A statement timeout (57014) is not one: the primary would take as long.
 *
 * @example
 * if (source === 'replica' && isReplicaFailure(err)) return runOnPrimary();
 */
export function isReplicaFailure(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? '');
  return (
    /^(08|57P)/.test(code) ||
    ['40001', '40P01', '3D000', '42P01', '42703', '42883'].includes(code) ||
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'CONNECT_TIMEOUT',
      'CONNECTION_CLOSED',
      'CONNECTION_ENDED',
      'CONNECTION_DESTROYED',
    ].includes(code)
  );
}
