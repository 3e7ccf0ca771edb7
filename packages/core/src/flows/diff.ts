/**
 * The structural difference between two flow definitions (two versions, or a version and a working
 * copy): what a reviewer or a publisher mapping nodes needs to see, not a text diff.
 */
import type { Edge, FlowDefinition, FlowNode } from './ast.ts';

/** A value that differs, at a dotted path (`message.body`, `duration.days`); absent sides are undefined. */
export interface FieldChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

/** What changed from `before` to `after`. Empty lists and no `settings`: the same flow. */
export interface FlowDiff {
  /** Flow-level fields (everything but nodes and edges): `name`, `trigger.*`, `entry.*`, `goal.*`, ... */
  settings: FieldChange[];
  /** Whether the first node (where runs start) is another one. */
  start?: { before: string | undefined; after: string | undefined };
  nodes: {
    added: FlowNode[];
    removed: FlowNode[];
    /** Nodes with the same id whose fields differ (a changed `type` is listed as a field). */
    changed: { id: string; type: FlowNode['type']; changes: FieldChange[] }[];
  };
  edges: { added: Edge[]; removed: Edge[] };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Compares two JSON values down to the leaves of objects (arrays compare whole). */
function fieldChanges(before: unknown, after: unknown, path: string, out: FieldChange[]): void {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const k of keys) fieldChanges(before[k], after[k], path ? `${path}.${k}` : k, out);
    return;
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  const change: FieldChange = { path };
  if (before !== undefined) change.before = before;
  if (after !== undefined) change.after = after;
  out.push(change);
}

const edgeKey = (e: Edge) => `${e.from}\u0000${e.on}\u0000${e.to}`;

/**
 * The structural diff of two flow definitions: flow settings (trigger, entry, goal, exit, zone, name, ...)
 * by field, the start node, nodes added, removed and changed (with each changed field's before and
 * after), and edges added and removed.
 *
 * @example
 * const d = diffFlows(v1, v2);
 * d.nodes.changed; // [{ id: 'wait', type: 'wait', changes: [{ path: 'duration.days', before: 3, after: 1 }] }]
 */
export function diffFlows(before: FlowDefinition, after: FlowDefinition): FlowDiff {
  const settings: FieldChange[] = [];
  const { nodes: _n, edges: _e, ...was } = before;
  const { nodes: _n2, edges: _e2, ...is } = after;
  fieldChanges(was, is, '', settings);
  const old = new Map(before.nodes.map((n) => [n.id, n]));
  const now = new Map(after.nodes.map((n) => [n.id, n]));
  const changed: FlowDiff['nodes']['changed'] = [];
  for (const [id, n] of now) {
    const was = old.get(id);
    if (!was) continue;
    const changes: FieldChange[] = [];
    fieldChanges(was, n, '', changes);
    if (changes.length) changed.push({ id, type: n.type, changes });
  }
  const oldEdges = new Set(before.edges.map(edgeKey));
  const newEdges = new Set(after.edges.map(edgeKey));
  const diff: FlowDiff = {
    settings,
    nodes: {
      added: after.nodes.filter((n) => !old.has(n.id)),
      removed: before.nodes.filter((n) => !now.has(n.id)),
      changed,
    },
    edges: {
      added: after.edges.filter((e) => !oldEdges.has(edgeKey(e))),
      removed: before.edges.filter((e) => !newEdges.has(edgeKey(e))),
    },
  };
  const [a, b] = [before.nodes[0]?.id, after.nodes[0]?.id];
  if (a !== b) diff.start = { before: a, after: b };
  return diff;
}
