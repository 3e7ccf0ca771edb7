import { readFileSync, writeFileSync } from 'node:fs';
import type { Machine } from '../ingest/machine.ts';
import { type DestinationCount, type Percentiles, timelineText } from './analysis.ts';
import type { PgCounters, SendCalls } from './types.ts';

export type { SendCalls } from './types.ts';

import { coresText, type DeliverCpu } from './cpu.ts';
import { activityText, type PgActivity } from './sampler.ts';

// The results of bench:deliver: printed as Markdown tables, and written into docs/benchmarks.md
// between markers so a rerun replaces the previous results and leaves the rest of the page alone.

/**
 * "all three", or how many destinations a run has (`--destinations`).
 *
 * @example
 * allOf(1); // 'the one destination'
 */
export function allOf(n: number): string {
  return n === 3 ? 'all three' : n === 1 ? 'the one destination' : `all ${n}`;
}

/** The p95 budget of event → receiver latency at 1,000 events/s. */
export const P95_BUDGET_MS = 1000;

/** One destination as configured for the run. */
export interface DestinationSetup {
  name: string;
  id: string;
  /** How it is configured, e.g. "single, signed, parallel 8, concurrency 2". */
  description: string;
}

/** One backlog delivered to the destinations. */
export interface ThroughputResult {
  label: string;
  /** What is measured, for the table. */
  what: string;
  events: number;
  destinations: DestinationCount[];
  /** Events/s delivered to all destinations: events / (last arrival anywhere − first arrival anywhere). */
  eventsPerSec: number;
  spanS: number;
  /** From the start of the phase (worker listening, replay requested) to the last arrival. */
  wallS: number;
  /** Ledger rows per destination and status after the phase. */
  ledger: Record<string, Record<string, number>>;
  /** Ledger rows sent more than once. */
  retriedRows: number;
  /** Stage 2 and fan-out in the same window (pipeline phase only). */
  stages?: { identifyPerSec: number; identifySpanS: number; fanoutPerSec: number; fanoutSpanS: number };
  sendCalls: Record<string, SendCalls>;
  /** Jobs put on each destination's queue during the phase. */
  jobs: Record<string, number>;
  /** Postgres transactions (xact_commit) and ledger sequential scans during the phase. */
  pg: PgCounters;
  /** What Postgres was busy with (sampled). */
  activity: PgActivity;
  cpu: DeliverCpu;
}

/** The fixed-rate phase. */
export interface LatencyResult {
  /** How Cairn ran, in a few words ("CAIRN_ROLE=all"), and in a sentence. */
  short: string;
  role: string;
  rate: number;
  perRequest: number;
  durationS: number;
  warmupS: number;
  /** Measured events sent and answered 200. */
  sent: number;
  acked: number;
  requests: number;
  errors: number;
  /** Events answered per second over the phase. */
  achievedRate: number;
  /** Worst delay of the generator behind its schedule. */
  maxLagMs: number;
  /** p99 of the ingest request's answer. */
  ingestP99Ms: number;
  /** Seconds from the last request answered to the last event's last arrival. */
  catchUpS: number;
  /** Whether every event reached every receiver before the benchmark stopped waiting. */
  complete: boolean;
  /** Delivery jobs left queued when the benchmark stopped waiting (removed before the next phase). */
  purgedJobs: number;
  /** Per destination, then all deliveries. */
  rows: Percentiles[];
  /** Where the time goes (all deliveries). */
  steps: Percentiles[];
  /** p50 of the events sent in each third of the phase (all deliveries). */
  p50ByThird: number[];
  /** p50/p95 of the events sent in each slice from the start of the warm-up. */
  timeline: { p50: number; p95: number }[];
  timelineSliceS: number;
  counts: DestinationCount[];
  sendCalls: Record<string, SendCalls>;
  jobs: Record<string, number>;
  pg: PgCounters;
  activity: PgActivity;
  cpu: DeliverCpu;
}

/** Everything a run reports. */
export interface Report {
  date: string;
  command: string;
  machine: Machine;
  loadAverage: number[];
  uptime: string;
  otherCores: number;
  settings: Record<string, string>;
  people: number;
  destinations: DestinationSetup[];
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  notes: string[];
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (n: number) =>
  n === Number.POSITIVE_INFINITY ? '∞' : Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : int(n)) : '-';
const s1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const jobsCell = (jobs: number | undefined, events: number) =>
  jobs ? `${int(jobs)} (${(events / jobs).toFixed(1)})` : '-';

/**
 * The throughput phases as a Markdown table: one row per phase and destination, then one for all.
 *
 * @example
 * console.log(throughputTable(report.throughput));
 */
export function throughputTable(phases: ThroughputResult[]): string {
  const rows: string[] = [];
  for (const p of phases) {
    for (const d of p.destinations) {
      const calls = p.sendCalls[d.name];
      rows.push(
        `| ${p.label} | ${d.name} | ${int(d.expected)} | ${int(d.arrived)} | ${int(d.missing)} | ${int(d.duplicates)} | ${int(d.requests)} | ${jobsCell(p.jobs[d.name], d.expected)} | ${calls ? `${int(calls.calls)}, ${int(calls.meanMs)}` : '-'} | ${s1((d.last - d.first) / 1000)} | ${int(d.eventsPerSec)} | |`,
      );
    }
    const missing = p.destinations.reduce((n, d) => n + d.missing, 0);
    const dups = p.destinations.reduce((n, d) => n + d.duplicates, 0);
    const arrived = p.destinations.reduce((n, d) => n + d.arrived, 0);
    const requests = p.destinations.reduce((n, d) => n + d.requests, 0);
    rows.push(
      `| ${p.label} | **${allOf(p.destinations.length)}** | ${int(p.events * p.destinations.length)} | ${int(arrived)} | ${int(missing)} | ${int(dups)} | ${int(requests)} | | | ${s1(p.spanS)} | **${int(p.eventsPerSec)}** | ${coresText(p.cpu)} |`,
    );
  }
  return [
    '| Phase | Destination | Deliveries expected | Arrived (distinct keys) | Missing | Duplicated keys | Requests | Queue jobs (events per job) | send() calls, mean ms | First → last arrival, s | Events/s | CPU cores: Cairn / Postgres / bench / receivers / other |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
    ...rows,
  ].join('\n');
}

/**
 * The latency results as a Markdown table: per destination, all deliveries, then where the time goes.
 *
 * @example
 * console.log(latencyTable(report.latency));
 */
export function latencyTable(l: LatencyResult): string {
  const row = (r: Percentiles, verdict: string) =>
    `| ${r.label} | ${int(r.count)}${r.missing ? ` (+${int(r.missing)} never arrived)` : ''} | ${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.p99)} | ${ms(r.max)} | ${verdict} |`;
  return [
    '| Event → receiver | Deliveries | p50 ms | p95 ms | p99 ms | max ms | p95 < 1 s |',
    '|---|--:|--:|--:|--:|--:|---|',
    ...l.rows.map((r) => row(r, r.p95 < P95_BUDGET_MS ? 'yes' : '**no**')),
    '',
    '| Step (all deliveries) | Count | p50 ms | p95 ms | p99 ms | max ms | |',
    '|---|--:|--:|--:|--:|--:|---|',
    ...l.steps.map((r) => row(r, '')),
  ].join('\n');
}

function machineLine(r: Report): string {
  const m = r.machine;
  const pg = Object.entries(m.pgSettings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return (
    `${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM; Node ${m.node}; PostgreSQL ${m.postgres} on the same machine ` +
    `(${pg}). Before the run: \`uptime\` ${r.uptime}; other processes used ${r.otherCores.toFixed(2)} cores.` +
    (m.speedIndex
      ? ` Speed index (see Ingest): ${m.speedIndex[0].toFixed(0)} before the run, ${m.speedIndex[1].toFixed(0)} after.`
      : '')
  );
}

/** The budget's verdict in one sentence. */
export function verdictLine(l: LatencyResult): string {
  const worst = l.rows.slice(0, -1).reduce((a, r) => (a.p95 >= r.p95 ? a : r));
  const all = l.rows.at(-1)!;
  const met = l.rows.every((r) => r.p95 < P95_BUDGET_MS) && l.errors === 0 && l.achievedRate >= l.rate * 0.98;
  return (
    `Budget p95 < 1 s at ${int(l.rate)} events/s: **${met ? 'met' : 'not met'}** — p95 ${ms(all.p95)} ms over all deliveries, ` +
    `${ms(worst.p95)} ms at the slowest destination (${worst.label}); ${int(l.achievedRate)} events/s sent and answered, ${l.errors} errors.`
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
  return [
    `### Results of ${r.date}`,
    '',
    `Command: \`${r.command}\`.`,
    '',
    `Machine: ${machineLine(r)}`,
    '',
    `Server: ${settings}. Destinations (webhook plugin, each to its own receiver): ${r.destinations.map((d) => `**${d.name}** (${d.description})`).join('; ')}. ${int(r.people)} people, each with a profile after their sign-up.`,
    '',
    `**Throughput** (${r.throughput.map((p) => `${p.label}: ${p.what}`).join('; ')}):`,
    '',
    throughputTable(r.throughput),
    '',
    'What Postgres was busy with (pg_stat_activity sampled every 50 ms; share of the samples of active backends):',
    '',
    ...r.throughput.map((p) => `- ${p.label}: ${activityText(p.activity)}.`),
    ...r.latency.flatMap((l) => [
      '',
      `**Latency, ${l.role}** (client send time → arrival at the receiver, same clock; ${int(l.rate)} events/s, ${l.perRequest === 1 ? 'one event per request' : `${l.perRequest} events per /v1/batch request`}, for ${l.durationS} s after a ${l.warmupS} s warm-up; ${int(l.acked)} of ${int(l.sent)} events answered 200 (${int(l.achievedRate)}/s), ${l.errors} errors, ingest answer p99 ${ms(l.ingestP99Ms)} ms, generator at most ${ms(l.maxLagMs)} ms behind schedule; ${l.complete ? `every event had reached ${l.counts.length === 1 ? 'the receiver' : `all ${l.counts.length} receivers`} ${s1(l.catchUpS)} s after the last request was answered` : `${int(l.rows.at(-1)!.missing)} deliveries had still not arrived ${s1(l.catchUpS)} s after the last request was answered (∞ below; ${int(l.purgedJobs)} queued jobs were then removed so that they would not run during the next phase)`}; p50 of the events sent in each third of the phase ${l.p50ByThird.map((x) => ms(x)).join(' / ')} ms; p50/p95 ms of the events sent in each ${l.timelineSliceS} s from the first request (the warm-up before the bar, the server started just before it) ${timelineText(l.timeline, l.warmupS / l.timelineSliceS)}; CPU cores Cairn / Postgres / bench / receivers / other: ${coresText(l.cpu)}):`,
      '',
      latencyTable(l),
      '',
      verdictLine(l),
      '',
      `Postgres during the phase (pg_stat_activity sampled every 50 ms): ${activityText(l.activity)}. Queue jobs (warm-up included): ${Object.entries(
        l.jobs,
      )
        .map(([k, v]) => `${k} ${int(v)}`)
        .join(', ')}.`,
    ]),
    ...(r.notes.length ? ['', 'Notes:', '', ...r.notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}

/**
 * Writes the results into docs/benchmarks.md between the bench:deliver markers, or appends them under
 * a Delivery heading when the page has no markers yet. A run with other destinations than the full
 * set (`--destinations=signed`) has markers of its own (`bench:deliver[signed]`), so both are kept.
 *
 * @example
 * writeResults('docs/benchmarks.md', report);
 */
export function writeResults(file: string, report: Report, key = ''): void {
  const tag = key ? `bench:deliver[${key}]` : 'bench:deliver';
  const START = `<!-- ${tag}:start (written by npm run bench:deliver -- --write${key ? ` --destinations=${key}` : ''}) -->`;
  const END = `<!-- ${tag}:end -->`;
  const section = `${START}\n${reportText(report)}\n${END}`;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) {
    writeFileSync(file, text.slice(0, a) + section + text.slice(b + END.length));
    return;
  }
  // A keyed section goes right after the full run's.
  const main = text.indexOf('<!-- bench:deliver:end -->');
  if (key && main >= 0) {
    const at = main + '<!-- bench:deliver:end -->'.length;
    writeFileSync(file, `${text.slice(0, at)}\n\n${section}${text.slice(at)}`);
    return;
  }
  writeFileSync(file, `${text.trimEnd()}\n\n## Delivery\n\nReproduce with \`npm run bench:deliver\`.\n\n${section}\n`);
}
