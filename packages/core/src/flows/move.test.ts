import { describe, expect, it } from 'vitest';
import type { FlowDefinition, FlowNode } from './ast.ts';
import { diffFlows } from './diff.ts';
import { advance, enter, moveRun } from './engine.ts';
import type { ProfileFacts } from './facts.ts';
import type { RunState } from './state.ts';
import { validateFlow } from './validate.ts';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const profile: ProfileFacts = { id: 'p1', traits: {}, audiences: [], tags: [] };

function def(nodes: FlowNode[], edges: FlowDefinition['edges'], extra: Partial<FlowDefinition> = {}): FlowDefinition {
  const d: FlowDefinition = {
    version: 1,
    name: 'move',
    trigger: { type: 'event', event: 'Signed Up' },
    entry: { reentry: 'once' },
    nodes,
    edges,
    ...extra,
  };
  const v = validateFlow(d);
  if (!v.ok) throw new Error(JSON.stringify(v.issues));
  return d;
}
const send = (id: string, body: string): FlowNode => ({ id, type: 'send', destination: 'hook', message: { body } });
const chain = (...ids: string[]) => ids.slice(1).map((to, i) => ({ from: ids[i]!, to, on: 'next' }));

// v1: hello → wait 3 days → bye. v2: hello → wait 1 day → extra → bye.
const v1 = def(
  [send('hello', 'hi'), { id: 'wait3', type: 'wait', duration: { days: 3 } }, send('bye', 'bye')],
  chain('hello', 'wait3', 'bye'),
);
const v2 = def(
  [
    send('hello', 'hi'),
    { id: 'wait1', type: 'wait', duration: { days: 1 } },
    send('extra', 'news'),
    send('bye', 'bye v2'),
  ],
  chain('hello', 'wait1', 'extra', 'bye'),
);

/** A run of v1 entered at T0, waiting at wait3. */
function waitingOnV1(): RunState {
  const s = enter(v1, { runId: 'r1', flowId: 'f1', profileId: 'p1', now: T0 });
  return advance(v1, s, { type: 'due' }, { now: T0, profile }).state;
}

describe('moveRun', () => {
  it('re-plans a shortened wait from when the run began waiting and continues on the new path', () => {
    const run = waitingOnV1();
    expect(run).toMatchObject({ node: 'wait3', due: T0 + 3 * DAY });
    const moved = moveRun(v2, run, 'wait1', { now: T0 + 2 * HOUR, since: T0, profile });
    expect(moved.effects).toEqual([]);
    expect(moved.state).toMatchObject({ status: 'waiting', node: 'wait1', iteration: 0, due: T0 + DAY, since: T0 });
    // Visits of nodes v2 has are kept (hello), the old wait's are gone.
    expect(moved.state.visits).toEqual({ hello: 1, wait1: 1 });
    expect(moved.journal[0]).toMatchObject({ type: 'migrated', node: 'wait3', to: 'wait1', outcome: 'migrated' });
    expect(moved.journal[1]).toMatchObject({ node: 'wait1', outcome: 'waiting' });

    const on = advance(v2, moved.state, { type: 'due' }, { now: T0 + DAY, profile });
    expect(on.effects.map((e) => e.key)).toEqual(['flow:r1:extra:0', 'flow:r1:bye:0']);
    expect(on.state.status).toBe('completed');
  });

  it('makes a wait that would be over due now, and a node that does not wait runs at once', () => {
    const run = waitingOnV1();
    const late = moveRun(v2, run, 'wait1', { now: T0 + 2 * DAY, since: T0, profile });
    expect(late.state).toMatchObject({ node: 'wait1', due: T0 + 2 * DAY });
    const atOnce = moveRun(v2, run, 'extra', { now: T0 + HOUR, since: T0, profile });
    expect(atOnce.effects.map((e) => e.key)).toEqual(['flow:r1:extra:0', 'flow:r1:bye:0']);
    expect(atOnce.state.status).toBe('completed');
  });

  it('enters a node the run visited before as a new visit: rollback keeps effect keys unique', () => {
    const run = waitingOnV1();
    const there = moveRun(v2, run, 'wait1', { now: T0 + HOUR, since: T0, profile });
    const back = moveRun(v1, there.state, 'wait3', { now: T0 + 2 * HOUR, since: there.state.since!, profile });
    // wait3 was dropped with v2 (v2 has no wait3): its count starts again; `since` is the first wait's start.
    expect(back.state).toMatchObject({ node: 'wait3', iteration: 0, due: T0 + 3 * DAY, since: T0 });
    // Back onto hello (visited once): iteration 1, a new key.
    const again = moveRun(v1, there.state, 'hello', { now: T0 + 2 * HOUR, since: T0, profile });
    expect(again.effects[0]?.key).toBe('flow:r1:hello:1');
  });

  it('moves onto a wait for an event listening from since, and leaves runs that are not waiting', () => {
    const v3 = def(
      [
        send('hello', 'hi'),
        { id: 'order', type: 'wait_for_event', event: { event: 'Order Completed' }, timeout: { days: 2 } },
        send('bye', 'bye'),
      ],
      [
        ...chain('hello', 'order'),
        { from: 'order', to: 'bye', on: 'timeout' },
        { from: 'order', to: 'bye', on: 'matched' },
      ],
    );
    const moved = moveRun(v3, waitingOnV1(), 'order', { now: T0 + HOUR, since: T0, profile });
    expect(moved.state).toMatchObject({ node: 'order', due: T0 + 2 * DAY, since: T0, listen: ['Order Completed'] });
    const ended = { ...waitingOnV1(), status: 'completed' as const };
    expect(moveRun(v2, ended, 'wait1', { now: T0, since: T0, profile }).state).toBe(ended);
  });
});

describe('diffFlows', () => {
  it('lists changed settings and node fields, nodes and edges added and removed', () => {
    const d = diffFlows(v1, { ...v2, trigger: { type: 'event', event: 'Registered' } });
    expect(d.settings).toEqual([{ path: 'trigger.event', before: 'Signed Up', after: 'Registered' }]);
    expect(d.nodes.added.map((n) => n.id)).toEqual(['wait1', 'extra']);
    expect(d.nodes.removed.map((n) => n.id)).toEqual(['wait3']);
    expect(d.nodes.changed).toEqual([
      { id: 'bye', type: 'send', changes: [{ path: 'message.body', before: 'bye', after: 'bye v2' }] },
    ]);
    expect(d.edges.removed).toEqual([
      { from: 'hello', to: 'wait3', on: 'next' },
      { from: 'wait3', to: 'bye', on: 'next' },
    ]);
    expect(d.edges.added).toHaveLength(3);
    expect(d.start).toBeUndefined();
    expect(diffFlows(v1, v1)).toEqual({
      settings: [],
      nodes: { added: [], removed: [], changed: [] },
      edges: { added: [], removed: [] },
    });
  });
});
