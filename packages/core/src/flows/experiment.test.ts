import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ExperimentNode, FlowDefinition } from './ast.ts';
import { advance, enter } from './engine.ts';
import { type ExperimentStatus, experimentAssignment } from './experiment.ts';
import { decideExperiment } from './experiment-decide.ts';
import type { ProfileFacts } from './facts.ts';
import { simulate } from './simulate.ts';
import type { RunState } from './state.ts';
import { validateFlow } from './validate.ts';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function experiment(over: Partial<ExperimentNode> = {}): ExperimentNode {
  return {
    id: 'ab',
    type: 'experiment',
    variants: [
      { name: 'Short subject', percent: 50 },
      { name: 'Long subject', percent: 50 },
    ],
    sample: 20,
    goal: { event: { event: 'Order Completed' }, withinSeconds: 3600 },
    decide: { deadlineDays: 7 },
    ...over,
  };
}

function flowOf(node: ExperimentNode): FlowDefinition {
  const sends = node.variants.map((v, i) => ({
    id: `send_${i}`,
    type: 'send' as const,
    destination: 'email',
    message: { subject: v.name, body: 'Hello' },
  }));
  return {
    version: 1,
    name: 'A/B then winner',
    trigger: { type: 'api' },
    entry: { reentry: 'once' },
    nodes: [node, ...sends, ...(node.control ? [{ id: 'done', type: 'exit' as const }] : [])],
    edges: [
      ...sends.map((s, i) => ({ from: 'ab', to: s.id, on: `variant:${i}` })),
      ...(node.control ? [{ from: 'ab', to: 'done', on: 'control' }] : []),
    ],
  };
}

const person = (id: string): ProfileFacts => ({ id, traits: {}, audiences: [], tags: [] });

describe('the experiment node: definition and validation', () => {
  it('validates a sample-then-winner flow and names what is wrong in a bad one', () => {
    expect(validateFlow(flowOf(experiment())).ok).toBe(true);
    const withControl = experiment({
      variants: [
        { name: 'A', percent: 45 },
        { name: 'B', percent: 45 },
      ],
      control: { percent: 10 },
    });
    expect(validateFlow(flowOf(withControl)).ok).toBe(true);

    const bad = validateFlow(
      flowOf(
        experiment({
          variants: [
            { name: 'A', percent: 50 },
            { name: 'A', percent: 40 },
          ],
          decide: { deadlineDays: 0.01, default: 5 },
        }),
      ),
    );
    expect(bad.ok).toBe(false);
    const messages = bad.ok ? [] : bad.issues.map((i) => `${i.path}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringContaining('add up to 90, not 100'),
        expect.stringContaining('variant names must differ'),
        'nodes.0.decide.default: no variant 5: there are 2',
        expect.stringContaining('goal window must be shorter than the deadline'),
      ]),
    );
    // The control needs its edge; an experiment node has no `next`.
    const noControlEdge = flowOf(withControl);
    noControlEdge.edges = noControlEdge.edges.filter((e) => e.on !== 'control');
    const v = validateFlow(noControlEdge);
    expect(v.ok ? [] : v.issues.map((i) => i.message)).toContain(
      'missing edge: a experiment node needs an edge for "control"',
    );
    const structural = validateFlow({ ...flowOf(experiment()), nodes: [{ ...experiment(), sample: 0 }] });
    expect(structural.ok).toBe(false);
  });
});

describe('the experiment node: assignment', () => {
  it('is deterministic per person, and the sample and the arm shares are independent', () => {
    const node = experiment({
      variants: [
        { name: 'A', percent: 45 },
        { name: 'B', percent: 45 },
      ],
      control: { percent: 10 },
    });
    fc.assert(
      fc.property(fc.uuid(), fc.uuid(), (flowId, profileId) => {
        const a = experimentAssignment(flowId, node, profileId);
        expect(experimentAssignment(flowId, node, profileId)).toEqual(a);
        expect(a.sampled).toBe(a.sampleBucket < 2000);
      }),
    );
    const counts = { sampled: 0, arms: [0, 0, 0], sampledArms: [0, 0, 0] };
    const people = 20_000;
    for (let i = 0; i < people; i++) {
      const a = experimentAssignment('flow-1', node, `p${i}`);
      const k = a.arm === 'control' ? 2 : a.arm;
      counts.arms[k]!++;
      if (a.sampled) {
        counts.sampled++;
        counts.sampledArms[k]!++;
      }
    }
    expect(counts.sampled / people).toBeCloseTo(0.2, 1);
    // Within the sample the arms keep their shares (45/45/10).
    expect(counts.sampledArms[2]! / counts.sampled).toBeGreaterThan(0.08);
    expect(counts.sampledArms[2]! / counts.sampled).toBeLessThan(0.12);
    expect(counts.sampledArms[0]! / counts.sampled).toBeGreaterThan(0.42);
  });
});

describe('the experiment node: the step function', () => {
  const node = experiment();
  const def = flowOf(node);
  const inSample = (want: boolean) => {
    for (let i = 0; ; i++) if (experimentAssignment('f1', node, `p${i}`).sampled === want) return `p${i}`;
  };
  const start = (profileId: string, experiments?: Record<string, ExperimentStatus>) =>
    advance(
      def,
      enter(def, { runId: `r-${profileId}`, flowId: 'f1', profileId, now: T0 }),
      { type: 'due' },
      { now: T0, profile: person(profileId), ...(experiments ? { experiments } : {}) },
    );

  it('a sampled person gets their arm at once, with what the runner counts in the journal', () => {
    const id = inSample(true);
    const arm = experimentAssignment('f1', node, id).arm as number;
    const r = start(id);
    expect(r.effects).toEqual([expect.objectContaining({ type: 'send', node: `send_${arm}` })]);
    expect(r.journal.find((j) => j.node === 'ab')).toMatchObject({
      outcome: `variant:${arm}`,
      to: `send_${arm}`,
      values: { phase: 'test', arm },
    });
  });

  it('a person outside the sample waits until the deadline; a replan moves them only once decided', () => {
    const id = inSample(false);
    const deadline = T0 + 5 * DAY;
    const held = start(id, { ab: { decided: false, deadline } });
    expect(held.state).toMatchObject({ status: 'waiting', node: 'ab', due: deadline });
    expect(held.effects).toEqual([]);
    expect(held.journal.at(-1)).toMatchObject({ outcome: 'waiting', values: { phase: 'held' } });

    const ctx = (experiments: Record<string, ExperimentStatus>, now = T0 + DAY) => ({
      now,
      profile: person(id),
      experiments,
    });
    const still = advance(def, held.state, { type: 'replan' }, ctx({ ab: { decided: false, deadline } }));
    expect(still.state).toBe(held.state);
    const decided = { decided: true, winner: 1, inconclusive: false, at: T0 + DAY, reason: 'B wins' } as const;
    const moved = advance(def, held.state, { type: 'replan' }, ctx({ ab: decided }));
    expect(moved.effects).toEqual([expect.objectContaining({ type: 'send', node: 'send_1' })]);
    expect(moved.journal[0]).toMatchObject({ outcome: 'variant:1', values: { phase: 'winner', inconclusive: false } });
    // A new entrant after the decision follows the winner too, sampled or not.
    expect(start(inSample(true), { ab: decided }).effects[0]).toMatchObject({ node: 'send_1' });
  });

  it('at the deadline without a decision a held person takes the default, marked inconclusive', () => {
    const id = inSample(false);
    const held = start(id);
    expect(held.state.due).toBe(T0 + 7 * DAY);
    const early = advance(def, held.state, { type: 'due' }, { now: T0 + DAY, profile: person(id) });
    expect(early.state).toBe(held.state);
    const late = advance(def, held.state, { type: 'due' }, { now: T0 + 7 * DAY, profile: person(id) });
    expect(late.journal[0]).toMatchObject({ outcome: 'variant:0', values: { phase: 'winner', inconclusive: true } });
    expect(late.effects[0]).toMatchObject({ node: 'send_0' });
  });

  it('simulate() takes a scripted decision', () => {
    const id = inSample(false);
    const at = T0 + 2 * DAY;
    const sim = simulate(def, {
      profile: person(id),
      flowId: 'f1',
      start: T0,
      horizon: { days: 10 },
      experiments: { ab: { at, winner: 1 } },
    });
    expect(sim.messages).toEqual([expect.objectContaining({ at, node: 'send_1', subject: 'Long subject' })]);
    const none = simulate(def, { profile: person(id), flowId: 'f1', start: T0, horizon: { days: 10 } });
    expect(none.messages).toEqual([expect.objectContaining({ at: T0 + 7 * DAY, node: 'send_0' })]);
    expect(none.steps.find((s) => s.node === 'ab' && s.outcome === 'variant:0')?.reason).toContain('inconclusive');
  });
});

describe('the experiment node: the control group after the decision', () => {
  const node = experiment({
    variants: [
      { name: 'A', percent: 40 },
      { name: 'B', percent: 40 },
    ],
    control: { percent: 20 },
  });
  const def = flowOf(node);
  const find = (want: (a: ReturnType<typeof experimentAssignment>) => boolean) => {
    for (let i = 0; ; i++) if (want(experimentAssignment('f1', node, `p${i}`))) return `p${i}`;
  };
  const step = (profileId: string, experiments: Record<string, ExperimentStatus>, now = T0 + 2 * DAY) =>
    advance(
      def,
      enter(def, { runId: `r-${profileId}`, flowId: 'f1', profileId, now }),
      { type: 'due' },
      { now, profile: person(profileId), experiments },
    );
  const atNode = (r: { journal: { node?: string }[] }) => r.journal.find((x) => x.node === 'ab');
  const decided = { decided: true, winner: 1, inconclusive: false, at: T0 + DAY, reason: 'B wins' } as const;

  it('keeps the test’s control people held out: never sent the winner, journaled as the holdout', () => {
    const control = find((a) => a.sampled && a.arm === 'control');
    // In the test they took the control.
    expect(atNode(step(control, { ab: { decided: false, deadline: T0 + 7 * DAY } }, T0))).toMatchObject({
      outcome: 'control',
      values: { phase: 'test', arm: 'control' },
    });
    // Entering again once B has won, they still take the control, not B.
    const again = step(control, { ab: decided });
    expect(again.effects).toEqual([]);
    expect(atNode(again)).toMatchObject({ outcome: 'control', to: 'done', values: { phase: 'holdout' } });
    // Everyone else follows the winner: a sampled variant person, and the people held out of the sample
    // (whatever their arm's hash: they were never in the control group).
    const variant = find((a) => a.sampled && a.arm === 0);
    expect(step(variant, { ab: decided }).effects[0]).toMatchObject({ node: 'send_1' });
    const unsampledControl = find((a) => !a.sampled && a.arm === 'control');
    const waiting = step(unsampledControl, { ab: { decided: false, deadline: T0 + 7 * DAY } }, T0);
    expect(waiting.state.status).toBe('waiting');
    const moved = advance(
      def,
      waiting.state,
      { type: 'replan' },
      { now: T0 + DAY, profile: person(unsampledControl), experiments: { ab: decided } },
    );
    expect(moved.effects[0]).toMatchObject({ node: 'send_1' });
  });

  it('keeps them held out at the deadline’s default too; a control that wins is everyone’s', () => {
    const control = find((a) => a.sampled && a.arm === 'control');
    const def0 = {
      decided: true,
      winner: 0,
      inconclusive: true,
      at: T0 + 7 * DAY,
      reason: 'deadline reached',
    } as const;
    expect(atNode(step(control, { ab: def0 }))).toMatchObject({ outcome: 'control', values: { phase: 'holdout' } });
    const variant = find((a) => a.sampled && a.arm === 1);
    const controlWon = { ...decided, winner: 'control' } as const;
    expect(atNode(step(variant, { ab: controlWon }))).toMatchObject({
      outcome: 'control',
      values: { phase: 'winner' },
    });
  });
});

describe('decideExperiment', () => {
  const node = experiment({ decide: { deadlineDays: 7 } });
  it('decides a clear winner, waits for the minimum per arm, and at the deadline uses the default', () => {
    const clear = decideExperiment(
      {
        startedAt: T0,
        variants: [
          { n: 5000, conversions: 500 },
          { n: 5000, conversions: 650 },
        ],
      },
      node,
      T0 + DAY,
    );
    expect(clear.status).toMatchObject({ decided: true, winner: 1, inconclusive: false });
    expect(clear.comparisons[0]!.test.lower).toBeGreaterThan(0);
    expect(clear.arms[1]!.rate.estimate).toBe(0.13);

    const few = decideExperiment(
      {
        startedAt: T0,
        variants: [
          { n: 50, conversions: 0 },
          { n: 50, conversions: 40 },
        ],
      },
      node,
      T0 + DAY,
    );
    expect(few.status).toEqual({ decided: false, deadline: T0 + 7 * DAY });
    expect(few.reason).toContain('fewer than 100');

    const even = {
      startedAt: T0,
      variants: [
        { n: 5000, conversions: 500 },
        { n: 5000, conversions: 505 },
      ],
    };
    expect(decideExperiment(even, node, T0 + DAY).status.decided).toBe(false);
    expect(decideExperiment(even, node, T0 + 7 * DAY).status).toMatchObject({
      decided: true,
      winner: 0,
      inconclusive: true,
    });
  });

  it('refuses a winner under a sample ratio mismatch', () => {
    const r = decideExperiment(
      {
        startedAt: T0,
        variants: [
          { n: 5000, conversions: 500 },
          { n: 5600, conversions: 800 },
        ],
      },
      node,
      T0 + DAY,
    );
    expect(r.srm.mismatch).toBe(true);
    expect(r.status.decided).toBe(false);
    expect(r.reason).toContain('sample ratio mismatch');
  });

  it('lets the control win when sending hurts, and decides revenue per person from sums', () => {
    const withControl = experiment({
      variants: [{ name: 'Discount', percent: 50 }],
      control: { percent: 50 },
    });
    const r = decideExperiment(
      { startedAt: T0, variants: [{ n: 8000, conversions: 400 }], control: { n: 8000, conversions: 600 } },
      withControl,
      T0 + DAY,
    );
    expect(r.status).toMatchObject({ decided: true, winner: 'control' });

    const revenue = experiment({
      goal: { event: { event: 'Order Completed' }, withinSeconds: 3600, value: 'properties.revenue' },
    });
    // 10 % buy in both arms; buyers spend 50 ± 20 in A and 60 ± 20 in B: per person 5 vs 6.
    const arm = (n: number, mean: number) => {
      const buyers = n / 10;
      return { n, conversions: buyers, sum: buyers * mean, sumSquares: buyers * (mean * mean + 400) };
    };
    const rv = decideExperiment({ startedAt: T0, variants: [arm(20_000, 50), arm(20_000, 60)] }, revenue, T0 + DAY);
    expect(rv.metric).toBe('value');
    expect(rv.arms.map((a) => a.mean)).toEqual([5, 6]);
    expect(rv.status).toMatchObject({ decided: true, winner: 1 });
  });
});
