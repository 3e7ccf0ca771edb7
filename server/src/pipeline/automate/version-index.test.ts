import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnPostgres, type FlowHarness, flowHarness } from '../../testing/index.ts';
import { waitingAt, waitingAtQuery } from './version-queries.ts';

// biome-ignore lint/suspicious/noExplicitAny: EXPLAIN's JSON plan, walked by the test
type Any = any;

const RUNS = 30_000;

// Moving a version's waiting runs (migrate-runs, the experiment sweep) picks them 500 a transaction by
// (flow, version, nodes) in id order. On a table where most runs have ended, Postgres must answer that
// from flow_runs_version_idx (migration 0024) — a range in id order that stops at the limit — not by
// reading every run of every flow, or walking the primary key over all of them, for each batch. The
// planner's choice depends on statistics, so this runs on Postgres with enough rows to make it.
describeOnPostgres('the index of a version’s waiting runs on %s', (mode) => {
  let h: FlowHarness;
  let flowId: string;
  const tag = randomUUID().slice(0, 8);

  beforeAll(async () => {
    h = await flowHarness('version-index.test.ts', mode);
    flowId = await h.publish({
      version: 1,
      name: `Waits ${tag}`,
      trigger: { type: 'event', event: `Waited ${tag}` },
      entry: { reentry: 'every_time' },
      nodes: [
        { id: 'wait_a', type: 'wait', duration: { days: 3 } },
        { id: 'wait_b', type: 'wait', duration: { days: 3 } },
      ],
      edges: [{ from: 'wait_a', to: 'wait_b', on: 'next' }],
    });
    // A third of the runs wait (at wait_a or wait_b), the rest have ended, as on a flow that has run a while.
    await h.cairn.sql`
      INSERT INTO flow_runs (id, flow_id, version, profile_id, status, node, due, exclusive, entered_at, state)
      SELECT gen_random_uuid(), ${flowId}, 1, gen_random_uuid(),
        CASE WHEN g % 3 = 0 THEN 'waiting' ELSE 'completed' END,
        CASE WHEN g % 3 = 0 THEN CASE WHEN g % 2 = 0 THEN 'wait_a' ELSE 'wait_b' END END,
        CASE WHEN g % 3 = 0 THEN now() + interval '3 days' END, false, now(), '{}'::jsonb
      FROM generate_series(1, ${RUNS}::int) AS g`;
    await h.cairn.sql`ANALYZE flow_runs`;
  });
  afterAll(() => h?.close());

  const nodesOf = (plan: Any): Any[] => [plan, ...(plan.Plans ?? []).flatMap(nodesOf)];

  it('picks a batch by an ordered range of flow_runs_version_idx, with no sort and no scan of the table', async () => {
    const q = { flowId, version: 1, nodes: ['wait_a'], after: '00000000-0000-0000-0000-000000000000', limit: 500 };
    const [row] = await h.cairn.sql<{ 'QUERY PLAN': Any[] }[]>`EXPLAIN (FORMAT JSON) ${waitingAtQuery(h.cairn.sql, q)}`;
    const nodes = nodesOf(row!['QUERY PLAN'][0].Plan);
    const described = nodes.map((n) => `${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`);
    expect(described).toEqual(['Limit', 'Index Scan flow_runs_version_idx']);

    // Paged through in batches, it yields every run waiting at the node once, in uuid order.
    const want = await h.cairn.sql<{ id: string }[]>`
      SELECT id::text FROM flow_runs WHERE flow_id = ${flowId} AND status = 'waiting' AND node = 'wait_a' ORDER BY id`;
    const got: string[] = [];
    for (let after = q.after; ; ) {
      const batch = await waitingAt(h.cairn.sql, { ...q, after });
      got.push(...batch.map((b) => b.id));
      if (batch.length < q.limit) break;
      after = batch.at(-1)!.id;
    }
    expect(got).toEqual(want.map((w) => w.id));
    expect(got.length).toBeGreaterThan(RUNS / 10);
  });
});
