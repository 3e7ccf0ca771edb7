import type { CpuUse, Machine } from '../ingest/machine.ts';
import type { AudiencePhase } from './audience.ts';
import { fmt, type RelationSize, type Spread } from './cairn.ts';
import type { EventPhase } from './events.ts';
import type { Seeded, TimerPhase } from './timer.ts';

// The text bench:flows prints at the end (markdown, to paste into docs/benchmarks.md by hand).

/** Budgets of issue 17. */
export const BUDGET = { eventP95Ms: 1000, timerP95Ms: 5000, timerMaxMs: 30_000, audienceMs: 60_000, bytesPerRun: 500 };

/** Everything one run measured. */
export interface Report {
  date: string;
  command: string;
  machine: Machine;
  otherCores: number;
  speed: [number, number];
  bare?: { rate: number; p50: number; p95: number; p99: number };
  events?: EventPhase;
  audience?: AudiencePhase;
  storage?: { runs: number; size: RelationSize };
  seeded?: Seeded;
  timer?: TimerPhase;
}

const ms = (s: Spread, scale = 1) =>
  `${(s.p50 / scale).toFixed(scale === 1 ? 0 : 1)} / ${(s.p95 / scale).toFixed(scale === 1 ? 0 : 1)} / ${(s.max / scale).toFixed(scale === 1 ? 0 : 1)}`;
const cores = (c: CpuUse) =>
  `${c.cairn.toFixed(2)} / ${c.postgres.toFixed(2)} / ${c.loadgen.toFixed(2)} / ${c.other.toFixed(2)}`;
const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');

/**
 * The results as markdown.
 *
 * @example
 * console.log(reportText(report));
 */
export function reportText(r: Report): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(
    `Command: \`${r.command}\`, ${r.date}. Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, PostgreSQL ${m.postgres}; other processes kept ${r.otherCores.toFixed(2)} cores busy before the run (${r.otherCores > 0.15 ? 'not quiet' : 'quiet'}); speed index ${r.speed[0].toFixed(0)} before, ${r.speed[1].toFixed(0)} after.`,
    '',
    '| Budget | Measured | Verdict |',
    '|---|---|---|',
  );
  const e = r.events;
  if (e)
    out.push(
      `| Event → first send enqueued, p95 < 1 s at ${fmt(e.rate)} trigger events/s | acceptance → ledger row p95 ${fmt(e.toLedger.p95)} ms (→ run's first step ${fmt(e.toStep.p95)} ms, → arrival at the receiver ${fmt(e.toArrival.p95)} ms) | ${verdict(e.toLedger.p95 < BUDGET.eventP95Ms)} |`,
    );
  const t = r.timer;
  if (t)
    out.push(
      `| Timer: ${fmt(t.runs)} waiting, due over ${t.spreadS} s: p95 < 5 s late, max < 30 s | committed − due p95 ${fmt(t.commitLate.p95)} ms, max ${fmt(t.commitLate.max)} ms (journal time − due p95 ${fmt(t.claimLate.p95)} ms, max ${fmt(t.claimLate.max)} ms); ${fmt(t.unmoved)} runs not stepped | ${verdict(t.commitLate.p95 < BUDGET.timerP95Ms && t.commitLate.max < BUDGET.timerMaxMs && t.unmoved === 0)} |`,
    );
  const a = r.audience;
  if (a)
    out.push(
      `| ${fmt(a.expected)} people entering an audience: all first steps < 60 s | last first step ${(a.firstStep.max / 1000).toFixed(1)} s after the audience's change (${fmt(a.runs)} runs) | ${verdict(a.runs >= a.expected && a.firstStep.max < BUDGET.audienceMs)} |`,
    );
  const st = r.storage;
  if (st)
    out.push(
      `| Bytes per waiting run < 500 | ${fmt(st.size.total / st.runs)} B (${fmt(st.runs)} runs written by the runner)${r.seeded ? `; ${fmt(r.seeded.bytesPerRun)} B for the ${fmt(r.seeded.runs)} seeded ones` : ''} | ${verdict(st.size.total / st.runs < BUDGET.bytesPerRun)} |`,
    );
  out.push('');
  if (r.bare)
    out.push(
      `- **Reference, bare HTTP echo** (\`test/bench/ingest/bare-http.ts\`, same generator, ${fmt(r.bare.rate)} requests/s open loop): answer p50/p95/p99 ${r.bare.p50.toFixed(1)} / ${r.bare.p95.toFixed(1)} / ${r.bare.p99.toFixed(1)} ms.`,
    );
  if (r.seeded)
    out.push(
      `- **Reference, raw INSERT rate**: seeding the waiting runs (set-based \`INSERT … SELECT generate_series\` copying a runner-written run and its ${fmt(r.seeded.journalRows / r.seeded.runs)} journal rows, indexes in place) ran at ${fmt(r.seeded.runsPerSec)} runs/s (${r.seeded.seconds.toFixed(0)} s for ${fmt(r.seeded.runs)}).`,
    );
  if (e)
    out.push(
      `- **Events** (CAIRN_ROLE=all, one event per request, ${fmt(e.rate)}/s for ${e.durationS} s after a ${e.warmupS} s warm-up, ${fmt(e.people)} people): ${fmt(e.acked)} of ${fmt(e.sent)} answered 200, ${e.errors} errors, ingest answer p99 ${fmt(e.ingestP99Ms)} ms, generator at most ${fmt(e.maxLagMs)} ms behind; ${fmt(e.runs)} runs, ${fmt(e.ledgerRows)} ledger rows, ${fmt(e.arrived)} arrived (duplicated keys ${e.duplicates}); the last arrived ${e.catchUpS.toFixed(1)} s after the last send. p50 / p95 / max ms from acceptance (\`received_at\`): stage 2 done (\`processed_at\`) ${ms(e.toProcessed)}; run's first step (journal time) ${ms(e.toStep)}; ledger row (\`created_at\`) ${ms(e.toLedger)}; arrival at the receiver ${ms(e.toArrival)}; client send → arrival ${ms(e.clientToArrival)}. Split: \`processed_at\` → first step ${ms(e.processedToStep)}; first step → ledger row ${ms(e.stepToLedger)}. The \`automate\` queue (stage 4's input): ${fmt(e.automateJobs.n)} jobs of ${e.automateJobs.ids.toFixed(1)} events on average, waiting for the worker p50 / p95 / max ${ms(e.automateJobs.queued)} ms, the worker's call ${ms(e.automateJobs.run)} ms. CPU cores Cairn / Postgres / bench / other: ${cores(e.cpu)}.`,
    );
  if (a)
    out.push(
      `- **Audience** (${fmt(a.expected)} seeded profiles with \`bench_cohort = a\` among ${r.seeded ? fmt(r.seeded.runs + 1) : 'the'} seeded; the audience's rule changed by \`PATCH /api/audiences/:key\`, timed from the request): recompute done (computedAt) ${(a.recomputeMs / 1000).toFixed(1)} s; last \`audience.entered\` event ${(a.eventsMs / 1000).toFixed(1)} s; runs' first step p50 / p95 / max ${ms(a.firstStep, 1000)} s; all ${fmt(a.runs)} runs visible ${(a.allVisibleMs / 1000).toFixed(1)} s; ${fmt(a.members)} members; ledger ${fmt(a.ledgerRows)} rows (last ${(a.ledgerMs / 1000).toFixed(1)} s); ${fmt(a.arrived)} messages arrived (${(a.arrivedMs / 1000).toFixed(1)} s). CPU cores Cairn / Postgres / bench / other: ${cores(a.cpu)}.`,
    );
  if (st)
    out.push(
      `- **Storage** (${fmt(st.runs)} runs waiting at the 7-day wait, written by the runner, after VACUUM ANALYZE): ${fmt(st.size.total)} bytes in all = heap ${fmt(st.size.heap)} + ${st.size.indexes.map((i) => `${i.name} ${fmt(i.bytes)}`).join(' + ')}; per run ${fmt(st.size.total / st.runs)} B (heap ${fmt(st.size.heap / st.runs)}, ${st.size.indexes.map((i) => `${i.name.replace('flow_runs_', '')} ${fmt(i.bytes / st.runs)}`).join(', ')}). The journal (\`flow_steps\`) is apart.`,
    );
  if (t && r.seeded)
    out.push(
      `- **Timer** (${fmt(t.runs)} runs at a one-hour wait, next node \`${r.seeded.next}\`; due times uniform over ${t.spreadS} s; one server CAIRN_ROLE=all started after seeding): ${fmt(t.claimLate.n)} stepped, ${fmt(t.unmoved)} not; ${t.dueAtStart ? `${fmt(t.dueAtStart)} were already due when the server started (seeding overran); ` : ''}late p50 / p95 / max ms: journal time (the claim, runner's clock) − due ${ms(t.claimLate)}, p99 ${fmt(t.claimLate.p99)}; committed − due (watcher of the due index every 200 ms, so up to 200 ms more) ${ms(t.commitLate)}, p99 ${fmt(t.commitLate.p99)}. ${fmt(t.stepsPerSec)} steps/s from the first due time to the last step; per second p50 ${fmt(t.perSecond.p50)}, lowest ${fmt(t.perSecond.min)}, highest ${fmt(t.perSecond.max)}; largest backlog of due runs seen ${fmt(t.maxBacklog)}. CPU cores Cairn / Postgres / bench / other: ${cores(t.cpu)}.${t.dueLagMetric ? ` \`cairn_flow_due_lag_seconds\`: ${t.dueLagMetric}.` : ''}`,
    );
  return out.join('\n');
}
