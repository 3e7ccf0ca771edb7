import { cpuMeter, processSeconds, processTree } from '../ingest/machine.ts';

// CPU used during a phase of bench:deliver, in cores: the Cairn processes (one or two, each with its pipeline process), Postgres, the
// load generator (this process), the receiver process, and everything else on the machine.

/** CPU cores used during one phase. */
export interface DeliverCpu {
  cairn: number;
  postgres: number;
  bench: number;
  receivers: number;
  other: number;
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
  // Each node with its children (the all-in-one start's pipeline process).
  const pids = cairnPids.filter((p): p is number => p !== undefined).flatMap(processTree);
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
