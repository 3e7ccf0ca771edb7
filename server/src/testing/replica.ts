import { execFile, execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';

const run = promisify(execFile);

/** Where Debian/Ubuntu keep Postgres 15's server binaries (pg_ctl is not on PATH there). */
export const PG_BIN = '/usr/lib/postgresql/15/bin';

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the streaming-replica tests cannot run here, or null when they can: they need `pg_basebackup` (the
 * postgresql-client package) and a Postgres (DATABASE_URL). Anything else missing fails the test.
 */
export const REPLICA_SKIP_REASON = !process.env.DATABASE_URL
  ? 'DATABASE_URL is not set: the streaming replica is made from that Postgres (CI sets it)'
  : !onPath('pg_basebackup')
    ? 'pg_basebackup is not installed (apt-get install postgresql-client-15): no streaming replica can be made'
    : null;

/** A physical streaming replica of the test Postgres, in a temporary directory; see {@link startStreamingReplica}. */
export interface StreamingReplica {
  port: number;
  dir: string;
  /** `DATABASE_URL`'s URL with the replica's port and `database`. */
  urlOf(database: string): string;
  /** A client on the replica (closed by {@link StreamingReplica.close}). */
  sql(database: string): postgres.Sql;
  /** Stops applying WAL (it keeps receiving it): the replica falls behind while the primary goes on. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;

// Postgres refuses to run as root: as root (CI), the server commands run as the postgres OS user.
function asPostgres(cmd: string, args: string[], timeout = 180_000) {
  return asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { timeout }) : run(cmd, args, { timeout });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function freePort(from: number): Promise<number> {
  for (let port = from; port < from + 100; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${from}..${from + 99}`);
}

/**
 * Lets the test Postgres serve replication connections from 127.0.0.1 (trust, as its other connections),
 * idempotently: a `host replication all 127.0.0.1/32 trust` line is added to its pg_hba.conf and the
 * configuration reloaded (no restart) only when no rule allows replication yet. `wal_level` (replica, the
 * default of Postgres 15) and `max_wal_senders` need a restart to change: when they do not allow a
 * replica, this fails saying so.
 */
async function allowReplication(primary: postgres.Sql): Promise<void> {
  const [s] = await primary<{ walLevel: string; senders: string; hba: string }[]>`
    SELECT current_setting('wal_level') AS "walLevel", current_setting('max_wal_senders') AS senders,
      current_setting('hba_file') AS hba`;
  if (!s || s.walLevel === 'minimal' || Number(s.senders) < 1)
    throw new Error(
      `the test Postgres cannot feed a replica (wal_level=${s?.walLevel}, max_wal_senders=${s?.senders}): set wal_level=replica and max_wal_senders>=2 and restart it`,
    );
  const rules = await primary<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_hba_file_rules
    WHERE error IS NULL AND 'replication' = ANY(database) AND type LIKE 'host%'`;
  if ((rules[0]?.n ?? 0) > 0) return;
  const line =
    '\n# Added by Cairn tests (server/src/testing/replica.ts): streaming replicas on this machine\nhost replication all 127.0.0.1/32 trust\n';
  try {
    await writeFile(s.hba, line, { flag: 'a' });
  } catch (err) {
    throw new Error(
      `cannot add "host replication all 127.0.0.1/32 trust" to ${s.hba} (${(err as Error).message}): add it and reload Postgres`,
    );
  }
  await primary`SELECT pg_reload_conf()`;
}

/**
 * Makes a physical streaming replica of the Postgres in DATABASE_URL: `pg_basebackup -R` into a temporary
 * directory, started with Postgres 15's `pg_ctl` on a free port from 5433 as the postgres OS user, and
 * waits until it streams. The whole cluster is copied (every database). Call `close()` after the tests.
 *
 * @example
 * const replica = await startStreamingReplica();
 * const url = replica.urlOf('cairn_t_0123');
 * await replica.close();
 */
export async function startStreamingReplica(): Promise<StreamingReplica> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('a streaming replica needs DATABASE_URL');
  const primaryUrl = new URL(base);
  const primary = postgres(base, { max: 1, onnotice: () => {} });
  const clients: postgres.Sql[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'cairn-replica-'));
  const data = join(dir, 'data');
  let running = false;
  const slot = `cairn_test_replica_${process.pid}_${Date.now()}`;
  // Without its slot dropped, the primary would keep WAL for this replica forever.
  const dropSlot = async () => {
    const admin = postgres(base, { max: 1, onnotice: () => {} });
    try {
      await admin`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${slot}`;
    } finally {
      await admin.end();
    }
  };
  const ctl = (...args: string[]) => asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, ...args]);
  const stop = async () => {
    if (!running) return;
    await ctl('-m', 'fast', '-w', 'stop');
    running = false;
  };
  // A test process that dies leaves no replica running.
  const onExit = () => {
    if (!running) return;
    const stopNow = [join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'];
    execFileSync(asRoot ? 'runuser' : stopNow[0]!, asRoot ? ['-u', 'postgres', '--', ...stopNow] : stopNow.slice(1), {
      stdio: 'ignore',
    });
  };
  try {
    await allowReplication(primary);
    // Slots left behind by a test process that died (not one of a run still going: its process is alive).
    const stale = await primary<{ name: string }[]>`
      SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE 'cairn\\_test\\_replica\\_%' AND NOT active`;
    for (const { name } of stale)
      if (!isAlive(Number(name.split('_')[3]))) await primary`SELECT pg_drop_replication_slot(${name})`.catch(() => {});
    const settings = await primary<{ name: string; setting: string }[]>`
      SELECT name, setting FROM pg_settings
      WHERE name IN ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
        'max_locks_per_transaction')`;
    const port = await freePort(5433);
    if (asRoot) {
      const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      await chown(dir, uid, gid);
    }
    await chmod(dir, 0o700);
    const host = primaryUrl.hostname || '127.0.0.1';
    // The reload that allowed replication may not have landed yet: a few tries.
    for (let attempt = 1; ; attempt++) {
      try {
        await asPostgres('pg_basebackup', [
          '-h',
          host,
          '-p',
          primaryUrl.port || '5432',
          '-U',
          decodeURIComponent(primaryUrl.username || 'postgres'),
          '-D',
          data,
          '-R',
          '-X',
          'stream',
          '-c',
          'fast',
          // A slot keeps the WAL the copy needs until it streams: the busy test Postgres had recycled it
          // in the second between the backup's end and the replica's start.
          '-C',
          '-S',
          slot,
        ]);
        break;
      } catch (err) {
        await dropSlot();
        if (attempt === 3) throw err;
        await rm(data, { recursive: true, force: true });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    // A Debian cluster keeps its configuration in /etc: the copy gets its own. Settings a standby must not
    // have below the primary's are copied from it.
    const conf = [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'hot_standby = on',
      // Replay is one process: on a busy shared machine it fell minutes behind a bulk load with 32MB
      // and default checkpoints; more buffers and rarer restartpoints let it keep closer.
      'shared_buffers = 128MB',
      'max_wal_size = 4GB',
      'checkpoint_timeout = 1h',
      'fsync = off',
      ...settings.map((s) => `${s.name} = ${s.setting}`),
    ].join('\n');
    await writeFile(join(data, 'postgresql.conf'), `${conf}\n`);
    await writeFile(join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    await writeFile(join(data, 'pg_ident.conf'), '');
    if (asRoot) await run('chown', ['-R', 'postgres:postgres', data]);
    const start = async () => {
      if (running) return;
      await ctl('-l', join(dir, 'log'), '-w', '-t', '60', 'start');
      running = true;
    };
    await start();
    process.once('exit', onExit);
    const urlOf = (database: string) => {
      const u = new URL(base);
      u.port = String(port);
      u.pathname = `/${database}`;
      return u.toString();
    };
    const control = postgres(urlOf('postgres'), { max: 1, onnotice: () => {} });
    clients.push(control);
    for (let i = 0; ; i++) {
      const [r] = await control<{ status: string | null }[]>`SELECT status FROM pg_stat_wal_receiver`.catch(() => []);
      if (r?.status === 'streaming') break;
      if (i > 600) throw new Error(`the replica in ${dir} does not stream (see ${join(dir, 'log')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await primary.end();
    return {
      port,
      dir,
      urlOf,
      sql(database) {
        const c = postgres(urlOf(database), { max: 2, onnotice: () => {} });
        clients.push(c);
        return c;
      },
      async pauseReplay() {
        await control`SELECT pg_wal_replay_pause()`;
      },
      async resumeReplay() {
        await control`SELECT pg_wal_replay_resume()`;
      },
      stop,
      start,
      async close() {
        await Promise.all(clients.map((c) => c.end({ timeout: 1 }).catch(() => {})));
        await stop();
        process.off('exit', onExit);
        await dropSlot();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await primary.end().catch(() => {});
    await Promise.all(clients.map((c) => c.end({ timeout: 1 }).catch(() => {})));
    await stop().catch(() => {});
    await dropSlot().catch(() => {});
    const log = await readFile(join(dir, 'log'), 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw log ? new Error(`${(err as Error).message}\nreplica log (end):\n${log.slice(-2000)}`) : err;
  }
}
