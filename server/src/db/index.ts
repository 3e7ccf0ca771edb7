import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { Db as IDatabase } from 'pg-boss';
import postgres from 'postgres';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';

/** The one `sql` function every query goes through (porsager's postgres.js). */
export type Sql = postgres.Sql<Record<string, never>>;
/** A transaction's `sql` (or the pool's): what every `queries.ts` function takes first. */
export type Tx = Sql | postgres.TransactionSql<Record<string, never>>;
/** An open transaction's `sql`, never the pool's: what must happen atomically with other writes takes this. */
export type Transaction = postgres.TransactionSql<Record<string, never>>;

/** An open database: the shared client, and how to close it. */
export interface Database {
  sql: Sql;
  kind: 'postgres' | 'embedded';
  close(): Promise<void>;
}

/**
 * Adapts a `sql` (pool or transaction) to the executor pg-boss expects, so pg-boss shares our
 * single client, and its job inserts can join our transactions.
 *
 * @example
 * await boss.send('identify', data, { db: bossExecutor(tx) });
 */
export function bossExecutor(sql: Tx, options: { listen?: boolean } = {}): IDatabase {
  const db: IDatabase = {
    async executeSql(text: string, values?: unknown[]) {
      const params = (values ?? []) as postgres.ParameterOrJSON<never>[];
      // pg-boss runs its schema plans as one text wrapped in BEGIN/COMMIT; postgres.js only allows that
      // on a connection reserved for it, so the pool never hands out a connection mid-transaction.
      if (params.length === 0 && 'reserve' in sql && /^\s*BEGIN\b/im.test(text)) {
        const reserved = await sql.reserve();
        try {
          return { rows: flatten(await reserved.unsafe(text)) };
        } catch (err) {
          // The failed text left its transaction open: never hand the connection back mid-transaction.
          await reserved.unsafe('ROLLBACK').catch(() => {});
          throw err;
        } finally {
          reserved.release();
        }
      }
      // pg-boss builds its own parameterised SQL; unsafe is the only way to run its text. Its texts are
      // fixed per statement and queue, so preparing them is safe and saves a parse and plan per job
      // insert (~0.6 ms of Postgres CPU on every group commit, measured by bench:ingest).
      return { rows: flatten(await sql.unsafe(text, params, { prepare: params.length > 0 })) };
    },
  };
  // LISTEN needs a session of its own: postgres.js keeps one for sql.listen and calls onlisten after
  // every (re)connect, which is when pg-boss wants to re-check for jobs it may have missed.
  if (options.listen && 'listen' in sql) {
    db.listen = async (channel, onNotification, onReconnect) => {
      const { unlisten } = await sql.listen(channel, (payload) => onNotification(payload), onReconnect);
      return { close: unlisten };
    };
  }
  return db;
}

// A multi-statement text yields one result per statement; pg-boss wants the rows of all of them.
function flatten(result: readonly unknown[]): unknown[] {
  return result.length > 0 && result.every(Array.isArray) ? result.flat() : [...result];
}

const CLIENT_OPTIONS = {
  onnotice: () => {},
  connection: { application_name: 'cairn' },
  // Dates are handled as ISO strings by the pipeline; bigint ids stay strings (exact).
} as const;

/**
 * How long a connection attempt to Postgres may take (TCP, TLS, authentication) before it fails. A query
 * waiting for a connection fails with it, and a tracking request is answered 503 (retry) then: with
 * postgres.js's default, 30 s, a database host that drops packets held tracking requests that long.
 */
export const CONNECT_TIMEOUT_SECONDS = 2;

/** The longest wait between two connection attempts once Postgres is gone (jittered down to half). */
export const RECONNECT_MAX_SECONDS = 1;

/**
 * Seconds before the next connection attempt after `retries` failed ones in a row (pool-wide). postgres.js's
 * default grows to 20 s (3^retries / 100): after a 5 s outage the pool waited up to 20 s more before trying
 * again, and every query queued meanwhile waited with it (ingest blocked ~14 s after Postgres was back).
 * A refused connection costs Postgres nothing, so the pool tries again within a second; a query waiting for
 * a connection is answered by the next attempt, success or failure.
 *
 * @example
 * reconnectDelay(0); // 0.025 to 0.05
 * reconnectDelay(10); // 0.5 to 1
 */
export function reconnectDelay(retries: number): number {
  return Math.min(0.05 * 2 ** retries, RECONNECT_MAX_SECONDS) * (0.5 + Math.random() / 2);
}

/**
 * Opens the database: a real Postgres pool when `DATABASE_URL` is set, else embedded PGlite
 * persisted in the data directory and served through exactly one connection (PGlite is a single
 * backend session: several connections over its socket interleave protocol messages).
 *
 * @example
 * const db = await openDatabase(config, log);
 * await db.sql`SELECT 1`;
 */
export async function openDatabase(config: Readonly<Config>, log: Logger): Promise<Database> {
  if (config.databaseUrl) {
    const sql = postgres(config.databaseUrl, {
      ...CLIENT_OPTIONS,
      max: config.poolMax,
      connect_timeout: CONNECT_TIMEOUT_SECONDS,
      backoff: reconnectDelay,
    }) as unknown as Sql;
    return { sql, kind: 'postgres', close: () => sql.end({ timeout: 5 }) };
  }
  return openEmbedded(resolve(config.dataDir), log);
}

async function openEmbedded(dataDir: string, log: Logger): Promise<Database> {
  await mkdir(dataDir, { recursive: true });
  const releaseLock = await lockDataDir(dataDir);
  const pglite = await PGlite.create(join(dataDir, 'pgdata'));
  let socketPath = join(dataDir, '.s.PGSQL.5432');
  // A unix socket path must fit in sockaddr_un (108 bytes); deep data directories fall back to /tmp.
  if (socketPath.length > 100) socketPath = join(tmpdir(), `cairn-${process.pid}-${Date.now()}.sock`);
  await rm(socketPath, { force: true });
  const server = new PGLiteSocketServer({ db: pglite, path: socketPath, maxConnections: 2 });
  await server.start();
  const sql = postgres({
    ...CLIENT_OPTIONS,
    path: socketPath,
    user: 'postgres',
    database: 'postgres',
    max: 1,
    idle_timeout: 0,
    fetch_types: true,
  }) as unknown as Sql;
  log.info(`embedded database (PGlite) in ${join(dataDir, 'pgdata')}`);
  return {
    sql,
    kind: 'embedded',
    async close() {
      await sql.end({ timeout: 5 });
      await server.stop();
      await pglite.close();
      await rm(socketPath, { force: true });
      await releaseLock();
    },
  };
}

/** The embedded data directory is held by another running process (a second `npm start`). */
export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly owner: number,
  ) {
    super(
      `the data directory ${dataDir} is in use by another Cairn (process ${owner}): stop that one, or give this ` +
        'one its own CAIRN_DATA_DIR or a DATABASE_URL',
    );
    this.name = 'DataDirInUseError';
  }
}

// Two processes opening one PGlite directory would corrupt it: the lock file is created exclusively
// (two starting together cannot both get it), and one left by a process that died is taken over.
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockFile = join(dataDir, 'cairn.pid');
  for (let attempt = 1; ; attempt++) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: 'wx' });
      return () => rm(lockFile, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await lockOwner(lockFile);
    if (owner && owner !== process.pid && isAlive(owner)) throw new DataDirInUseError(dataDir, owner);
    if (attempt === 3) throw new Error(`could not take the lock file ${lockFile}`);
    await rm(lockFile, { force: true });
  }
}

// The pid in a lock file; a file just created by another process may not hold it yet.
async function lockOwner(lockFile: string): Promise<number> {
  for (let i = 0; i < 5; i++) {
    const text = await readFile(lockFile, 'utf8').catch(() => null);
    if (text === null) return 0;
    const pid = Number.parseInt(text, 10);
    if (pid) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  return 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` while holding a session advisory lock on a connection reserved for it, so servers
 * starting together on one database run it one after another. pg-boss's schema installation needs
 * this: two concurrent installs collide on CREATE SCHEMA. Embedded PGlite has one process per data
 * directory (and one connection, which the lock would starve), so it runs `fn` directly.
 *
 * @example
 * const boss = await withStartupLock(db, () => startBoss(db, log, options));
 */
export async function withStartupLock<T>(db: Database, fn: () => Promise<T>): Promise<T> {
  if (db.kind === 'embedded') return fn();
  const reserved = await db.sql.reserve();
  try {
    await reserved`SELECT pg_advisory_lock(${STARTUP_LOCK})`;
    return await fn();
  } finally {
    await reserved`SELECT pg_advisory_unlock(${STARTUP_LOCK})`.catch(() => {});
    reserved.release();
  }
}

// Distinct from the migration lock (db/migrate.ts), which is transaction-scoped.
const STARTUP_LOCK = 727_746_002;

/**
 * Runs independent statements in one round trip: `fn` starts them on one reserved connection, where
 * postgres.js writes them together and Postgres runs them in order, each in its own implicit
 * transaction (so a later one sees an earlier one's commit). Given to the pool they would go to as
 * many idle connections, one write and one backend wake-up each. Everything `fn` starts must use the
 * connection it is given and nothing else (embedded PGlite has one connection, which this holds).
 *
 * @example
 * const [rows, circuit] = await oneRoundTrip(sql, (c) => [deliveriesToSend(c, ids), circuitOf(c, id)]);
 */
export async function oneRoundTrip<T extends readonly unknown[]>(
  sql: Sql,
  fn: (c: Sql) => { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const c = await sql.reserve();
  try {
    // Every statement settles before the connection goes back, failed or not.
    const settled = await Promise.allSettled(fn(c as unknown as Sql));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
  } finally {
    c.release();
  }
}

/**
 * Whether a Postgres error is about the data of a statement (SQLSTATE classes 22 and 23) rather
 * than the database being unavailable. The dedup key's unique violation (23505) is not one.
 *
 * @example
 * if (isDataError(err)) retryRowByRow();
 */
export function isDataError(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? '');
  return /^2[23]/.test(code) && code !== '23505';
}
