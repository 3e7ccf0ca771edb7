import { readFileSync, writeFileSync } from 'node:fs';
import type { Machine } from '../ingest/machine.ts';
import type { Costs, IngestResult, WorkerResult } from './phases.ts';

// bench:scale's tables (printed, and written into docs/benchmarks.md between its markers: a rerun
// replaces its previous results and leaves the rest of the page alone).

/** Everything a run reports. */
export interface Report {
  date: string;
  machine: Machine;
  quick: boolean;
  minutes: number;
  concurrency: number;
  durationS: number;
  windowS: number;
  people: number;
  backlog: number;
  ingest: IngestResult[];
  workers: WorkerResult[];
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const pct = (n: number) => `${Math.round(n * 100)}%`;
const cores = (c: Costs) =>
  `${c.cpu.cairn.toFixed(2)} / ${(c.cpu.postgres - c.pgBackground).toFixed(2)} / ${c.pgBackground.toFixed(2)} / ${c.cpu.bench.toFixed(2)} / ${c.cpu.other.toFixed(2)}`;
const waits = (c: Costs) =>
  `${c.waits.active.toFixed(1)}; ${pct(c.waits.share.cpu)} / ${pct(c.waits.share.lock)} / ${pct(c.waits.share.lwlock)} / ${pct(c.waits.share.io)}; ${c.waits.ungranted.toFixed(2)}`;

/** Per-event Postgres costs: WAL bytes, buffers written, blocks touched, CPU-ms of Postgres and of Cairn. */
function perEvent(c: Costs, eventsPerSec: number): string {
  const events = eventsPerSec * c.seconds;
  if (!(events > 0)) return '- | - | - | - | -';
  const pgMs = (c.cpu.postgres * c.seconds * 1000) / events;
  const cairnMs = (c.cpu.cairn * c.seconds * 1000) / events;
  return `${int(c.pg.walBytes / events)} | ${(c.pg.buffersWritten / events).toFixed(2)} | ${(c.pg.blocks / events).toFixed(1)} | ${pgMs.toFixed(3)} | ${cairnMs.toFixed(3)}`;
}

/**
 * Says which resource the configuration ran out of: Cairn's quota (its processes throttled in most
 * periods), the machine's cores, or Postgres (its backends waiting on locks or WAL).
 *
 * @example
 * bottleneck(result, 2); // 'Cairn CPU (quota)'
 */
export function bottleneck(c: Costs, machineCores: number): string {
  const busy = c.cpu.cairn + c.cpu.postgres + c.cpu.bench + c.cpu.receivers + c.cpu.other;
  const w = c.waits.share;
  if (c.throttled > 0.5) return 'Cairn CPU (quota)';
  if (w.lock > 0.3) return 'locks';
  if (w.lwlock + w.io > 0.3) return 'WAL / I/O';
  if (busy > machineCores * 0.9) return c.cpu.other > 0.3 ? 'machine cores (shared)' : 'machine cores';
  if (c.cpu.postgres > c.cpu.cairn) return 'Postgres CPU';
  return 'none clear';
}

/**
 * The ingest sweep as a Markdown table.
 *
 * @example
 * console.log(ingestTable(report.ingest, 2));
 */
export function ingestTable(rows: IngestResult[], machineCores = 2): string {
  return [
    '| Ingest processes × cores each | Events/s acked | Events/s stored | p99 ms | Errors | Cairn throttled | CPU cores: Cairn / PG backends / PG WAL+bg writers / load gen / other | PG active backends; on CPU / Lock / LWLock / IO; ungranted locks | WAL bytes / event | Buffers written / event | Blocks touched / event | PG CPU-ms / event | Cairn CPU-ms / event | Rows read by seq scans | Bottleneck |',
    '|---|--:|--:|--:|--:|--:|---|---|--:|--:|--:|--:|--:|---|---|',
    ...rows.map(
      (x) =>
        `| ${x.processes} × ${x.quota} | ${int(x.acked)} | ${int(x.stored)} | ${int(x.p99)} | ${x.errors} | ${pct(x.throttled)} | ${cores(x)} | ${waits(x)} | ${perEvent(x, x.stored)} | ${x.seqScans.join(', ') || '-'} | ${bottleneck(x, machineCores)} |`,
    ),
  ].join('\n');
}

/**
 * The worker sweep as a Markdown table.
 *
 * @example
 * console.log(workerTable(report.workers, 2));
 */
export function workerTable(rows: WorkerResult[], machineCores = 2): string {
  return [
    '| Worker processes × cores each | Attached/s (stage 2) | Computed/s (stage 3) | Fanned out/s | Delivered/s | Backlog at start → end | Cairn throttled | CPU cores: Cairn / PG backends / PG WAL+bg writers / load gen / other | PG active backends; on CPU / Lock / LWLock / IO; ungranted locks | WAL bytes / event | Buffers written / event | Blocks touched / event | PG CPU-ms / event | Cairn CPU-ms / event | Rows read by seq scans | Bottleneck |',
    '|---|--:|--:|--:|--:|---|--:|---|---|--:|--:|--:|--:|--:|---|---|',
    ...rows.map(
      (x) =>
        `| ${x.processes} × ${x.quota} | ${int(x.stages.identify!)} | ${int(x.stages.compute!)} | ${int(x.stages.fanout!)} | ${int(x.delivered)} | ${int(x.backlog[0])} → ${int(x.backlog[1])} | ${pct(x.throttled)} | ${cores(x)} | ${waits(x)} | ${perEvent(x, x.perEvent)} | ${x.seqScans.join(', ') || '-'} | ${bottleneck(x, machineCores)} |`,
    ),
  ].join('\n');
}

const START = '<!-- bench:scale:start (written by npm run bench:scale -- --write) -->';
const END = '<!-- bench:scale:end -->';

function section(r: Report): string {
  const m = r.machine;
  const others = Math.max(...[...r.ingest, ...r.workers].map((x) => x.cpu.other));
  return [
    START,
    `### Results of ${r.date}${r.quick ? ' (--quick)' : ''}`,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB; Node ${m.node}; PostgreSQL ${m.postgres} on the same machine ` +
      `(${Object.entries(m.pgSettings)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}). Speed index ${m.speedIndex?.[0].toFixed(0)} before, ${m.speedIndex?.[1].toFixed(0)} after. ` +
      `The run took ${r.minutes.toFixed(1)} minutes.`,
    '',
    others > 0.15
      ? `**Not a quiet machine**: other people's processes used up to ${others.toFixed(2)} cores during a configuration (the \`other\` column). ` +
        'Every events/s figure below is lower than this machine gives when quiet, and the cluster-wide WAL and buffer counters include ' +
        "other databases' writes; the per-event CPU-ms figures are the least disturbed. To be re-run on a quiet machine."
      : 'Other processes stayed under 0.15 cores in every configuration (the `other` column).',
    '',
    `Ingest: \`POST /v1/batch\` with 100 events, ${r.concurrency} requests in flight per process, ${r.durationS} s per configuration.`,
    '',
    ingestTable(r.ingest, m.cores),
    '',
    `Workers: ${r.people.toLocaleString('en-US')} identified people (sign-ups, then page, track and identify events, as bench:deliver sends them), ` +
      `one webhook destination, one audience; at least ${r.backlog.toLocaleString('en-US')} events waiting when each configuration starts, measured for ${r.windowS} s. ` +
      'Per-event costs are per event attached by stage 2.',
    '',
    workerTable(r.workers, m.cores),
    END,
  ].join('\n');
}

/**
 * Writes the results into docs/benchmarks.md between the markers (appends a section the first time).
 *
 * @example
 * writeResults('docs/benchmarks.md', report);
 */
export function writeResults(file: string, report: Report): void {
  const text = readFileSync(file, 'utf8');
  const body = section(report);
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) writeFileSync(file, text.slice(0, a) + body + text.slice(b + END.length));
  else writeFileSync(file, `${text.trimEnd()}\n\n## Scaling curve results\n\n${body}\n`);
}
