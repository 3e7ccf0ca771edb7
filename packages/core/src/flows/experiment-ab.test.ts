/**
 * The must-show for "A/B and holdouts that decide": on synthetic data with a known true lift
 * the sample-then-winner node picks the better variant in the large majority of repeated runs, and
 * with no difference it reports inconclusive at the deadline, its false-winner rate near the nominal
 * level although the runner looks after every batch of people. Seeded, so every run repeats.
 */
import { describe, expect, it } from 'vitest';
import { binomialDraw, seeded } from '../stats/testing-prng.ts';
import type { ExperimentNode, FlowDefinition } from './ast.ts';
import { advance, enter } from './engine.ts';
import type { ExperimentStatus } from './experiment.ts';
import { type ArmCount, decideExperiment } from './experiment-decide.ts';
import type { RunState, StepResult } from './state.ts';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const DAY = 86_400_000;

function node(arms: number, control: boolean, over: Partial<ExperimentNode['decide']> = {}): ExperimentNode {
  const share = 100 / (arms + (control ? 1 : 0));
  return {
    id: 'ab',
    type: 'experiment',
    variants: Array.from({ length: arms }, (_, i) => ({ name: `V${i}`, percent: share })),
    ...(control ? { control: { percent: share } } : {}),
    sample: 50,
    goal: { event: { event: 'Order Completed' }, withinSeconds: 3600 },
    decide: { deadlineDays: 1, ...over },
  };
}

/**
 * Counts-level runs (the runner's loop without the engine): people arrive in batches of 100 per arm;
 * after each batch the runner looks (decideExperiment) and keeps the first decision. Up to 20,000 per
 * arm, then the deadline.
 */
function countsRuns(rates: number[], withControl: boolean, runs: number, seed: number) {
  const random = seeded(seed);
  const n = node(withControl ? rates.length - 1 : rates.length, withControl, { deadlineDays: 30 });
  const out = { winners: new Map<string, number>(), inconclusive: 0 };
  for (let r = 0; r < runs; r++) {
    const counts: ArmCount[] = rates.map(() => ({ n: 0, conversions: 0 }));
    let status: ExperimentStatus | undefined;
    for (let look = 1; look <= 200 && !status?.decided; look++) {
      for (const [k, p] of rates.entries()) {
        counts[k]!.conversions += binomialDraw(random, 100, p);
        counts[k]!.n += 100;
      }
      const now = T0 + (look === 200 ? 30 * DAY : look * 60_000);
      const variants = withControl ? counts.slice(0, -1) : counts;
      const control = withControl ? { control: counts.at(-1)! } : {};
      status = decideExperiment({ startedAt: T0, variants, ...control }, n, now).status;
    }
    if (!status?.decided) throw new Error('undecided after the deadline');
    if (status.inconclusive) out.inconclusive++;
    else out.winners.set(String(status.winner), (out.winners.get(String(status.winner)) ?? 0) + 1);
  }
  return out;
}

describe('repeated experiments decided from counts (500 runs, a look every 100 per arm up to 20,000)', () => {
  it('with no difference: inconclusive at the deadline, false winners ≤ alpha despite 200 looks', () => {
    const two = countsRuns([0.1, 0.1], false, 500, 21);
    expect(two.inconclusive / 500).toBeGreaterThanOrEqual(0.95 - 0.015);
    const three = countsRuns([0.1, 0.1, 0.1], true, 300, 22);
    expect(three.inconclusive / 300).toBeGreaterThanOrEqual(0.95 - 0.02);
  });

  it('with a true lift (10 % → 13 %): the better variant in the large majority, never the worse', () => {
    const r = countsRuns([0.1, 0.13], false, 500, 23);
    expect((r.winners.get('1') ?? 0) / 500).toBeGreaterThan(0.95);
    expect(r.winners.get('0') ?? 0).toBe(0);
    // Two variants and a holdout: 10 % (control), 10 % and 13 %.
    const c = countsRuns([0.1, 0.13, 0.1], true, 300, 24);
    expect((c.winners.get('1') ?? 0) / 300).toBeGreaterThan(0.9);
    expect((c.winners.get('0') ?? 0) + (c.winners.get('control') ?? 0)).toBe(0);
  });
});

/**
 * End to end through the step function, as the runner will do it: people enter one a minute for a
 * day (the deadline); sampled people get their arm and convert with their arm's rate within the
 * goal window; every 100 sampled people the runner counts those whose window has closed and
 * decides; on a decision every held run gets `replan` and follows the winner; at the deadline the
 * held runs' `due` fires.
 */
function endToEnd(rates: number[], seed: number, runs: number) {
  const random = seeded(seed);
  const n = node(2, false);
  const sends = [0, 1].map((i) => ({
    id: `send_${i}`,
    type: 'send' as const,
    destination: 'email',
    message: { body: `V${i}` },
  }));
  const def: FlowDefinition = {
    version: 1,
    name: 'ab',
    trigger: { type: 'api' },
    entry: { reentry: 'once' },
    nodes: [n, ...sends],
    edges: sends.map((s, i) => ({ from: 'ab', to: s.id, on: `variant:${i}` })),
  };
  const out = { winners: [0, 0], inconclusive: 0, heldMoved: 0, heldSentOther: 0, people: 0 };
  for (let r = 0; r < runs; r++) {
    const flowId = `flow-${seed}-${r}`;
    const assigned: { at: number; arm: number; converted: boolean }[] = [];
    const held: { state: RunState; id: string }[] = [];
    let status: ExperimentStatus = { decided: false, deadline: T0 + DAY };
    const step = (state: RunState, id: string, input: Parameters<typeof advance>[2], now: number): StepResult =>
      advance(def, state, input, {
        now,
        profile: { id, traits: {}, audiences: [], tags: [] },
        experiments: { ab: status },
      });
    const moveHeld = (now: number, input: 'replan' | 'due') => {
      for (const h of held) {
        const res = step(h.state, h.id, { type: input }, now);
        const sent = res.effects.find((e) => e.type === 'send');
        if (!sent) throw new Error(`held run ${h.id} did not move on ${input}`);
        out.heldMoved++;
        if (status.decided && sent.node !== `send_${status.winner}`) out.heldSentOther++;
      }
      held.length = 0;
    };
    let sinceLook = 0;
    for (let k = 0, now = T0; now < T0 + DAY; k++, now += 60_000) {
      const id = `p${k}`;
      out.people++;
      const res = step(enter(def, { runId: `${flowId}-${id}`, flowId, profileId: id, now }), id, { type: 'due' }, now);
      const entry = res.journal.find((j) => j.node === 'ab')!;
      const values = entry.values as { phase: string; arm?: number };
      if (values.phase === 'held') held.push({ state: res.state, id });
      else if (values.phase === 'test') {
        assigned.push({ at: now, arm: values.arm!, converted: random() < rates[values.arm!]! });
        if (++sinceLook < 100) continue;
        sinceLook = 0;
        const counts: ArmCount[] = [0, 1].map(() => ({ n: 0, conversions: 0 }));
        for (const a of assigned)
          if (a.at + 3_600_000 <= now) {
            counts[a.arm]!.n++;
            if (a.converted) counts[a.arm]!.conversions++;
          }
        const decision = decideExperiment({ startedAt: T0, variants: counts }, n, now).status;
        if (decision.decided) {
          status = decision;
          moveHeld(now, 'replan');
        }
      }
    }
    if (!status.decided) {
      status = decideExperiment(
        {
          startedAt: T0,
          variants: [
            { n: 1, conversions: 0 },
            { n: 1, conversions: 0 },
          ],
        },
        n,
        T0 + DAY,
      ).status;
      moveHeld(T0 + DAY, 'due');
    }
    if (!status.decided) throw new Error('undecided at the deadline');
    if (status.inconclusive) out.inconclusive++;
    else out.winners[status.winner as number]!++;
  }
  return out;
}

describe('the sample-then-winner node end to end through advance() (one day, 1,440 entrants, 50 % sample)', () => {
  it('picks the better variant (10 % → 30 %) in the large majority of runs and moves every held person to it', () => {
    const r = endToEnd([0.1, 0.3], 31, 15);
    expect(r.winners[1]! / 15).toBeGreaterThan(0.85);
    expect(r.winners[0]).toBe(0);
    expect(r.heldSentOther).toBe(0);
    expect(r.heldMoved).toBeGreaterThan(0);
  });

  it('reports inconclusive with no difference and sends the default to the held people', () => {
    const r = endToEnd([0.1, 0.1], 32, 15);
    expect(r.inconclusive / 15).toBeGreaterThan(0.8);
    expect(r.heldSentOther).toBe(0);
  });
});
