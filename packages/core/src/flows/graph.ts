/**
 * The graph checks of a flow: which outcomes each node type has, edges that point nowhere or leave
 * on an outcome the node never has, outcomes without an edge where one is required, nodes no run can
 * reach, and cycles a run could go round without ever waiting.
 */
import type { FlowDefinition, FlowNode } from './ast.ts';
import type { FlowIssue } from './validate-types.ts';

const WAITS = new Set(['wait', 'wait_until', 'wait_for_event']);

/**
 * The outcomes a node can end with, and which of them need an edge. A `next` without an edge ends
 * the run (completed); `missing` without one ends it (exited), `failed` without one fails it.
 *
 * @example
 * outcomesOf({ id: 'w', type: 'wait_for_event', ... }); // { all: ['matched', 'timeout'], required: ['matched', 'timeout'] }
 */
export function outcomesOf(node: FlowNode): { all: string[]; required: string[] } {
  switch (node.type) {
    case 'branch': {
      const all = [...node.cases.map((_, i) => `case:${i}`), 'else'];
      return { all, required: all };
    }
    case 'split': {
      const all = node.paths.map((_, i) => `path:${i}`);
      return { all, required: all };
    }
    case 'experiment': {
      const all = [...node.variants.map((_, i) => `variant:${i}`), ...(node.control ? ['control'] : [])];
      return { all, required: all };
    }
    case 'wait_for_event':
      return { all: ['matched', 'timeout'], required: ['matched', 'timeout'] };
    case 'wait_until':
      return { all: 'trait' in node.until ? ['next', 'missing'] : ['next'], required: [] };
    case 'webhook':
    case 'action':
      return { all: ['next', 'failed'], required: [] };
    case 'issue_coupon':
      return { all: ['next', 'empty', 'failed'], required: [] };
    case 'points':
      return { all: ['next', 'insufficient', 'failed'], required: [] };
    case 'exit':
      return { all: [], required: [] };
    default:
      return { all: ['next'], required: [] };
  }
}

/**
 * Every graph problem of a (structurally valid) flow, each naming its node.
 *
 * @example
 * graphIssues(def); // [{ node: 'wait_1', path: 'edges.3.to', message: 'no node "wiat_2"' }]
 */
export function graphIssues(def: FlowDefinition): FlowIssue[] {
  const issues: FlowIssue[] = [];
  const byId = new Map<string, FlowNode>();
  for (const [i, n] of def.nodes.entries()) {
    if (byId.has(n.id)) issues.push({ node: n.id, path: `nodes.${i}.id`, message: `node id "${n.id}" is used twice` });
    else byId.set(n.id, n);
  }
  const taken = new Map<string, number>();
  for (const [i, e] of def.edges.entries()) {
    const from = byId.get(e.from);
    if (!from) {
      issues.push({ node: e.from, path: `edges.${i}.from`, message: `dangling edge: no node "${e.from}"` });
      continue;
    }
    if (!byId.has(e.to))
      issues.push({ node: e.from, path: `edges.${i}.to`, message: `dangling edge: no node "${e.to}"` });
    const { all } = outcomesOf(from);
    if (!all.includes(e.on)) {
      const valid = all.length ? `; its outcomes: ${all.join(', ')}` : '; it has no outcomes';
      issues.push({
        node: e.from,
        path: `edges.${i}.on`,
        message: `a ${from.type} node never ends with "${e.on}"${valid}`,
      });
    }
    const key = `${e.from}\0${e.on}`;
    if (taken.has(key))
      issues.push({
        node: e.from,
        path: `edges.${i}`,
        message: `a second edge for "${e.on}" (edges.${taken.get(key)} already leaves on it)`,
      });
    else taken.set(key, i);
  }
  for (const [i, n] of def.nodes.entries())
    for (const on of outcomesOf(n).required)
      if (!taken.has(`${n.id}\0${on}`))
        issues.push({
          node: n.id,
          path: `nodes.${i}`,
          message: `missing edge: a ${n.type} node needs an edge for "${on}"`,
        });

  const next = new Map<string, string[]>();
  for (const e of def.edges)
    if (byId.has(e.from) && byId.has(e.to)) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const reached = new Set<string>();
  const stack = def.nodes.length ? [def.nodes[0]!.id] : [];
  while (stack.length) {
    const id = stack.pop()!;
    if (reached.has(id)) continue;
    reached.add(id);
    stack.push(...(next.get(id) ?? []));
  }
  for (const [i, n] of def.nodes.entries())
    if (!reached.has(n.id) && byId.get(n.id) === n)
      issues.push({
        node: n.id,
        path: `nodes.${i}`,
        message: `unreachable: no path leads here from the first node "${def.nodes[0]!.id}"`,
      });

  for (const cycle of cyclesWithoutWait([...byId.keys()], next, byId)) {
    const i = def.nodes.findIndex((n) => n.id === cycle[0]);
    issues.push({
      node: cycle[0],
      path: `nodes.${i}`,
      message: `cycle without a wait through ${cycle.join(', ')}: a run could go round forever at one instant; put a wait in it`,
    });
  }
  return issues;
}

// Strongly connected components (Tarjan); a component with a cycle and no wait node in it is one
// problem, named by its nodes in the order of the flow.
function cyclesWithoutWait(ids: string[], next: Map<string, string[]>, byId: Map<string, FlowNode>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      component.push(w);
    } while (w !== v);
    const cyclic = component.length > 1 || (next.get(v) ?? []).includes(v);
    if (cyclic && !component.some((id) => WAITS.has(byId.get(id)!.type)))
      out.push(ids.filter((id) => component.includes(id)));
  };
  for (const id of ids) if (!index.has(id)) strong(id);
  return out;
}
