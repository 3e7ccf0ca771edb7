// A flow drawn from its definition: dagre lays the graph out (top to bottom), this draws it as SVG — a box
// per node (type, label, counts), an arrow per edge (its outcome and how many runs took it), the trigger as
// a first box. Nodes are buttons (Tab, Enter) named with what they show; the simulated path and the nodes a
// validation names are marked. Only the flow pages import this file, so dagre is in their chunk alone.
import dagre from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import {
  edgeCount,
  edgeKey,
  type FlowDef,
  type FlowEdgeDef,
  type FlowNodeDef,
  type FlowStats,
  type NodeStats,
  type SimPath,
  TRIGGER,
  triggerLabel,
} from './flow-model.ts';

const NODE_W = 200;
const NODE_H = 66;
const CHAR_W = 6.6;
// SVG presentation attributes (not classes): the diagram looks the same wherever it is drawn.
const INK = '#1b1f24';
const MUTED = '#57606a';
const PATH = '#8a3ffc';
const BOX = {
  plain: { fill: '#ffffff', stroke: '#8c959f', width: 1.5 },
  selected: { fill: '#eef5ff', stroke: '#0b5cad', width: 3 },
  path: { fill: '#f5efff', stroke: PATH, width: 3 },
  invalid: { fill: '#fff0f0', stroke: '#a40e26', width: 3 },
};
const FONT = { 'font-family': 'system-ui, sans-serif' };

interface LaidNode {
  id: string;
  x: number;
  y: number;
  node?: FlowNodeDef;
}
interface LaidEdge {
  edge: FlowEdgeDef;
  points: { x: number; y: number }[];
  label: { x: number; y: number; w: number };
}
interface Layout {
  nodes: LaidNode[];
  edges: LaidEdge[];
  width: number;
  height: number;
}

const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The edges drawn: the trigger into the first node, then every edge whose ends are nodes of the flow. */
function drawnEdges(def: FlowDef): FlowEdgeDef[] {
  const ids = new Set(def.nodes.map((n) => n.id));
  const first = def.nodes[0];
  const edges = first ? [{ from: TRIGGER, to: first.id, on: 'entered' }] : [];
  return [...edges, ...def.edges.filter((e) => ids.has(e.from) && ids.has(e.to))];
}

function layout(def: FlowDef): Layout {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 36, ranksep: 48, edgesep: 16, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  g.setNode(TRIGGER, { width: NODE_W, height: 44 });
  for (const n of def.nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
  const edges = drawnEdges(def);
  for (const e of edges)
    g.setEdge(e.from, e.to, { width: (e.on.length + 8) * CHAR_W, height: 18, labelpos: 'c' }, edgeKey(e));
  dagre.layout(g);
  const byId = new Map(def.nodes.map((n) => [n.id, n]));
  const graph = g.graph();
  return {
    width: Math.ceil(graph.width ?? 0),
    height: Math.ceil(graph.height ?? 0),
    nodes: g.nodes().map((id) => {
      const n = g.node(id);
      return { id, x: n.x ?? 0, y: n.y ?? 0, node: byId.get(id) };
    }),
    edges: edges.map((edge) => {
      const l = g.edge({ v: edge.from, w: edge.to, name: edgeKey(edge) });
      return { edge, points: l.points ?? [], label: { x: l.x ?? 0, y: l.y ?? 0, w: l.width ?? 60 } };
    }),
  };
}

/** What a node's box says about its runs, in words (its accessible name uses the same). */
function countsText(s: NodeStats | undefined): string {
  if (!s) return '0 arrived';
  const parts = [`${s.arrived} arrived`];
  if (s.waiting) parts.push(`${s.waiting} waiting`);
  if (s.awaiting) parts.push(`${s.awaiting} awaiting`);
  return parts.join(' · ');
}

export interface DiagramProps {
  def: FlowDef;
  stats?: FlowStats;
  /** Validation messages by node id: those nodes are drawn red. */
  errors?: Map<string, string[]>;
  /** Nodes the working copy adds or changes against the live version (a review's diff): tagged. */
  changes?: Map<string, 'new' | 'changed'>;
  /** A simulated person's path: its nodes and edges are drawn highlighted. */
  path?: SimPath;
  selected?: string;
  onSelect: (id: string) => void;
}

/**
 * The flow's diagram with live counts.
 *
 * @example
 * <FlowDiagram def={flow.definition} stats={stats} onSelect={setSelected} />
 */
export function FlowDiagram(props: DiagramProps) {
  const laid = useMemo(() => layout(props.def), [props.def]);
  const statsOf = (id: string) => props.stats?.nodes.find((s) => s.node === id);
  const onPath = (id: string) => props.path?.nodes.includes(id) ?? false;
  return (
    <div
      class="table-scroll"
      style={{ maxHeight: '72vh', overflow: 'auto', border: '1px solid #d0d7de', borderRadius: 8 }}
    >
      {/* biome-ignore lint/a11y/useSemanticElements: an SVG drawing grouped and named; a fieldset cannot hold SVG */}
      <svg
        width={laid.width}
        height={laid.height}
        viewBox={`0 0 ${laid.width} ${laid.height}`}
        role="group"
        aria-label={`Diagram of ${props.def.name ?? 'the flow'}`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="#57606a" />
          </marker>
          <marker id="arrow-path" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="#8a3ffc" />
          </marker>
        </defs>
        {laid.edges.map((e) => (
          <DiagramEdge
            key={edgeKey(e.edge)}
            laid={e}
            count={edgeCount(props.stats, e.edge)}
            taken={props.path?.edges.has(edgeKey(e.edge)) ?? false}
          />
        ))}
        {laid.nodes.map((n) =>
          n.id === TRIGGER ? (
            <TriggerBox
              key={n.id}
              laid={n}
              def={props.def}
              entered={props.stats?.runs.entered}
              path={!!props.path}
              errors={props.errors?.get(TRIGGER)}
            />
          ) : (
            <NodeBox
              key={n.id}
              laid={n}
              stats={statsOf(n.id)}
              errors={props.errors?.get(n.id)}
              change={props.changes?.get(n.id)}
              onPath={onPath(n.id)}
              selected={props.selected === n.id}
              onSelect={props.onSelect}
            />
          ),
        )}
      </svg>
    </div>
  );
}

function DiagramEdge(props: { laid: LaidEdge; count: number | undefined; taken: boolean }) {
  const { edge, points, label } = props.laid;
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
  const text = props.count === undefined ? edge.on : `${edge.on} · ${props.count}`;
  const w = Math.max(label.w, text.length * CHAR_W + 10);
  const from = edge.from === TRIGGER ? 'the trigger' : edge.from;
  const name = `${edge.on}: from ${from} to ${edge.to}${props.count === undefined ? '' : `, ${props.count} runs`}${props.taken ? ', on the simulated path' : ''}`;
  return (
    // biome-ignore lint/a11y/noInteractiveElementToNoninteractiveRole: an SVG group drawn as one named picture
    <g role="img" aria-label={name} data-edge={edgeKey(edge)} {...FONT}>
      <path
        d={d}
        fill="none"
        stroke={props.taken ? PATH : '#8c959f'}
        stroke-width={props.taken ? 3 : 1.5}
        marker-end={`url(#${props.taken ? 'arrow-path' : 'arrow'})`}
      />
      <rect
        x={label.x - w / 2}
        y={label.y - 9}
        width={w}
        height={18}
        rx={9}
        fill="#ffffff"
        stroke={props.taken ? PATH : '#d0d7de'}
      />
      <text x={label.x} y={label.y + 4} text-anchor="middle" font-size="11" fill={INK}>
        {text}
      </text>
    </g>
  );
}

function TriggerBox(props: {
  laid: LaidNode;
  def: FlowDef;
  entered: number | undefined;
  path: boolean;
  errors: string[] | undefined;
}) {
  const { x, y } = props.laid;
  const label = cut(triggerLabel(props.def.trigger), 30);
  const bad = !!props.errors?.length;
  const second = bad ? 'invalid' : props.entered === undefined ? 'trigger' : `${props.entered} entered`;
  return (
    // biome-ignore lint/a11y/noInteractiveElementToNoninteractiveRole: an SVG group drawn as one named picture
    <g
      {...FONT}
      transform={`translate(${x - NODE_W / 2},${y - 22})`}
      role="img"
      aria-label={`Trigger ${label}${props.entered === undefined ? '' : `: ${props.entered} entered`}${bad ? `, invalid: ${props.errors!.join('; ')}` : ''}`}
    >
      <rect
        width={NODE_W}
        height={44}
        rx={22}
        fill={bad ? BOX.invalid.fill : '#f6f8fa'}
        stroke={bad ? BOX.invalid.stroke : props.path ? PATH : MUTED}
        stroke-width={bad || props.path ? 3 : 1.5}
      />
      <text x={NODE_W / 2} y={18} text-anchor="middle" font-size="13" font-weight="600" fill={INK}>
        {label}
      </text>
      <text x={NODE_W / 2} y={34} text-anchor="middle" font-size="11" fill={bad ? BOX.invalid.stroke : MUTED}>
        {second}
      </text>
    </g>
  );
}

function NodeBox(props: {
  laid: LaidNode;
  stats: NodeStats | undefined;
  errors: string[] | undefined;
  change: 'new' | 'changed' | undefined;
  onPath: boolean;
  selected: boolean;
  onSelect: (id: string) => void;
}) {
  const { id, x, y, node } = props.laid;
  const type = node?.type ?? '?';
  const title = node?.name ?? id;
  const counts = countsText(props.stats);
  const bad = !!props.errors?.length;
  const box = bad ? BOX.invalid : props.selected ? BOX.selected : props.onPath ? BOX.path : BOX.plain;
  // The accessible name starts with the box's visible text (WCAG 2.5.3), then says what the box cannot fit.
  // Each line's text ends with a space, so its words do not run into the next line's in the text content.
  const lines = [
    cut(`${type}${node?.name ? ` · ${id}` : ''}`, 30),
    cut(title, 26),
    bad ? `invalid: ${cut(props.errors![0]!, 24)}` : cut(counts, 30),
  ];
  const name = [
    `${lines[0]} ${lines[1]}: ${lines[2]}`,
    props.change ? `${props.change} in this working copy` : '',
    bad ? `${counts}, every problem: ${props.errors!.join('; ')}` : '',
    props.onPath ? 'on the simulated path' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const select = () => props.onSelect(id);
  return (
    // biome-ignore lint/a11y/useSemanticElements: an SVG group cannot be a <button>; it takes the role and keys
    <g
      {...FONT}
      class="fnode"
      transform={`translate(${x - NODE_W / 2},${y - NODE_H / 2})`}
      role="button"
      tabindex={0}
      style={{ cursor: 'pointer' }}
      aria-label={name}
      aria-pressed={props.selected}
      data-node={id}
      onClick={select}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          select();
        }
      }}
    >
      <rect width={NODE_W} height={NODE_H} rx={6} fill={box.fill} stroke={box.stroke} stroke-width={box.width} />
      {props.onPath && !props.selected && !bad && (
        <rect x={-5} y={-5} width={NODE_W + 10} height={NODE_H + 10} rx={9} fill="none" stroke={PATH} />
      )}
      <text x={10} y={17} font-size="11" fill={MUTED}>
        {`${lines[0]} `}
      </text>
      <text x={10} y={36} font-size="13" font-weight="600" fill={INK}>
        {`${lines[1]} `}
      </text>
      <text x={10} y={55} font-size="11" fill={bad ? '#a40e26' : MUTED}>
        {`${lines[2]} `}
      </text>
      {props.change && (
        <>
          <rect x={NODE_W - 62} y={5} width={56} height={16} rx={8} fill="#fff8c5" stroke="#7d4e00" />
          <text x={NODE_W - 34} y={17} font-size="10" font-weight="600" fill="#7d4e00" text-anchor="middle">
            {props.change}
          </text>
        </>
      )}
    </g>
  );
}
