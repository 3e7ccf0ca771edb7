// The flow pages' shapes (as the admin API answers them) and the small pure helpers they share: which node
// a validation issue is about, the count on an edge, a flow's status in words.

/** A node of a flow definition (only what the pages read; the rest is shown as JSON). */
export interface FlowNodeDef {
  id: string;
  type: string;
  name?: string;
  [k: string]: unknown;
}

/** An edge: taken when `from` ends with outcome `on`. */
export interface FlowEdgeDef {
  from: string;
  to: string;
  on: string;
}

/** A flow definition as far as the diagram needs it. */
export interface FlowDef {
  name?: string;
  trigger?: { type?: string; event?: string; audience?: string; tag?: string; trait?: string };
  nodes: FlowNodeDef[];
  edges: FlowEdgeDef[];
  [k: string]: unknown;
}

/** GET /api/flows/{id}. */
export interface Flow {
  id: string;
  name: string;
  description: string | null;
  status: 'draft' | 'live' | 'paused' | 'archived';
  version: number | null;
  definition: FlowDef;
  review: {
    state: 'draft' | 'in_review' | 'approved' | 'published';
    lastEditedBy: string | null;
    submittedBy: string | null;
    approvedBy: string | null;
    lastTransition: { action: string; by: string; at: string; note: string | null } | null;
  };
  createdAt: string;
  updatedAt: string;
}

/** One node's numbers (GET /api/flows/{id}/stats). */
export interface NodeStats {
  node: string;
  arrived: number;
  waiting: number;
  awaiting: number;
  advanced: { outcome: string; to: string | null; count: number }[];
  ended: { completed: number; exited: number; failed: number };
}

/** GET /api/flows/{id}/stats. */
export interface FlowStats {
  runs: { entered: number; active: number; completed: number; exited: number; failed: number; converted: number };
  nodes: NodeStats[];
  exits: { status: string; reason: string; count: number }[];
  sends: { node: string; destinationId: string; status: string; reason: string | null; count: number }[];
}

/** A validation issue of a 400 `invalid_flow`. */
export interface FlowIssue {
  node?: string;
  path: string;
  message: string;
}

/** A path a simulated person took: nodes in order, and the edges (`from→on→to`) between them. */
export interface SimPath {
  nodes: string[];
  edges: Set<string>;
}

/**
 * An edge's key, for sets of edges (a path taken, counts).
 *
 * @example
 * edgeKey({ from: 'a', on: 'next', to: 'b' }); // 'a\u0000next\u0000b'
 */
export const edgeKey = (e: { from: string; on: string; to: string }) => `${e.from}\u0000${e.on}\u0000${e.to}`;

/** The pseudo node the diagram draws for the trigger (no flow node can have this id: it has a space). */
export const TRIGGER = 'trigger ';

/**
 * The node a validation issue is about: its `node`, else the node at `nodes.<i>` or the edge's `from` at
 * `edges.<i>` in the definition that was sent, or the trigger's box for `trigger.*`.
 *
 * @example
 * issueNode({ path: 'nodes.1.duration', message: '…' }, def); // def.nodes[1].id
 */
export function issueNode(issue: FlowIssue, def: FlowDef | undefined): string | undefined {
  if (issue.node) return issue.node;
  if (issue.path === 'trigger' || issue.path.startsWith('trigger.')) return TRIGGER;
  const m = /^(nodes|edges)\.(\d+)/.exec(issue.path);
  if (!m || !def) return undefined;
  const i = Number(m[2]);
  if (m[1] === 'nodes') return def.nodes?.[i]?.id;
  return def.edges?.[i]?.from;
}

/**
 * Runs that took an edge, from a node's stats (the trigger's edge is every run entered).
 *
 * @example
 * edgeCount(stats, { from: 'branch', on: 'else', to: 'wait' }); // 12
 */
export function edgeCount(stats: FlowStats | undefined, e: FlowEdgeDef): number | undefined {
  if (!stats) return undefined;
  if (e.from === TRIGGER) return stats.runs.entered;
  const n = stats.nodes.find((s) => s.node === e.from);
  return n?.advanced.filter((a) => a.outcome === e.on && a.to === e.to).reduce((sum, a) => sum + a.count, 0) ?? 0;
}

/**
 * The status a person reads in the list: live, paused, archived, else where the working copy is in review.
 *
 * @example
 * flowStatus(flow); // 'in review'
 */
export function flowStatus(f: Pick<Flow, 'status' | 'review'>): string {
  if (f.status !== 'draft') return f.status;
  return f.review.state === 'in_review' ? 'in review' : f.review.state === 'approved' ? 'approved' : 'draft';
}

/**
 * The badge tone of a status in words (`in review` waits on someone).
 *
 * @example
 * <Badge value={s} tone={statusTone(s)} />
 */
export function statusTone(status: string): 'ok' | 'warn' | 'bad' | 'info' {
  if (status === 'live' || status === 'published') return 'ok';
  if (status === 'archived') return 'bad';
  if (status === 'in review' || status === 'paused' || status === 'draft') return 'warn';
  return 'info';
}

/**
 * Who did something, as the flow records it (`user:<id>`, or a key): "you" for the caller.
 *
 * @example
 * actorText('user:u7', 'u7'); // 'you'
 */
export function actorText(actor: string | null, myUserId: string | undefined): string {
  if (!actor) return 'nobody';
  return myUserId && actor === `user:${myUserId}` ? 'you' : actor;
}

/**
 * What the trigger is, in a few words.
 *
 * @example
 * triggerLabel({ type: 'event', event: 'Signed Up' }); // 'event: Signed Up'
 */
export function triggerLabel(t: FlowDef['trigger']): string {
  if (!t?.type) return 'trigger';
  const what = t.event ?? t.audience ?? t.tag ?? t.trait;
  return what ? `${t.type}: ${what}` : t.type;
}

/**
 * A definition that the diagram can draw (nodes and edges are arrays of objects with ids), or undefined.
 *
 * @example
 * drawable(JSON.parse(text));
 */
export function drawable(value: unknown): FlowDef | undefined {
  const v = value as FlowDef | null;
  if (!v || typeof v !== 'object' || !Array.isArray(v.nodes) || !Array.isArray(v.edges)) return undefined;
  if (!v.nodes.every((n) => n && typeof n === 'object' && typeof n.id === 'string')) return undefined;
  return {
    ...v,
    edges: v.edges.filter(
      (e) => e && typeof e === 'object' && typeof e.from === 'string' && typeof e.to === 'string',
    ) as FlowEdgeDef[],
  };
}
