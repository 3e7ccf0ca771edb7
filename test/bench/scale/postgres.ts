import { readdirSync, readFileSync } from 'node:fs';
import postgres from 'postgres';
import { processSeconds } from '../ingest/machine.ts';

// What Postgres spends per configuration of bench:scale: WAL (pg_stat_wal), buffers written
// (pg_stat_bgwriter), blocks touched and transactions of the benchmark's database (pg_stat_database),
// the CPU of its background processes (WAL writer, checkpointer, background writer) apart from the
// backends, and where active backends wait (pg_stat_activity and pg_locks, sampled).
// pg_stat_wal and pg_stat_bgwriter count the whole cluster: on a shared Postgres, other databases'
// writes land in them too (the report says so beside the figures).

/** Cumulative counters, read before and after a phase. */
export interface PgTotals {
  walBytes: number;
  walRecords: number;
  walFpi: number;
  /** Buffers written by checkpoints, the background writer and backends (cluster-wide). */
  buffersWritten: number;
  /** Blocks of the benchmark's database found in shared buffers or read (its own). */
  blocks: number;
  commits: number;
  rollbacks: number;
  deadlocks: number;
}

/**
 * Reads the counters (call {@link settle} first after a phase: statistics are flushed with a delay).
 *
 * @example
 * const before = await pgTotals(sql, database);
 */
export async function pgTotals(sql: postgres.Sql, database: string): Promise<PgTotals> {
  const [r] = await sql<PgTotals[]>`
    SELECT
      w.wal_bytes::float8 AS "walBytes",
      w.wal_records::float8 AS "walRecords",
      w.wal_fpi::float8 AS "walFpi",
      (b.buffers_checkpoint + b.buffers_clean + b.buffers_backend)::float8 AS "buffersWritten",
      (d.blks_hit + d.blks_read)::float8 AS blocks,
      d.xact_commit::float8 AS commits,
      d.xact_rollback::float8 AS rollbacks,
      d.deadlocks::float8 AS deadlocks
    FROM pg_stat_wal w, pg_stat_bgwriter b, pg_stat_database d
    WHERE d.datname = ${database}`;
  return r!;
}

/** b − a, field by field. */
export function pgDelta(a: PgTotals, b: PgTotals): PgTotals {
  const out = { ...b };
  for (const k of Object.keys(a) as (keyof PgTotals)[]) out[k] = b[k] - a[k];
  return out;
}

/** Statistics reach the cumulative views at transaction end, after a short delay. */
export async function settle(sql: postgres.Sql): Promise<void> {
  await new Promise((r) => setTimeout(r, 1100));
  await sql`SELECT pg_stat_clear_snapshot()`;
}

// Postgres processes that serve the whole cluster and write on behalf of every backend.
const BACKGROUND = /walwriter|checkpointer|background writer/;

function backgroundPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      if (BACKGROUND.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) pids.push(Number(entry));
    } catch {
      // gone between readdir and read
    }
  }
  return pids;
}

/**
 * Starts measuring the CPU of Postgres' WAL writer, checkpointer and background writer; the returned
 * function stops and returns cores.
 *
 * @example
 * const stop = backgroundCpu();
 * const cores = stop();
 */
export function backgroundCpu(): () => number {
  const t0 = performance.now();
  const pids = backgroundPids();
  const s0 = pids.map(processSeconds);
  // A process that exited meanwhile reads 0: it counts nothing rather than minus what it had used.
  return () =>
    pids.reduce((s, p, i) => s + Math.max(0, processSeconds(p) - s0[i]!), 0) / ((performance.now() - t0) / 1000);
}

/** Where the benchmark's active backends were, sampled. */
export interface Waits {
  samples: number;
  /** Average active backends of the database. */
  active: number;
  /** Share of active samples by what they waited for: CPU (no wait), Lock, LWLock, IO, other. */
  share: { cpu: number; lock: number; lwlock: number; io: number; other: number };
  /** The three most frequent wait events, e.g. "LWLock:WALWrite 12%". */
  top: string[];
  /** Average locks requested and not granted (pg_locks) by the database's backends. */
  ungranted: number;
}

/**
 * Samples the database's backends every `everyMs` on a connection of its own; the returned
 * function stops and summarises.
 *
 * @example
 * const stop = sampleWaits(url, 'cairn_t_0123456789ab');
 * const waits = await stop();
 */
export function sampleWaits(url: string, database: string, everyMs = 50): () => Promise<Waits> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const byEvent = new Map<string, number>();
  const byType = { cpu: 0, lock: 0, lwlock: 0, io: 0, other: 0 };
  let samples = 0;
  let active = 0;
  let ungranted = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      // One snapshot per sample: the backends' states and their ungranted lock requests.
      const rows = await sql<{ type: string | null; event: string | null; ungranted: number }[]>`
        SELECT
          a.wait_event_type AS type,
          a.wait_event AS event,
          (SELECT count(*)::int FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) AS ungranted
        FROM pg_stat_activity a
        WHERE a.datname = ${database}
          AND a.state = 'active'
          AND a.pid <> pg_backend_pid()`;
      samples++;
      for (const r of rows) {
        active++;
        ungranted += r.ungranted;
        const type = r.type ?? 'CPU';
        const key =
          type === 'Lock'
            ? 'lock'
            : type === 'LWLock'
              ? 'lwlock'
              : type === 'IO'
                ? 'io'
                : type === 'CPU'
                  ? 'cpu'
                  : 'other';
        byType[key]++;
        if (r.type) byEvent.set(`${r.type}:${r.event}`, (byEvent.get(`${r.type}:${r.event}`) ?? 0) + 1);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })().catch((err: unknown) => console.log(`  sampling pg_stat_activity failed: ${(err as Error).message}`));
  return async () => {
    stopped = true;
    await loop;
    await sql.end({ timeout: 5 });
    const share = (n: number) => n / (active || 1);
    return {
      samples,
      active: active / (samples || 1),
      share: {
        cpu: share(byType.cpu),
        lock: share(byType.lock),
        lwlock: share(byType.lwlock),
        io: share(byType.io),
        other: share(byType.other),
      },
      top: [...byEvent]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([name, n]) => `${name} ${Math.round(share(n) * 100)}%`),
      ungranted: ungranted / (samples || 1),
    };
  };
}

/**
 * Rows read by sequential scans, per table of the database (cumulative): a table scanned whole on a hot
 * path shows up here first.
 *
 * @example
 * const before = await seqReads(sql);
 */
export async function seqReads(sql: postgres.Sql): Promise<Map<string, number>> {
  const rows = await sql<{ name: string; rows: number }[]>`
    SELECT relname AS name, seq_tup_read::float8 AS rows
    FROM pg_stat_user_tables`;
  return new Map(rows.map((r) => [r.name, r.rows]));
}

/** The tables whose sequential scans read the most rows between two readings, e.g. "events 1.2M". */
export function topSeqReads(a: Map<string, number>, b: Map<string, number>, n = 3): string[] {
  return [...b]
    .map(([name, rows]) => [name, rows - (a.get(name) ?? 0)] as const)
    .filter(([, rows]) => rows >= 10_000)
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([name, rows]) => `${name} ${rows >= 1e6 ? `${(rows / 1e6).toFixed(1)}M` : `${Math.round(rows / 1000)}k`}`);
}

/** Events (or jobs, for queues whose jobs carry no event ids) each pg-boss queue completed. */
export type StageCounts = Map<string, { jobs: number; events: number }>;

/**
 * What each pipeline queue completed between two database times: jobs, and the event ids they
 * carried (`data->'ids'`, as handOff puts them).
 *
 * @example
 * const counts = await stageCounts(sql, t0, t1);
 */
export async function stageCounts(sql: postgres.Sql, from: Date, to: Date): Promise<StageCounts> {
  const rows = await sql<{ name: string; jobs: number; events: number }[]>`
    SELECT
      name,
      count(*)::int AS jobs,
      coalesce(sum(jsonb_array_length(data->'ids')) FILTER (WHERE jsonb_typeof(data->'ids') = 'array'), 0)::int AS events
    FROM pgboss.job
    WHERE state = 'completed'
      AND completed_on >= ${from}
      AND completed_on < ${to}
    GROUP BY name`;
  return new Map(rows.map((r) => [r.name, { jobs: r.jobs, events: r.events }]));
}
