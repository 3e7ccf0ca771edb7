import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, until } from '../testing/index.ts';

// GET /api/flows/counts: every flow's runs entered and active in one call, the same numbers as each flow's
// stats; a flow nobody entered is absent.
describeOnDatabases('flow run counts on %s', (mode) => {
  let h: FlowHarness;
  let waiting: string;
  let quick: string;
  let unused: string;

  beforeAll(async () => {
    h = await flowHarness('flow-counts.test.ts', mode);
    const { destinationId } = await h.webhook();
    const flow = (name: string, event: string, nodes: object[]) => ({
      version: 1,
      name,
      trigger: { type: 'event', event },
      entry: { reentry: 'every_time', concurrent: true },
      nodes,
      edges: nodes
        .slice(1)
        .map((n, i) => ({ from: (nodes[i] as { id: string }).id, to: (n as { id: string }).id, on: 'next' })),
    });
    waiting = await h.publish(flow('Waits', 'Count Waits', [{ id: 'nap', type: 'wait', duration: { days: 1 } }]));
    quick = await h.publish(
      flow('Sends', 'Count Sends', [{ id: 'hi', type: 'send', destination: destinationId, message: { body: 'hi' } }]),
    );
    unused = await h.publish(flow('Unused', 'Count Nobody', [{ id: 'nap', type: 'wait', duration: { days: 1 } }]));
  });
  afterAll(() => h?.close());

  it('counts entered and active runs per flow, as the stats do', async () => {
    await h.send(
      { type: 'track', userId: 'count-a', event: 'Count Waits' },
      { type: 'track', userId: 'count-b', event: 'Count Waits' },
      { type: 'track', userId: 'count-a', event: 'Count Sends' },
    );
    const counts = await until('three runs placed', async () => {
      const data = (await h.api('/flows/counts')).body.data as { flowId: string; entered: number; active: number }[];
      const sent = data.find((c) => c.flowId === quick);
      return data.find((c) => c.flowId === waiting)?.active === 2 && sent?.entered === 1 && sent.active === 0
        ? data
        : undefined;
    });
    expect(counts.find((c) => c.flowId === unused)).toBeUndefined();
    for (const id of [waiting, quick]) {
      const { runs } = (await h.api(`/flows/${id}/stats`)).body;
      expect(counts.find((c) => c.flowId === id)).toEqual({ flowId: id, entered: runs.entered, active: runs.active });
    }
  });
});
