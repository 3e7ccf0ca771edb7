import { readFileSync, writeFileSync } from 'node:fs';
import type { CpuUse, Machine } from '../ingest/machine.ts';

// The results of bench:identify: printed as Markdown tables, and written into docs/benchmarks.md
// between markers so a rerun replaces the previous results and leaves the rest of the page alone.

/** How the 100,000 profiles were made, and what they hold. */
export interface SetupResult {
  method: 'bulk' | 'pipeline';
  people: number;
  visitors: number;
  profiles: number;
  events: number;
  identities: number;
  links: number;
  traits: number;
  seconds: number;
  /** Setup through the pipeline: stage 2's rate on it. */
  pipelineEventsPerSec?: number;
  /** The check of the bulk state against the pipeline's, when it ran. */
  check?: string;
}

/** One drain of a backlog by stage 2 workers. */
export interface DrainResult {
  /** How the backlog was stored (events per request, requests at a time). */
  backlog: string;
  eventsPerJob: number;
  workers: number;
  events: number;
  known: number;
  fresh: number;
  merging: number;
  /** Seconds from the first to the last processed_at. */
  spanS: number;
  eventsPerSec: number;
  /** Seconds from the worker process listening to the benchmark seeing every event processed. */
  wallS: number;
  wallEventsPerSec: number;
  merges: number;
  created: number;
  refusals: number;
  /** Transactions rolled back in the database during the drain (stage 2 retries after lock conflicts or deadlocks). */
  rollbacks: number;
  deadlocks: number;
  /** Sequential scans of stage 2's tables during the drain (pg_stat_user_tables), e.g. "identity_links 31 (12.8M rows read)". */
  seqScans: string[];
  /** identify jobs claimed more than once. */
  reclaimedJobs: number;
  /** Stage 2 transactions restarted (the server's cairn_identify_retries_total; NaN if it has none). */
  retries: number;
  /** Mean duration and events of one worker call (a batch of up to 50 jobs). */
  msPerCall: number;
  eventsPerCall: number;
  cpu: CpuUse;
}

/** Latency percentiles of one kind of event. */
export interface LatencyRow {
  label: string;
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** The fixed-rate phase: events sent one per request, latency from received_at to processed_at. */
export interface LatencyResult {
  workers: number;
  rate: number;
  durationS: number;
  /** Seconds of the same load sent first and not counted. */
  warmupS: number;
  sent: number;
  errors: number;
  /** Seconds from the last send until every event was processed. */
  catchUpS: number;
  /** p50 of the events received in the first, second and last third of the phase. */
  p50ByThird: number[];
  /** identify jobs of the phase (one per group commit), and the worker calls that took them. */
  jobs: number;
  eventsPerCall: number;
  msPerCall: number;
  rows: LatencyRow[];
  cpu: CpuUse;
}

/** Everything a run reports. */
export interface Report {
  date: string;
  command: string;
  machine: Machine;
  loadAverage: number[];
  otherCores: number;
  settings: Record<string, string>;
  setup: SetupResult;
  drains: DrainResult[];
  latency: LatencyResult | null;
  notes: string[];
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : '-');
const cores = (c: CpuUse) =>
  `${c.cairn.toFixed(2)} / ${c.postgres.toFixed(2)} / ${c.loadgen.toFixed(2)} / ${c.other.toFixed(2)}`;

/** Events processed per CPU-second of Cairn + Postgres (the benchmark process only polls). */
export function perCpuSecond(eventsPerSec: number, c: CpuUse): number {
  return eventsPerSec / (c.cairn + c.postgres);
}

/**
 * The drain results as a Markdown table.
 *
 * @example
 * console.log(drainTable(report.drains));
 */
export function drainTable(drains: DrainResult[]): string {
  return [
    '| Backlog stored | Events per job | Workers | Events (known / new / merging) | Events/s | Events/s, wall | Merges | New profiles | Retries (rolled-back tx) | Per worker call: events, ms | Events per CPU-s | CPU cores: Cairn / Postgres / bench / other |',
    '|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|',
    ...drains.map(
      (d) =>
        `| ${d.backlog} | ${d.eventsPerJob.toFixed(1)} | ${d.workers} | ${int(d.events)} (${int(d.known)} / ${int(d.fresh)} / ${int(d.merging)}) | **${int(d.eventsPerSec)}** | ${int(d.wallEventsPerSec)} | ${int(d.merges)} | ${int(d.created)} | ${int(d.retries)} (${int(d.rollbacks)}) | ${int(d.eventsPerCall)}, ${int(d.msPerCall)} | ${int(perCpuSecond(d.eventsPerSec, d.cpu))} | ${cores(d.cpu)} |`,
    ),
  ].join('\n');
}

/**
 * The latency results as a Markdown table.
 *
 * @example
 * console.log(latencyTable(report.latency));
 */
export function latencyTable(l: LatencyResult): string {
  return [
    '| Events | Count | p50 ms | p95 ms | p99 ms | max ms |',
    '|---|--:|--:|--:|--:|--:|',
    ...l.rows.map(
      (r) => `| ${r.label} | ${int(r.count)} | ${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.p99)} | ${ms(r.max)} |`,
    ),
  ].join('\n');
}

function machineLine(r: Report): string {
  const m = r.machine;
  const pg = Object.entries(m.pgSettings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return (
    `${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM; Node ${m.node}; PostgreSQL ${m.postgres} on the same machine ` +
    `(${pg}). Load average before the run ${r.loadAverage.map((x) => x.toFixed(2)).join(', ')}; other processes ` +
    `used ${r.otherCores.toFixed(2)} cores just before it.` +
    (m.speedIndex
      ? ` Speed index (see Ingest): ${m.speedIndex[0].toFixed(0)} before the run, ${m.speedIndex[1].toFixed(0)} after.`
      : '')
  );
}

function setupLine(s: SetupResult): string {
  const how =
    s.method === 'bulk'
      ? `bulk SQL (COPY of the state stage 2 produces, computed with its own functions) in ${s.seconds.toFixed(0)} s`
      : `the real pipeline (HTTP ingest, then identify workers) in ${s.seconds.toFixed(0)} s, stage 2 at ${int(s.pipelineEventsPerSec ?? Number.NaN)} events/s`;
  return (
    `${int(s.people)} identified people (userId, email, 1–2 anonymousIds, 3 or 5 events) and ${int(s.visitors)} anonymous ` +
    `visitors (2 events) = ${int(s.profiles)} profiles, ${int(s.events)} events, ${int(s.identities)} identities, ` +
    `${int(s.links)} identity links, ${int(s.traits)} traits; built by ${how}, then VACUUM ANALYZE.` +
    (s.check ? ` ${s.check}` : '')
  );
}

/**
 * The whole report as Markdown (the section of docs/benchmarks.md this benchmark owns, without markers).
 *
 * @example
 * console.log(reportText(report));
 */
export function reportText(r: Report): string {
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const l = r.latency;
  return [
    `### Results of ${r.date}`,
    '',
    `Command: \`${r.command}\`.`,
    '',
    `Machine: ${machineLine(r)}`,
    '',
    `Setup: ${setupLine(r.setup)}`,
    '',
    `Server: ${settings}.`,
    '',
    '**Throughput** (a backlog stored by an ingest node, then drained by one worker process; events/s from the first to the last `processed_at`):',
    '',
    drainTable(r.drains),
    ...(l
      ? [
          '',
          `**Latency** (\`received_at\` → \`processed_at\`; ${int(l.rate)} events/s for ${l.durationS} s after a ${l.warmupS} s warm-up, one event per request, to one server running ingest and ${l.workers} identify workers; ${int(l.sent)} sent, ${l.errors} errors; stage 2 was done ${l.catchUpS.toFixed(1)} s after the last send; p50 of the events received in each third of the phase ${l.p50ByThird.map((x) => ms(x)).join(' / ')} ms; CPU cores Cairn / Postgres / bench / other: ${cores(l.cpu)}):`,
          '',
          latencyTable(l),
        ]
      : []),
    ...(r.notes.length ? ['', 'Notes:', '', ...r.notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}

const START = '<!-- bench:identify:start (written by npm run bench:identify -- --write) -->';
const END = '<!-- bench:identify:end -->';

/**
 * Writes the results into docs/benchmarks.md between the bench:identify markers, or appends them
 * under a heading of their own when the page has no markers yet.
 *
 * @example
 * writeResults('docs/benchmarks.md', report);
 */
export function writeResults(file: string, report: Report): void {
  const section = `${START}\n${reportText(report)}\n${END}`;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) {
    writeFileSync(file, text.slice(0, a) + section + text.slice(b + END.length));
    return;
  }
  writeFileSync(file, `${text.trimEnd()}\n\n## Identity resolution results\n\n${section}\n`);
}
