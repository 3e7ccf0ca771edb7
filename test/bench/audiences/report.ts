import { readFileSync, writeFileSync } from 'node:fs';
import type { Percentiles } from '../deliver/analysis.ts';
import type { CpuUse, Machine } from '../ingest/machine.ts';
import type { LoadResult } from './data.ts';
import type { LatencyResult } from './latency.ts';
import type { ApiRecompute, Evaluation } from './recompute.ts';
import { activityText } from './sampler.ts';
import type { ExitResult, SweepRun } from './sweep.ts';

// The results of bench:audiences as Markdown, written into docs/benchmarks.md between markers so a
// rerun replaces the previous results and leaves the rest of the page alone.

/** One audience of the recompute phase: the statement alone and the full path. */
export interface RecomputeRow {
  api: ApiRecompute;
  evaluation: Evaluation;
}

/** Everything a run reports. */
export interface Report {
  date: string;
  command: string;
  machine: Machine;
  loadBefore: number[];
  loadAfter: number[];
  otherCores: number;
  /** Which code was measured (commit, and stage 3 files changed in the working tree). */
  code: string;
  settings: Record<string, string>;
  load: LoadResult;
  recomputes: RecomputeRow[];
  /** POST /api/audiences/:key/recompute of the budget audience, nothing changing. */
  again?: ApiRecompute;
  latency: LatencyResult[];
  sweepSetup?: { audiences: number; members: number; seconds: number };
  sweeps: SweepRun[];
  exit?: ExitResult;
  verdicts: string[];
  notes: string[];
  wholeRunS: number;
}

const START = '<!-- bench:audiences:start (written by npm run bench:audiences -- --write) -->';
const END = '<!-- bench:audiences:end -->';

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (n: number) =>
  n === Number.POSITIVE_INFINITY ? '∞' : Number.isFinite(n) ? (n < 10 ? n.toFixed(1) : int(n)) : '-';
const sec = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '-');
const mib = (bytes: number) => `${int(bytes / 2 ** 20)} MiB`;
const cores = (c: CpuUse) => [c.cairn, c.postgres, c.loadgen, c.other].map((x) => x.toFixed(2)).join(' / ');

/**
 * The tables and the indexes the load made, with their sizes.
 *
 * @example
 * console.log(setupTable(report.load));
 */
export function setupTable(load: LoadResult): string {
  const rows = load.tables.map((t) => `| ${t.name} | ${int(t.rows)} | ${mib(t.heap)} | ${mib(t.indexes)} |`);
  return ['| Table | Rows | Heap | Indexes |', '|---|--:|--:|--:|', ...rows].join('\n');
}

/**
 * The recompute phase: per audience, the statement alone and the whole path through the server.
 *
 * @example
 * console.log(recomputeTable(report.recomputes));
 */
export function recomputeTable(rows: RecomputeRow[], again?: ApiRecompute): string {
  const lines = rows.map(({ api, evaluation: e }) => {
    const members = e.membersMs.map(ms).join(' / ');
    if (api.error) {
      return `| \`${api.key}\`: ${api.words} | ${int(e.members)} | ${members} | ${ms(e.truthMs)} | **failed** after ${sec(api.seconds)} s: \`${api.error}\` (pg-boss retries it) | | | | ${cores(api.cpu)} |`;
    }
    return `| \`${api.key}\`: ${api.words} | ${int(e.members)} | ${members} | ${ms(e.truthMs)} | **${sec(api.seconds)}** | ${sec(api.queuedS)} / ${sec(api.runS)} | ${int(api.members)} | ${int(api.enteredEvents)} (${sec(api.eventsS)}) | ${cores(api.cpu)} |`;
  });
  if (again) {
    lines.push(
      `| \`${again.key}\` again (\`POST /api/audiences/${again.key}/recompute\`, nothing changes) | | | | **${sec(again.seconds)}** | ${sec(again.queuedS)} / ${sec(again.runS)} | ${int(again.members)} | 0 | ${cores(again.cpu)} |`,
    );
  }
  return [
    '| Audience | Members | evaluateRule ms (1st / 2nd) | Truth statement ms (every profile, in Postgres) | API: POST → `computedAt`, s | Job queued / ran (incl. handing change events to fan-out), s | Members (API) | audience.entered events (all recorded, s after POST) | CPU cores: Cairn / Postgres / bench / other |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
    ...lines,
  ].join('\n');
}

/**
 * The nodes of the evaluation plan that take at least 3% of the time.
 *
 * @example
 * console.log(planTable(evaluation));
 */
export function planTable(e: Evaluation): string {
  if (!e.plan) return '';
  const lines = e.plan.nodes.map(
    (n) =>
      `| ${'&nbsp;&nbsp;'.repeat(n.depth)}${n.label}${n.workers ? ` (${n.workers} workers)` : ''} | ${int(n.rows)} | ${int(n.loops)} | ${ms(n.ms)} | ${int(n.hit)} / ${int(n.read)} |`,
  );
  return [
    `EXPLAIN (ANALYZE, BUFFERS) of the members statement: execution ${ms(e.plan.executionMs)} ms, planning ${ms(e.plan.planningMs)} ms; nodes taking at least 3% of the time (inclusive of their children):`,
    '',
    '| Plan node | Rows | Loops | ms | Buffers hit / read |',
    '|---|--:|--:|--:|--:|',
    ...lines,
  ].join('\n');
}

function percentileRows(rows: Percentiles[]): string[] {
  return rows.map(
    (p) =>
      `| ${p.label} | ${int(p.count)} | ${int(p.missing)} | ${ms(p.p50)} | ${ms(p.p95)} | ${ms(p.p99)} | ${ms(p.max)} |`,
  );
}

/**
 * One latency run: send → visible membership, and its steps.
 *
 * @example
 * console.log(latencyTable(report.latency[0]));
 */
export function latencyTable(l: LatencyResult): string {
  return [
    '| Measure (ms) | Count | Missing | p50 | p95 | p99 | max |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...percentileRows(l.rows).map((r, i) => (i === 0 ? r.replace(/^\| ([^|]+?) \|/, '| **$1** |') : r)),
    ...percentileRows(l.steps),
  ].join('\n');
}

/**
 * The sweeps the benchmark called, one row each.
 *
 * @example
 * console.log(sweepTable(report.sweeps));
 */
export function sweepTable(runs: SweepRun[]): string {
  return [
    '| Sweep | Rule time covered | Candidates (distinct) | Audiences with candidates | Evaluations | Entered | Exited | Edge statements alone, ms | Sweep, ms |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...runs.map(
      (r) =>
        `| ${r.label} | ${r.spanS >= 120 ? `${(r.spanS / 60).toFixed(0)} min` : `${r.spanS.toFixed(0)} s`} | ${int(r.candidates)} (${int(r.distinct)}) | ${int(r.audiencesWithCandidates)} | ${int(r.evaluated)} | ${int(r.entered)} | ${int(r.exited)} | ${ms(r.edgesMs)} | **${ms(r.ms)}** |`,
    ),
  ].join('\n');
}

/**
 * Exits after a window's boundary, with the server's own sweep.
 *
 * @example
 * console.log(exitTable(report.exit));
 */
export function exitTable(x: ExitResult): string {
  return [
    '| Measure (ms after the boundary) | Count | Missing | p50 | p95 | p99 | max |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...percentileRows([x.exitSeen, x.exitAt]),
  ].join('\n');
}

function observedText(sweeps: { ms: number }[]): string {
  const d = sweeps.map((s) => s.ms).sort((a, b) => a - b);
  if (!d.length) return 'no sweep was observed';
  return `${d.length} sweeps observed, ${ms(d[Math.floor(d.length / 2)]!)} ms median, ${ms(d[d.length - 1]!)} ms longest`;
}

function latencyText(l: LatencyResult): string {
  return `${l.label}: ${int(l.rate)} events/s for ${l.durationS} s after a ${l.warmupS} s warm-up, ${l.definitions} audiences defined; ${int(l.sent)} sent, ${int(l.acked)} answered 200 (${int(l.errors)} errors, ingest p99 ${ms(l.ingestP99Ms)} ms, generator at most ${ms(l.maxLagMs)} ms late); ${int(l.entered)} profiles entered, ${int(l.misattached)} events attached to another profile than meant; the last entry was seen ${l.catchUpS.toFixed(1)} s after the last send; memberships polled every ${l.pollMs.toFixed(0)} ms on average; CPU cores Cairn / Postgres / bench / other: ${cores(l.cpu)}; speed index ${l.speed[0].toFixed(0)} just before, ${l.speed[1].toFixed(0)} just after; Postgres: ${activityText(l.activity)}. The server's own sweep meanwhile: ${observedText(l.sweeps)}; over the last 15 s of sending, the edges of the time-bound audiences find ${int(l.edges.candidates)} candidates (${int(l.edges.distinct)} profiles, ${int(l.edges.audiences)} audiences), while ${int(l.futureDated)} of the events sent were stored before their timestamp.`;
}

/**
 * The whole section.
 *
 * @example
 * const text = reportText(report);
 */
export function reportText(r: Report): string {
  const m = r.machine;
  const settings = Object.entries(m.pgSettings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const load = r.load;
  const out: string[] = [
    `### Results of ${r.date}`,
    '',
    `Command: \`${r.command}\`. Code measured: ${r.code}.`,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM; Node ${m.node}; PostgreSQL ${m.postgres} on the same machine (${settings}). Load average before the run ${r.loadBefore.map((x) => x.toFixed(2)).join(', ')}, after it ${r.loadAfter.map((x) => x.toFixed(2)).join(', ')}; other processes used ${r.otherCores.toFixed(2)} cores just before it. Speed index (see Ingest): ${m.speedIndex ? `${m.speedIndex[0].toFixed(0)} before the run, ${m.speedIndex[1].toFixed(0)} after` : '-'}.`,
    '',
    `Server: ${Object.entries(r.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}.`,
    '',
    `**Data** (generated in SQL): ${int(load.profiles)} profiles, ${int(load.identities)} identities, ${int(load.traits)} traits, ${int(load.events)} events over 180 days, in ${load.seconds.total.toFixed(0)} s (rows ${load.seconds.rows.toFixed(0)} s, indexes ${load.seconds.indexes.toFixed(0)} s, VACUUM ANALYZE ${load.seconds.vacuum.toFixed(0)} s). Sizes at the end of the run:`,
    '',
    setupTable(load),
    '',
    '**Full recompute** over every live profile: the statement alone (called from the benchmark, server idle) and the whole path through the server:',
    '',
    recomputeTable(r.recomputes, r.again),
    '',
  ];
  const budget = r.recomputes[0];
  if (budget?.evaluation.plan) out.push(planTable(budget.evaluation), '');
  for (const { api } of r.recomputes)
    out.push(`- Postgres during \`${api.key}\`'s full path: ${activityText(api.activity)}.`);
  if (r.again)
    out.push(`- Postgres during the recompute of \`${r.again.key}\` again: ${activityText(r.again.activity)}.`);
  out.push('');
  for (const l of r.latency) {
    out.push(`**Event → membership** (${latencyText(l)})`, '', latencyTable(l), '');
  }
  if (r.sweepSetup) {
    out.push(
      `**Sweep**: ${int(r.sweepSetup.audiences)} time-window audiences stored with their ${int(r.sweepSetup.members)} members (set-based, the compiler's members statement; ${r.sweepSetup.seconds.toFixed(0)} s), beside the audiences above.`,
      '',
    );
  }
  if (r.exit) {
    out.push(
      `Time-window exits with the server's own sweep (every ${r.exit.sweepSeconds} s): \`performed "Bench Pulse" in the last ${r.exit.windowMinutes} minutes\`, one event each for ${int(r.exit.profiles)} profiles (${int(r.exit.entered)} seen entering); ${observedText(r.exit.sweeps)} (duration = the lease row's \`updated_at\` − the sweep's rule instant):`,
      '',
      exitTable(r.exit),
      '',
    );
  }
  if (r.sweeps.length) {
    out.push(
      "Sweeps called by the benchmark (`sweepOnce`, server stopped), each from the previous one's instant:",
      '',
      sweepTable(r.sweeps),
      '',
    );
    for (const s of r.sweeps)
      if (s.activity) out.push(`- Postgres during the sweep ${s.label}: ${activityText(s.activity)}.`);
    out.push('');
  }
  out.push('Budgets:', '', ...r.verdicts.map((v) => `- ${v}`), '');
  if (r.notes.length) out.push('Notes:', '', ...r.notes.map((n) => `- ${n}`), '');
  out.push(`Whole run: ${(r.wholeRunS / 60).toFixed(1)} minutes.`);
  return out.join('\n');
}

/**
 * Replaces the results between the markers in docs/benchmarks.md (or appends a section).
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
  writeFileSync(
    file,
    `${text.trimEnd()}\n\n## Audiences\n\nReproduce with \`npm run bench:audiences\`.\n\n${section}\n`,
  );
}
