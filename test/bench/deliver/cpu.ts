import { readFileSync } from 'node:fs';
import { cpuMeter } from '../ingest/machine.ts';

// CPU used during a phase of bench:deliver, in cores: the Cairn processes (one or two), Postgres, the
// load generator (this process), the receiver process, and everything else on the machine.

/** CPU cores used during one phase. */
export interface DeliverCpu {
  cairn: number;
  postgres: number;
  bench: number;
  receivers: number;
  other: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function processSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0; // exited
  }
}

/**
 * Starts measuring; the returned function stops and returns the cores each part used.
 *
 * @example
 * const stop = deliverCpuMeter([server.proc.pid], receivers.pid, database);
 * const cpu = stop();
 */
export function deliverCpuMeter(
  cairnPids: readonly (number | undefined)[],
  receiverPid: number,
  database: string,
): () => DeliverCpu {
  const started = performance.now();
  const pids = cairnPids.filter((p): p is number => p !== undefined);
  const cairn0 = pids.map(processSeconds);
  const receivers0 = processSeconds(receiverPid);
  const stop = cpuMeter(undefined, database);
  return () => {
    const use = stop();
    const seconds = (performance.now() - started) / 1000;
    const cairn = pids.reduce((s, p, i) => s + processSeconds(p) - cairn0[i]!, 0) / seconds;
    const receivers = (processSeconds(receiverPid) - receivers0) / seconds;
    return {
      cairn,
      postgres: use.postgres,
      bench: use.loadgen,
      receivers,
      other: Math.max(0, use.other - cairn - receivers),
    };
  };
}

/** "0.91 / 0.62 / 0.10 / 0.15 / 0.02" in the order of the table header. */
export function coresText(c: DeliverCpu): string {
  return [c.cairn, c.postgres, c.bench, c.receivers, c.other].map((x) => x.toFixed(2)).join(' / ');
}
