import type { Tx } from '../../db/index.ts';

// A flow's numbers per node, read from what the runner already writes (the journal, the runs, the
// ledger): no counter rows that every step of every run would have to update under a lock.

/** One node's numbers. */
export interface NodeStats {
  node: string;
  /** Times a run arrived at the node (a run that loops arrives more than once). */
  arrived: number;
  /** Runs at the node now: waiting (a timer, an event) or awaiting a webhook's or an action's result. */
  waiting: number;
  awaiting: number;
  /** Runs that left it, per outcome (`next`, `case:0`, `timeout`, ...) and the node they went to. */
  advanced: { outcome: string; to: string | null; count: number }[];
  /** Runs that ended at the node, per end (`completed`, `exited`, `failed`). */
  ended: { completed: number; exited: number; failed: number };
}

/** What the flow's messages became in the ledger, per sending node. */
export interface SendStats {
  node: string;
  destinationId: string;
  /** `delivered`, `pending`, `retrying`, `dead`, `skipped` */
  status: string;
  /** Why skipped (consent, unsubscribed, a destination gone) or dead. */
  reason: string | null;
  count: number;
}

/** A flow's numbers. */
export interface FlowStats {
  runs: { entered: number; active: number; completed: number; exited: number; failed: number; converted: number };
  nodes: NodeStats[];
  /** Why runs ended other than by completing, most frequent first (at most 20 reasons). */
  exits: { status: string; reason: string; count: number }[];
  sends: SendStats[];
}

interface JournalCount {
  node: string | null;
  type: string | null;
  outcome: string;
  to: string | null;
  count: number;
}

/**
 * A flow's numbers: per node how many runs arrived, wait there now, left on each edge and ended there;
 * runs entered, active, ended per status, converted; exit reasons; what its messages became (sent, or
 * skipped with the reason: consent, unsubscribe). From the journal and the ledger, across versions.
 *
 * @example
 * const stats = await flowStats(sql, 'flw_1');
 * stats.nodes.find((n) => n.node === 'coupon_mail')?.advanced; // [{ outcome: 'next', to: 'wait_3d', count: 40 }]
 */
export async function flowStats(sql: Tx, flowId: string): Promise<FlowStats> {
  const [journal, here, sends] = await Promise.all([
    sql<JournalCount[]>`
      SELECT s.node, s.type, s.outcome, s.to_node AS "to", count(*)::int AS count
      FROM flow_steps s JOIN flow_runs r ON r.id = s.run_id
      WHERE r.flow_id = ${flowId} AND (s.to_node IS NOT NULL OR s.type = 'goal')
      GROUP BY 1, 2, 3, 4`,
    sql<{ node: string | null; status: string; count: number }[]>`
      SELECT node, status, count(*)::int AS count FROM flow_runs WHERE flow_id = ${flowId} GROUP BY 1, 2`,
    sql<SendStats[]>`
      SELECT message->'flow'->>'node' AS node, destination_id AS "destinationId", status,
        CASE WHEN status IN ('skipped', 'dead') THEN reason END AS reason, count(*)::int AS count
      FROM deliveries
      WHERE event_id IS NULL AND message->'flow'->>'id' = ${flowId}
      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3`,
  ]);
  // An ended run stays at the node it ended at, with its reason.
  const reasons = await sql<{ status: string; reason: string; count: number }[]>`
    SELECT status, coalesce(state->>'reason', '') AS reason, count(*)::int AS count
    FROM flow_runs WHERE flow_id = ${flowId} AND status IN ('exited', 'failed')
    GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 20`;

  const nodes = new Map<string, NodeStats>();
  const node = (id: string) => {
    let n = nodes.get(id);
    if (!n) {
      n = {
        node: id,
        arrived: 0,
        waiting: 0,
        awaiting: 0,
        advanced: [],
        ended: { completed: 0, exited: 0, failed: 0 },
      };
      nodes.set(id, n);
    }
    return n;
  };
  const runs = { entered: 0, active: 0, completed: 0, exited: 0, failed: 0, converted: 0 };
  for (const j of journal) {
    if (j.to) node(j.to).arrived += j.count;
    if (j.type === 'enter') runs.entered += j.count;
    else if (j.type === 'goal') runs.converted += j.count;
    else if (j.node && j.to) node(j.node).advanced.push({ outcome: j.outcome, to: j.to, count: j.count });
  }
  for (const h of here) {
    if (h.status === 'waiting' || h.status === 'awaiting_effect') {
      runs.active += h.count;
      if (h.node) node(h.node)[h.status === 'waiting' ? 'waiting' : 'awaiting'] += h.count;
    } else if (h.status === 'completed' || h.status === 'exited' || h.status === 'failed') {
      runs[h.status] += h.count;
      if (h.node) node(h.node).ended[h.status] += h.count;
    }
  }
  for (const n of nodes.values()) n.advanced.sort((a, b) => a.outcome.localeCompare(b.outcome));
  return { runs, nodes: [...nodes.values()], exits: reasons, sends };
}

/** How many runs of a flow there have been, and how many are still going. */
export interface FlowRunCounts {
  flowId: string;
  /** Runs started (each entry is one run), across versions. */
  entered: number;
  /** Runs waiting at a node or awaiting a webhook's or action's result now. */
  active: number;
}

/**
 * Every flow's runs entered and active, for a list of flows (one pass over the runs instead of one
 * {@link flowStats} per flow; flows nobody entered are absent).
 *
 * @example
 * const counts = await flowRunCounts(sql); // [{ flowId: 'flw_1', entered: 40, active: 12 }]
 */
export async function flowRunCounts(sql: Tx): Promise<FlowRunCounts[]> {
  return sql<FlowRunCounts[]>`
    SELECT
      flow_id AS "flowId",
      count(*)::int AS entered,
      (count(*) FILTER (WHERE status IN ('waiting', 'awaiting_effect')))::int AS active
    FROM flow_runs
    GROUP BY flow_id
    ORDER BY flow_id`;
}
