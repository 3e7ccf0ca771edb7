import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { checkPaths } from './paths.oracle.ts';

describeOnDatabases('POST /api/analytics/paths on %s', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 23, people: 300, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('paths.test.ts', mode);
    await sendGenerated(h.cairn, events);
  }, 600_000);
  afterAll(() => h?.close());

  // The hand-made histories below live in 20-30 November 2026, after the generated ones (in the past, as ingest requires), under names of their own.
  const late = { from: '2026-11-20T00:00:00Z', to: '2026-11-30T00:00:00Z', timezone: 'UTC' };
  const paths = async (body: object) => {
    const res = await h.post('/analytics/paths', { range: late, ...body });
    expect(res.status, res.text).toBe(200);
    return res.body;
  };
  // Each step's nodes as [node, paths], and the drop-off per step.
  const shape = (answer: { steps: { nodes: { node: string; paths: number }[]; dropOff: { paths: number } }[] }) => ({
    nodes: answer.steps.map((s) => s.nodes.map((n) => [n.node, n.paths])),
    dropOff: answer.steps.map((s) => s.dropOff.paths),
  });
  const track = (anonymousId: string, event: string, timestamp: string) => ({
    type: 'track',
    event,
    anonymousId,
    timestamp,
  });

  it('answers as the oracle over generated histories (zones, DST days, directions, repeats, filters)', async () => {
    await checkPaths({ post: h.post, events });
  }, 180_000);

  it('follows a path across two devices once they are merged into one person', async () => {
    await h.send(
      track('pm-phone', 'Pm Start', '2026-11-21T10:00:00Z'),
      track('pm-phone', 'Pm Browse', '2026-11-21T10:05:00Z'),
      track('pm-laptop', 'Pm Cart', '2026-11-21T10:12:00Z'),
      track('pm-laptop', 'Pm Pay', '2026-11-21T10:20:00Z'),
    );
    await settle(h.cairn.sql);
    const query = {
      anchor: { event: 'Pm Start' },
      include: { event: ['Pm Start', 'Pm Browse', 'Pm Cart', 'Pm Pay'] },
      steps: 4,
    };
    const before = await paths(query);
    // Two devices, two people: the phone's path ends after Browse.
    expect(shape(before).nodes).toEqual([[['Pm Start', 1]], [['Pm Browse', 1]], [], [], []]);
    expect(shape(before).dropOff).toEqual([0, 0, 1, 0, 0]);
    // Both sign in later: stage 2 merges them, and the path continues on the laptop.
    await h.send(
      { type: 'identify', anonymousId: 'pm-phone', userId: 'pm-user', timestamp: '2026-11-22T09:00:00Z' },
      { type: 'identify', anonymousId: 'pm-laptop', userId: 'pm-user', timestamp: '2026-11-22T10:00:00Z' },
    );
    await settle(h.cairn.sql);
    const after = await paths(query);
    expect(shape(after).nodes).toEqual([[['Pm Start', 1]], [['Pm Browse', 1]], [['Pm Cart', 1]], [['Pm Pay', 1]], []]);
    expect(after.steps[3].edges).toEqual([{ from: 'Pm Cart', to: 'Pm Pay', paths: 1, people: 1 }]);
    expect(after.steps[4].dropOff).toEqual({ paths: 1, people: 1 });
    // Backwards from the laptop's last event, the phone's events come before it.
    const back = await paths({ anchor: { event: 'Pm Pay' }, direction: 'before', steps: 3 });
    expect(shape(back).nodes).toEqual([[['Pm Pay', 1]], [['Pm Cart', 1]], [['Pm Browse', 1]], [['Pm Start', 1]]]);
  });

  it('continues across a silence of exactly sessionGap and stops at one a millisecond longer', async () => {
    await h.send(
      track('gap-dev', 'Gap A', '2026-11-24T10:00:00.000Z'),
      track('gap-dev', 'Gap B', '2026-11-24T10:30:00.000Z'),
      track('gap-dev', 'Gap C', '2026-11-24T11:00:00.001Z'),
    );
    await settle(h.cairn.sql);
    const after = await paths({ anchor: { event: 'Gap A' }, steps: 3, sessionGap: 30 });
    expect(shape(after)).toEqual({ nodes: [[['Gap A', 1]], [['Gap B', 1]], [], []], dropOff: [0, 0, 1, 0] });
    expect(after.steps[1].nodes[0].ended).toEqual({ paths: 1, people: 1 });
    const longer = await paths({ anchor: { event: 'Gap A' }, steps: 3, sessionGap: 31 });
    expect(shape(longer).nodes).toEqual([[['Gap A', 1]], [['Gap B', 1]], [['Gap C', 1]], []]);
    const before = await paths({ anchor: { event: 'Gap C' }, direction: 'before', steps: 2, sessionGap: 30 });
    expect(shape(before)).toEqual({ nodes: [[['Gap C', 1]], [], []], dropOff: [0, 1, 0] });
  });

  it('merges repeats when asked, and counts every anchor as a path but its person once', async () => {
    await h.send(
      track('rep-dev', 'Rep X', '2026-11-26T10:00:00Z'),
      track('rep-dev', 'Rep X', '2026-11-26T10:01:00Z'),
      track('rep-dev', 'Rep Y', '2026-11-26T10:02:00Z'),
      track('rep-dev', 'Rep X', '2026-11-26T10:03:00Z'),
      track('rep-dev', 'Rep Z', '2026-11-26T10:04:00Z'),
    );
    await settle(h.cairn.sql);
    const query = { anchor: { event: 'Rep X' }, include: { event: ['Rep X', 'Rep Y', 'Rep Z'] }, steps: 2 };
    expect(shape(await paths(query)).nodes).toEqual([[['Rep X', 1]], [['Rep X', 1]], [['Rep Y', 1]]]);
    expect(shape(await paths({ ...query, collapseRepeats: true })).nodes).toEqual([
      [['Rep X', 1]],
      [['Rep Y', 1]],
      [['Rep X', 1]],
    ]);
    const every = await paths({ ...query, collapseRepeats: true, occurrence: 'every' });
    // Three anchors: X X (merged) Y X, X (merged) Y X, and X Z.
    expect(every.anchors).toEqual({ paths: 3, people: 1 });
    expect(every.steps[1].nodes).toEqual([
      { node: 'Rep Y', paths: 2, people: 1, ended: { paths: 0, people: 0 } },
      { node: 'Rep Z', paths: 1, people: 1, ended: { paths: 1, people: 1 } },
    ]);
    expect(every.steps[2].dropOff).toEqual({ paths: 1, people: 1 });
  });

  it('labels page events by path with label page, by name with label event', async () => {
    const page = (timestamp: string, extra: object) => ({ type: 'page', anonymousId: 'lbl-dev', timestamp, ...extra });
    await h.send(
      track('lbl-dev', 'Lbl Start', '2026-11-28T10:00:00Z'),
      page('2026-11-28T10:01:00Z', { name: 'Pricing', properties: { path: '/pricing' } }),
      page('2026-11-28T10:02:00Z', { name: 'Docs', context: { page: { path: '/docs' } } }),
      page('2026-11-28T10:03:00Z', { name: 'About' }),
      page('2026-11-28T10:04:00Z', { properties: { path: '' } }),
    );
    await settle(h.cairn.sql);
    const labels = async (label: string) =>
      (await paths({ anchor: { event: 'Lbl Start' }, steps: 4, label })).steps.map(
        (s: { nodes: { node: string }[] }) => s.nodes[0]?.node,
      );
    expect(await labels('page')).toEqual(['Lbl Start', '/pricing', '/docs', 'About', '$page']);
    expect(await labels('event')).toEqual(['Lbl Start', 'Pricing', 'Docs', 'About', '$page']);
  });

  it('refuses bad input with the field and the reason', async () => {
    const anchor = { event: 'Pm Start' };
    const refused = async (body: object, reason: RegExp) => {
      const res = await h.post('/analytics/paths', { range: late, anchor, ...body });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toMatch(reason);
    };
    await refused({ steps: 0 }, /^steps: .*(>=|at least) ?1/i);
    await refused({ steps: 11 }, /^steps: .*(<=|at most) ?10/i);
    await refused({ top: 51 }, /^top: .*(<=|at most) ?50/i);
    await refused({ label: 'screen' }, /^label: .*event.*page/);
    await refused({ sessionGap: 0 }, /^sessionGap/);
    await refused({ direction: 'sideways' }, /^direction: .*after.*before/);
    await refused({ occurrence: 'last' }, /^occurrence/);
    await refused({ anchor: { type: 'click' } }, /anchor\.type.*not an event type/);
    await refused({ range: { ...late, to: late.from } }, /range\.to: must be after from/);
    await refused({ window: 3 }, /window/);
    const missing = await h.post('/analytics/paths', { range: late });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(/^anchor/);
  });
});
