import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// CPU limits per process for bench:scale: one cgroup (v1 cpu controller) per Cairn process, its
// quota set per configuration (cpu.cfs_quota_us over a 100 ms period: 25,000 = a quarter of a core).
// A process is moved in after it listens (a quarter of a core would make its start take seconds), and
// every group is removed at the end, its processes moved back to the root group first.

const ROOT = '/sys/fs/cgroup/cpu';
const PERIOD_US = 100_000;

/** One cgroup holding one process. */
export interface CpuGroup {
  name: string;
  /** Limits the group to `cores` (e.g. 0.25); Infinity lifts the limit. */
  limit(cores: number): void;
  /** Moves a process (all its threads) into the group. */
  add(pid: number): void;
  /** Periods in which the group ran out of quota, and its total periods, since it was made. */
  throttling(): { periods: number; throttled: number };
}

/** The groups of a run; `remove` takes them all down. */
export interface CpuGroups {
  group(name: string): CpuGroup;
  remove(): void;
}

const write = (file: string, value: string) => writeFileSync(file, value);

function statOf(dir: string): { periods: number; throttled: number } {
  const text = readFileSync(join(dir, 'cpu.stat'), 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { periods: field('nr_periods'), throttled: field('nr_throttled') };
}

/**
 * Makes a cgroup `prefix-probe`, limits it and reads it back, then removes it: fails with a clear
 * message when this machine gives no writable cgroup v1 cpu controller.
 *
 * @example
 * const groups = openCpuGroups('cairn-bench-scale');
 * const g = groups.group('ingest-1');
 * g.limit(0.25);
 * g.add(server.proc.pid);
 */
export function openCpuGroups(prefix: string): CpuGroups {
  if (!existsSync(join(ROOT, 'cpu.cfs_period_us'))) {
    throw new Error(`${ROOT} is not a cgroup v1 cpu controller: bench:scale needs one to limit each process's CPU`);
  }
  const probe = join(ROOT, `${prefix}-probe`);
  try {
    if (!existsSync(probe)) mkdirSync(probe);
    write(join(probe, 'cpu.cfs_quota_us'), '25000');
    const read = readFileSync(join(probe, 'cpu.cfs_quota_us'), 'utf8').trim();
    if (read !== '25000') throw new Error(`cpu.cfs_quota_us reads ${read} after writing 25000`);
  } catch (err) {
    throw new Error(`cannot make a CPU-limited cgroup under ${ROOT}: ${(err as Error).message}`);
  } finally {
    if (existsSync(probe)) rmdirSync(probe);
  }
  const made = new Map<string, CpuGroup>();
  const dirOf = (name: string) => join(ROOT, `${prefix}-${name}`);
  return {
    group(name) {
      const existing = made.get(name);
      if (existing) return existing;
      const dir = dirOf(name);
      if (!existsSync(dir)) mkdirSync(dir);
      write(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      const g: CpuGroup = {
        name,
        limit(cores) {
          write(join(dir, 'cpu.cfs_quota_us'), Number.isFinite(cores) ? String(Math.round(cores * PERIOD_US)) : '-1');
        },
        add(pid) {
          write(join(dir, 'cgroup.procs'), String(pid));
        },
        throttling: () => statOf(dir),
      };
      made.set(name, g);
      return g;
    },
    remove() {
      for (const name of made.keys()) {
        const dir = dirOf(name);
        if (!existsSync(dir)) continue;
        // A group with processes in it cannot be removed: move them back to the root group first.
        for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            write(join(ROOT, 'cgroup.procs'), pid);
          } catch {
            // exited meanwhile
          }
        }
        try {
          rmdirSync(dir);
        } catch (err) {
          console.log(`  could not remove cgroup ${dir}: ${(err as Error).message}`);
        }
      }
      made.clear();
    },
  };
}
