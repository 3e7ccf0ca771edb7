import { describe, expect, it } from 'vitest';
import { OTHER_NODE, type PathRow, type PathsQuery, pathsQuery, summarizePaths } from './paths.ts';

const first = (nodes: string[], paths = 1): PathRow => ({ person: null, nodes, paths });

describe('summarizePaths', () => {
  it('counts nodes, edges and drop-off per step', () => {
    const s = summarizePaths(
      [first(['A', 'B', 'C'], 3), first(['A', 'B'], 2), first(['A'], 1), first(['A', 'C', 'C'], 1)],
      { steps: 2, top: 10 },
    );
    expect(s.anchors).toEqual({ paths: 7, people: 7 });
    expect(s.steps.map((x) => [x.step, x.paths, x.dropOff.paths])).toEqual([
      [0, 7, 0],
      [1, 6, 1],
      [2, 4, 2],
    ]);
    expect(s.steps[0]!.nodes).toEqual([{ node: 'A', paths: 7, people: 7, ended: { paths: 1, people: 1 } }]);
    expect(s.steps[1]!.nodes).toEqual([
      { node: 'B', paths: 5, people: 5, ended: { paths: 2, people: 2 } },
      { node: 'C', paths: 1, people: 1, ended: { paths: 0, people: 0 } },
    ]);
    expect(s.steps[1]!.edges).toEqual([
      { from: 'A', to: 'B', paths: 5, people: 5 },
      { from: 'A', to: 'C', paths: 1, people: 1 },
    ]);
    // The last step's paths end by the step limit: that is not drop-off.
    expect(s.steps[2]!.nodes).toEqual([{ node: 'C', paths: 4, people: 4, ended: { paths: 0, people: 0 } }]);
    expect(s.steps[2]!.edges).toEqual([
      { from: 'B', to: 'C', paths: 3, people: 3 },
      { from: 'C', to: 'C', paths: 1, people: 1 },
    ]);
  });

  it('keeps the top nodes of each step (ties by name) and merges the rest, edges included, as $other', () => {
    const s = summarizePaths([first(['A', 'x'], 3), first(['A', 'y'], 2), first(['A', 'z'], 2), first(['A', 'w'], 1)], {
      steps: 1,
      top: 2,
    });
    expect(s.steps[1]!.nodes.map((n) => [n.node, n.paths])).toEqual([
      ['x', 3],
      ['y', 2],
      [OTHER_NODE, 3],
    ]);
    expect(s.steps[1]!.edges.map((e) => [e.from, e.to, e.paths])).toEqual([
      ['A', OTHER_NODE, 3],
      ['A', 'x', 3],
      ['A', 'y', 2],
    ]);
  });

  it('counts people once however many of their paths pass (occurrence every)', () => {
    const s = summarizePaths(
      [
        { person: 'p1', nodes: ['A', 'B'], paths: 2 },
        { person: 'p1', nodes: ['A'], paths: 1 },
        { person: 'p2', nodes: ['A', 'B'], paths: 1 },
      ],
      { steps: 1, top: 10 },
    );
    expect(s.anchors).toEqual({ paths: 4, people: 2 });
    expect(s.steps[1]).toMatchObject({ paths: 3, people: 2, dropOff: { paths: 1, people: 1 } });
    expect(s.steps[1]!.edges).toEqual([{ from: 'A', to: 'B', paths: 3, people: 2 }]);
  });

  it('answers empty steps when no anchor happened', () => {
    const s = summarizePaths([], { steps: 2, top: 10 });
    expect(s.anchors).toEqual({ paths: 0, people: 0 });
    expect(s.steps).toHaveLength(3);
    expect(s.steps.every((x) => x.nodes.length === 0 && x.paths === 0)).toBe(true);
  });
});

describe('pathsQuery', () => {
  const base: PathsQuery = {
    range: { from: '2026-03-01T00:00:00+01:00', to: '2026-03-02T00:00:00+01:00', timezone: 'Europe/Berlin' },
    anchor: { event: 'Product Viewed' },
    direction: 'after',
    steps: 3,
    sessionGap: 30,
    label: 'event',
    collapseRepeats: false,
    occurrence: 'first',
    now: new Date('2026-04-01T00:00:00Z'),
  };

  it('reads events up to steps × sessionGap past the range, in the direction walked', () => {
    const after = pathsQuery(base).render().values;
    expect(after).toContain('2026-02-28T23:00:00.000Z');
    expect(after).toContain('2026-03-02T00:30:00.000Z');
    const before = pathsQuery({ ...base, direction: 'before' }).render().values;
    expect(before).toContain('2026-02-28T21:30:00.000Z');
    expect(before).not.toContain('2026-03-02T00:30:00.000Z');
  });

  it('walks forward with lead, backward with lag, one column per step', () => {
    const after = pathsQuery(base).render().text;
    expect(after.match(/lead\(label, /g)).toHaveLength(3);
    expect(after).not.toMatch(/lag\(label, /);
    const before = pathsQuery({ ...base, direction: 'before', steps: 10 }).render().text;
    expect(before.match(/lag\(label, /g)).toHaveLength(10);
  });

  it('groups runs of repeats only when collapsing, and keeps the person only for every', () => {
    expect(pathsQuery(base).render().text).not.toMatch(/GROUP BY profile_id, node/);
    expect(pathsQuery({ ...base, collapseRepeats: true }).render().text).toMatch(/GROUP BY profile_id, node/);
    expect(pathsQuery(base).render().text).toMatch(/NULL::text AS person/);
    expect(pathsQuery({ ...base, occurrence: 'every' }).render().text).toMatch(/profile_id::text AS person/);
  });
});
