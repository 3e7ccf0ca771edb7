import { type PhaseResult, perCpuSecond, type Verdict } from './report.ts';

// The budgets of DESIGN.md ("Performance budgets") and how a run measures up to them.

/** Other processes using more than this many cores make a phase's numbers suspect. */
export const QUIET_CORES = 0.15;

/** The ingest budgets for a 2-core machine with Postgres on it. */
export const BUDGET = Object.freeze({
  batchedEventsPerSec: 20_000,
  rawRatio: 0.5,
  singleRequestsPerSec: 5_000,
  p99Ms: 50,
});

/**
 * Compares a run with the budgets and explains it: CPU per event, the share of the raw reference,
 * and whether other processes disturbed it.
 *
 * @example
 * const { verdicts, notes } = judge(phases, { rate: 1000, batch: [4, 16, 32] });
 */
export function judge(
  phases: PhaseResult[],
  opt: { rate: number; batch: number[] },
): { verdicts: Verdict[]; notes: string[] } {
  const best = (match: (p: PhaseResult) => boolean, key: 'eventsPerSec' | 'requestsPerSec') =>
    phases.filter(match).reduce<PhaseResult | undefined>((a, p) => (a && a[key] >= p[key] ? a : p), undefined);
  const batched = best((p) => p.name.startsWith('Cairn /v1/batch'), 'eventsPerSec');
  const bestSingle = best((p) => p.name === 'Cairn /v1/track', 'requestsPerSec');
  const raw = best((p) => p.name.startsWith('raw INSERT'), 'eventsPerSec');
  const copy = best((p) => p.name.startsWith('raw COPY ('), 'eventsPerSec');
  const copyDedup = best((p) => p.name.startsWith('raw COPY+dedup'), 'eventsPerSec');
  const open = phases.find((p) => p.name.includes('open loop'));
  const fmt = (n: number | undefined) => Math.round(n ?? 0).toLocaleString('en-US');
  const ratio = batched && raw ? batched.eventsPerSec / raw.eventsPerSec : 0;
  const out: Verdict[] = [
    {
      budget: `batched >= ${fmt(BUDGET.batchedEventsPerSec)} events/s`,
      measured: `${fmt(batched?.eventsPerSec)} events/s (best, ${batched?.load})`,
      met: (batched?.eventsPerSec ?? 0) >= BUDGET.batchedEventsPerSec && batched?.errors === 0,
    },
    {
      budget: `batched >= ${BUDGET.rawRatio * 100}% of the raw INSERT reference`,
      measured: `${(ratio * 100).toFixed(0)}% (${fmt(batched?.eventsPerSec)} / ${fmt(raw?.eventsPerSec)} events/s, best of each)`,
      met: ratio >= BUDGET.rawRatio,
    },
    {
      budget: `single events >= ${fmt(BUDGET.singleRequestsPerSec)} requests/s`,
      measured: `${fmt(bestSingle?.requestsPerSec)} requests/s (best, ${bestSingle?.load})`,
      met: (bestSingle?.requestsPerSec ?? 0) >= BUDGET.singleRequestsPerSec && bestSingle?.errors === 0,
    },
    {
      budget: `p99 < ${BUDGET.p99Ms} ms at ${fmt(opt.rate)} requests/s`,
      measured: open
        ? `p50 ${open.p50.toFixed(1)} ms, p95 ${open.p95.toFixed(1)} ms, p99 ${open.p99.toFixed(1)} ms at ${fmt(open.requestsPerSec)} answered/s, ${open.errors} errors`
        : 'not run',
      met: !!open && open.p99 < BUDGET.p99Ms && open.errors === 0 && open.requestsPerSec >= opt.rate * 0.98,
    },
  ];
  const notes: string[] = [];
  const cost = (p: PhaseResult | undefined) => {
    if (!p) return 'n/a';
    const us = (cores: number) => ((cores / p.eventsPerSec) * 1e6).toFixed(0);
    const { cairn, postgres, loadgen } = p.cpu;
    return `${us(cairn + postgres + loadgen)} µs (Cairn ${us(cairn)} + Postgres ${us(postgres)} + load generator ${us(loadgen)})`;
  };
  notes.push(
    `CPU per event, batched (${batched?.load}): ${cost(batched)}; raw INSERT (${raw?.load}): ${cost(raw)}. ` +
      `CPU per request, single events (${bestSingle?.load}): ${cost(bestSingle)}.`,
  );
  if (batched && raw) {
    notes.push(
      `Per CPU-second, Cairn stores ${((perCpuSecond(batched) / perCpuSecond(raw)) * 100).toFixed(0)}% of what the raw INSERT stores (a ratio that other processes on the machine disturb less than events/s).`,
    );
  }
  const noisy = phases.filter((p) => p.cpu.other > QUIET_CORES);
  if (noisy.length) {
    const worst = noisy.reduce((a, p) => (a.cpu.other >= p.cpu.other ? a : p));
    notes.push(
      `Not a quiet machine: other processes used more than ${QUIET_CORES} cores in ${noisy.length} of ${phases.length} phases ` +
        `(up to ${worst.cpu.other.toFixed(2)} in ${worst.name} ${worst.load}); those rows understate what Cairn and Postgres can do.`,
    );
  }
  const references: Array<[string, PhaseResult | undefined]> = [
    ['plain COPY', copy],
    ['COPY into a staging table + INSERT ... ON CONFLICT DO NOTHING (deduplicating, like Cairn)', copyDedup],
  ];
  for (const [label, ref] of references) {
    if (!ref || !batched) continue;
    notes.push(
      `Reference ${label}: ${fmt(ref.eventsPerSec)} events/s (${ref.load}), CPU per event ${cost(ref)}; ` +
        `Cairn batched is ${((batched.eventsPerSec / ref.eventsPerSec) * 100).toFixed(0)}% of it.`,
    );
  }
  for (const c of opt.batch) {
    const a = phases.find((p) => p.name.startsWith('Cairn /v1/batch') && p.load === `c=${c}`);
    const b = phases.find((p) => p.name.startsWith('raw INSERT') && p.load === `c=${c}`);
    if (a && b)
      notes.push(
        `c=${c}: Cairn ${fmt(a.eventsPerSec)} vs raw INSERT ${fmt(b.eventsPerSec)} events/s = ${((a.eventsPerSec / b.eventsPerSec) * 100).toFixed(0)}%.`,
      );
  }
  return { verdicts: out, notes };
}
