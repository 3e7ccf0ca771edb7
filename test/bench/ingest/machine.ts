import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';

// Where the numbers came from (CPU, memory, versions, the Postgres settings that decide commit cost)
// and who used the CPU during each phase (Cairn, Postgres, the load generator), read from /proc.

/** The machine and software a run measured. */
export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  postgres: string;
  /** Postgres settings that matter for write throughput. */
  pgSettings: Record<string, string>;
  /** {@link speedIndex} before and after the run. */
  speedIndex?: [number, number];
}

const PG_SETTINGS = [
  'shared_buffers',
  'synchronous_commit',
  'fsync',
  'wal_sync_method',
  'max_wal_size',
  'commit_delay',
];

/**
 * Describes the machine: `nproc`, CPU model, memory, Node and Postgres versions and settings.
 *
 * @example
 * const m = await describeMachine(sql);
 */
export async function describeMachine(sql: postgres.Sql): Promise<Machine> {
  let cores = availableParallelism();
  try {
    cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || cores;
  } catch {
    // nproc missing: availableParallelism() says the same thing
  }
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const [{ version }] = await sql<[{ version: string }]>`SELECT current_setting('server_version') AS version`;
  const rows = await sql<{ name: string; setting: string }[]>`
    SELECT name, current_setting(name) AS setting
    FROM pg_settings
    WHERE name = ANY(${PG_SETTINGS})`;
  return {
    cores,
    cpuModel,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: version,
    pgSettings: Object.fromEntries(rows.map((r) => [r.name, r.setting])),
  };
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const cores = () => availableParallelism();

/** CPU seconds a process has used (0 once it has exited). */
export function processSeconds(pid: number): number {
  try {
    // Fields after the ") " that closes the command name: utime is the 12th, stime the 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0; // exited
  }
}

/**
 * CPU milliseconds used so far by the backends connected to the database `sql` is on (Postgres on this
 * machine); backends that ended meanwhile are missed (a pool keeps its connections open).
 */
export async function backendCpuMs(sql: Sql): Promise<number> {
  const pids = await sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`;
  let seconds = 0;
  for (const { pid } of pids) seconds += processSeconds(pid);
  return seconds * 1000;
}

/** CPU milliseconds the whole machine has been busy so far (every core, every process), from /proc/stat. */
export function machineBusyMs(): number {
  return (machineTicks().busy * 1000) / TICKS_PER_SECOND;
}

/** A process and its children (the all-in-one server's pipeline process). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === pid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

// Client backends and autovacuum workers name their database in the process title; those of other
// databases (someone else's tests on a shared Postgres) count as "other". Background processes
// (checkpointer, WAL writer, ...) serve every database and count as Postgres.
const FOREIGN_BACKEND = /\(\d+\)|\[local\]|autovacuum worker|parallel worker/;

function postgresPids(database: string | undefined): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (database && !title.includes(database) && FOREIGN_BACKEND.test(title)) continue;
      pids.push(Number(entry));
    } catch {
      // gone between readdir and read
    }
  }
  return pids;
}

function machineTicks(): { busy: number; total: number; steal: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait - steal, total, steal };
}

/** CPU used during one phase, in cores (1.0 = one core busy all the time). */
export interface CpuUse {
  cairn: number;
  postgres: number;
  loadgen: number;
  /** Everything else running on the machine (other people's processes), in cores. */
  other: number;
  /** Share of all cores busy (0-1). */
  machine: number;
  /** Share stolen by the hypervisor (0-1). */
  steal: number;
}

/**
 * Starts measuring CPU use of the Cairn process, the Postgres processes working for `database`
 * (its backends and the shared background processes) and this process.
 *
 * @example
 * const stop = cpuMeter(server.pid, 'cairn_t_0123456789ab');
 * await run();
 * const use = stop();
 */
export function cpuMeter(cairnPid: number | undefined, database: string | undefined): () => CpuUse {
  const started = performance.now();
  const cairn0 = new Map((cairnPid ? processTree(cairnPid) : []).map((p) => [p, processSeconds(p)]));
  const pg0 = new Map(postgresPids(database).map((p) => [p, processSeconds(p)]));
  const self0 = process.cpuUsage();
  const m0 = machineTicks();
  return () => {
    const seconds = (performance.now() - started) / 1000;
    let pg = 0;
    for (const pid of postgresPids(database)) pg += processSeconds(pid) - (pg0.get(pid) ?? 0);
    const self = process.cpuUsage(self0);
    const m1 = machineTicks();
    const total = m1.total - m0.total || 1;
    let cairnSeconds = 0;
    for (const pid of cairnPid ? processTree(cairnPid) : [])
      cairnSeconds += processSeconds(pid) - (cairn0.get(pid) ?? 0);
    const cairn = cairnSeconds / seconds;
    const postgres = pg / seconds;
    const loadgen = (self.user + self.system) / 1e6 / seconds;
    const machine = (m1.busy - m0.busy) / total;
    const busyCores = machine * cores();
    return {
      cairn,
      postgres,
      loadgen,
      other: Math.max(0, busyCores - cairn - postgres - loadgen),
      machine,
      steal: (m1.steal - m0.steal) / total,
    };
  };
}

/**
 * Measures for `ms` how many cores other processes keep busy (everything but this process and
 * Postgres working for `database`), to warn that a run shares the machine with someone else's work.
 *
 * @example
 * const busy = await otherLoad(1000, 'cairn_t_0123456789ab');
 */
export async function otherLoad(ms: number, database: string): Promise<number> {
  const stop = cpuMeter(undefined, database);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return stop().other;
}

/**
 * A fixed single-threaded workload (parse, enrich-like copy and serialize a 1 KB event), in
 * thousands of rounds per second: the same machine gives the same figure when it is as fast as it
 * was. A virtual machine's speed drifts with its neighbours in ways the guest cannot see (no steal,
 * no other process); this figure, taken before and after a run, shows such drift.
 *
 * @example
 * const kops = speedIndex();
 */
export function speedIndex(ms = 1000): number {
  const text = JSON.stringify({
    type: 'track',
    event: 'Product Added',
    messageId: '4f6f6b1e-8d1c-4d52-9a53-2b0c3f6c7d11',
    anonymousId: 'b1f0e4c2-7a5d-4b8e-9c3f-1d2e3f4a5b6c',
    properties: { product_id: 'SKU-1234', name: 'alpine 2p tent', price: 249.9, quantity: 1, currency: 'EUR' },
    context: {
      userAgent:
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
      page: { path: '/products/alpine-2p', url: 'https://shop.example/products/alpine-2p?utm_source=newsletter' },
    },
  });
  let rounds = 0;
  let sink = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 100; i++) {
      const e = JSON.parse(text) as Record<string, unknown>;
      sink += JSON.stringify({ ...e, receivedAt: new Date(1_700_000_000_000 + i).toISOString() }).length;
    }
    rounds += 100;
  }
  if (sink < 0) throw new Error('unreachable');
  return rounds / ms;
}
