// A Postgres cluster of a test's own: initdb into a temporary directory, a postmaster on a free port of
// 127.0.0.1, and the faults a chaos test needs (kill -9 of the postmaster, a restart on the same data). Never
// the shared server at 5432: killing that one would take every other test file down with it.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@cairn/server/testing';
import postgres from 'postgres';

const run = promisify(execFile);

/** A running (or stopped, or crashed) cluster of the test's own. */
export interface PgCluster {
  port: number;
  /** The data directory and its parent (socket, log). */
  dir: string;
  /** A connection URL for `database` (trust auth, user postgres). */
  url(database?: string): string;
  /** The postmaster's pid, as its pid file says. */
  postmasterPid(): Promise<number>;
  /** `kill -9` of the postmaster alone: its backends notice and exit by themselves, as in a real crash. */
  crash(): Promise<number>;
  /**
   * Starts the postmaster and resolves once it accepts connections. After a crash, the orphaned backends
   * still hold the shared memory for a moment: the start is tried again until they are gone.
   */
  start(): Promise<void>;
  /** A fast shutdown (`pg_ctl stop -m fast`). */
  stop(): Promise<void>;
  /** Stops it (immediately) and deletes its directory. */
  remove(): Promise<void>;
}

/** The directory of initdb, pg_ctl and postgres: PG_BIN, or the newest /usr/lib/postgresql/<n>/bin. */
function findBin(): string | null {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

const BIN = findBin();

/** Why a test needing its own cluster is skipped, or null when it can run. */
export const PG_CLUSTER_SKIP_REASON: string | null = BIN
  ? null
  : 'no Postgres server binaries (initdb) under /usr/lib/postgresql/<version>/bin and PG_BIN is not set';

// initdb and postgres refuse to run as root: as root, they run as the postgres user (which owns the directory).
const asRoot = process.getuid?.() === 0;
function pg(tool: string, args: string[], timeoutMs = 60_000) {
  const cmd = join(BIN!, tool);
  return asRoot
    ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { timeout: timeoutMs })
    : run(cmd, args, { timeout: timeoutMs });
}

// Durability against a process crash is what the chaos test checks, not against the machine losing power:
// committed WAL sits in the page cache either way, so fsync and full-page writes are off to keep it fast.
const SETTINGS = [
  'listen_addresses=127.0.0.1',
  'fsync=off',
  'full_page_writes=off',
  'synchronous_commit=on',
  'max_connections=200',
  'shared_buffers=64MB',
  'log_min_messages=warning',
];

/**
 * Creates a cluster in a temporary directory (initdb, trust auth) and starts it on a free port, with an
 * empty database `cairn`.
 *
 * @example
 * const pg = await createPgCluster();
 * const s = await spawnServer({ DATABASE_URL: pg.url() });
 * await pg.crash();
 * await pg.start();
 * await pg.remove();
 */
export async function createPgCluster(): Promise<PgCluster> {
  if (!BIN) throw new Error(PG_CLUSTER_SKIP_REASON!);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const options = ['-p', String(port), '-k', dir, ...SETTINGS.flatMap((s) => ['-c', s])].join(' ');

  const pidFile = join(data, 'postmaster.pid');
  const postmasterPid = async () => Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0]!, 10);
  const url = (database = 'cairn') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  // A killed postmaster stays a zombie until its parent (init, once pg_ctl exited) reaps it, and a new one
  // refuses to start while the pid in the lock file exists. Dead is dead: its lock file goes (the shared
  // memory check still waits for its backends).
  const removeStalePidFile = async () => {
    const pid = await postmasterPid().catch(() => 0);
    if (!pid) return;
    const state = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (state === '' || / Z /.test(state)) await rm(pidFile, { force: true });
  };

  const cluster: PgCluster = {
    port,
    dir,
    url,
    postmasterPid,
    async crash() {
      const pid = await postmasterPid();
      process.kill(pid, 'SIGKILL');
      // Gone once its port refuses connections (reaping the process itself can take a second more).
      while (await accepts(port)) await sleep(5);
      return pid;
    },
    async start() {
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await pg('pg_ctl', ['start', '-w', '-t', '30', '-D', data, '-l', join(dir, 'postgres.log'), '-o', options]);
          return;
        } catch (err) {
          // "pre-existing shared memory block is still in use": backends of the crashed postmaster are
          // still exiting. Anything else that keeps failing for a minute is reported with the log.
          await removeStalePidFile();
          if (Date.now() > deadline) {
            const log = await readFile(join(dir, 'postgres.log'), 'utf8').catch(() => '');
            throw new Error(`pg_ctl start failed: ${String(err)}\n${log.slice(-2000)}`);
          }
          await sleep(100);
        }
      }
    },
    async stop() {
      await pg('pg_ctl', ['stop', '-w', '-m', 'fast', '-D', data]);
    },
    async remove() {
      await pg('pg_ctl', ['stop', '-w', '-m', 'immediate', '-D', data]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  const admin = postgres(url('postgres'), { max: 1, onnotice: () => {} });
  try {
    await admin`CREATE DATABASE cairn`;
  } finally {
    await admin.end();
  }
  return cluster;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
