// One flow: its diagram with live counts (refreshed every few seconds), a node's details on click or Enter,
// editing the working copy (validation errors marked on their nodes), simulating a person (the path drawn),
// and its review (the diff against the live version; submit, approve, reject, publish).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link } from '../router.tsx';
import { Badge, Field, fmt, Json, Loaded, PageHeader, Time, useApi, useMe } from '../ui.tsx';
import { FlowDiagram } from './flow-diagram.tsx';
import { FlowEditor, type Invalid } from './flow-editor.tsx';
import {
  actorText,
  type Flow,
  type FlowDef,
  type FlowStats,
  flowStatus,
  type SimPath,
  statusTone,
  triggerLabel,
} from './flow-model.ts';
import { FlowReview, type ReviewDiff } from './flow-review.tsx';
import { FlowSimulate } from './flow-simulate.tsx';

/** How often the counts are read again. */
const REFRESH_MS = 3000;

export default function FlowPage(props: { params: Record<string, string> }) {
  const id = encodeURIComponent(props.params.id ?? '');
  const flow = useApi<Flow>(`/flows/${id}`);
  const stats = useApi<FlowStats>(`/flows/${id}/stats`);
  useEffect(() => {
    // Not while the tab is hidden: nobody reads the numbers then.
    const t = setInterval(() => document.hidden || stats.reload(), REFRESH_MS);
    return () => clearInterval(t);
  }, [stats.reload]);
  return (
    <>
      <PageHeader title={flow.data ? `Flow: ${flow.data.name}` : `Flow ${props.params.id}`}>
        <Link href="/flows">All flows</Link>
      </PageHeader>
      <Loaded state={flow}>{(f) => <FlowBody flow={f} stats={stats.data} onChanged={flow.reload} />}</Loaded>
    </>
  );
}

function FlowBody(props: { flow: Flow; stats: FlowStats | undefined; onChanged: () => void }) {
  const { flow, stats } = props;
  const [selected, setSelected] = useState<string>();
  const [invalid, setInvalid] = useState<Invalid>();
  const [path, setPath] = useState<SimPath>();
  const [diff, setDiff] = useState<ReviewDiff>();
  const { def, drawn, differs, showLive, setShowLive, changes } = useDrawn(flow, invalid, diff);
  const node = def.nodes.find((n) => n.id === selected);
  return (
    <>
      <FlowFacts flow={flow} />
      <RunTotals stats={stats} />
      <div class="flow-layout" style={{ display: 'flex', flexWrap: 'wrap', gap: '16px', alignItems: 'flex-start' }}>
        <section aria-labelledby="fl-diagram" style={{ flex: '3 1 480px', minWidth: 0 }}>
          <h2 id="fl-diagram">
            Diagram{' '}
            <small class="muted">
              ({drawn}); counts across versions, every {REFRESH_MS / 1000} s
            </small>
          </h2>
          {differs && !invalid && (
            <div class="filters">
              <Field label="Draw">
                <select
                  value={showLive ? 'live' : 'working'}
                  onChange={(e) => setShowLive(e.currentTarget.value === 'live')}
                >
                  <option value="working">the working copy ({flow.review.state.replace('_', ' ')})</option>
                  <option value="live">live version {flow.version}</option>
                </select>
              </Field>
            </div>
          )}
          <FlowDiagram
            def={def}
            stats={stats}
            errors={invalid?.byNode}
            changes={changes}
            path={path}
            selected={selected}
            onSelect={setSelected}
          />
        </section>
        <section aria-labelledby="fl-node" style={{ flex: '1 1 280px', minWidth: 0 }}>
          <h2 id="fl-node">Node details</h2>
          {node ? (
            <NodeDetails
              node={node}
              stats={stats}
              errors={invalid?.byNode.get(node.id)}
              sends={stats?.sends.filter((s) => s.node === node.id)}
            />
          ) : (
            <p class="muted">Choose a node in the diagram (click it, or Tab to it and press Enter).</p>
          )}
        </section>
      </div>
      {/* Read again (remounted) whenever the flow changed. */}
      <FlowReview
        key={`${flow.updatedAt}:${flow.review.state}:${flow.status}`}
        flow={flow}
        onChanged={props.onChanged}
        onDiff={setDiff}
      />
      <FlowSimulate flow={flow} onPath={setPath} />
      <FlowEditor
        flow={flow}
        invalid={invalid}
        onInvalid={setInvalid}
        onSaved={() => {
          setInvalid(undefined);
          props.onChanged();
        }}
      />
    </>
  );
}

/**
 * What the diagram draws: an edit the API refused as it was sent (its nodes marked), else the working copy
 * or, while it differs from the live version, the live version (the counts are of every version); and the
 * working copy's new and changed nodes by the review's diff.
 */
function useDrawn(flow: Flow, invalid: Invalid | undefined, diff: ReviewDiff | undefined) {
  const differs = flow.version !== null && flow.review.state !== 'published';
  const [showLive, setShowLive] = useState(false);
  const live = useApi<{ definition: FlowDef }>(
    differs && showLive ? `/flows/${encodeURIComponent(flow.id)}/versions/${flow.version}` : null,
  );
  const drawn = invalid ? 'the refused edit' : differs && showLive ? `live version ${flow.version}` : 'working copy';
  const def = invalid?.def ?? (differs && showLive && live.data ? live.data.definition : flow.definition);
  const changes = useMemo(
    () =>
      differs && diff && drawn === 'working copy'
        ? new Map<string, 'new' | 'changed'>([
            ...diff.nodes.added.map((n) => [n.id, 'new'] as const),
            ...diff.nodes.changed.map((n) => [n.id, 'changed'] as const),
          ])
        : undefined,
    [differs, diff, drawn],
  );
  return { def, drawn, differs, showLive, setShowLive, changes };
}

function FlowFacts(props: { flow: Flow }) {
  const { flow } = props;
  const me = useMe().user?.id;
  return (
    <dl class="facts">
      <dt>Status</dt>
      <dd>
        <Badge value={flowStatus(flow)} tone={statusTone(flowStatus(flow))} />{' '}
        {flow.version !== null && <>live version {flow.version}</>}
      </dd>
      <dt>Working copy</dt>
      <dd>
        {flow.review.state.replace('_', ' ')}, changed <Time at={flow.updatedAt} />
        {flow.review.lastEditedBy && <> by {actorText(flow.review.lastEditedBy, me)}</>}
      </dd>
      <dt>Trigger</dt>
      <dd>{triggerLabel(flow.definition.trigger)}</dd>
    </dl>
  );
}

function RunTotals(props: { stats: FlowStats | undefined }) {
  const r = props.stats?.runs;
  const items: [string, number | undefined][] = [
    ['Entered', r?.entered],
    ['Active', r?.active],
    ['Completed', r?.completed],
    ['Exited', r?.exited],
    ['Failed', r?.failed],
    ['Converted', r?.converted],
  ];
  return (
    <ul
      class="cards"
      aria-label="Runs"
      style={{
        listStyle: 'none',
        padding: 0,
        margin: '12px 0',
        gridTemplateColumns: 'repeat(auto-fill, minmax(110px, 1fr))',
      }}
    >
      {items.map(([label, n]) => (
        <li class="card" key={label}>
          <div class="muted">{label}</div>
          <div class="big">{n === undefined ? '…' : fmt(n)}</div>
        </li>
      ))}
    </ul>
  );
}

function NodeDetails(props: {
  node: Flow['definition']['nodes'][number];
  stats: FlowStats | undefined;
  errors: string[] | undefined;
  sends: FlowStats['sends'] | undefined;
}) {
  const s = props.stats?.nodes.find((n) => n.node === props.node.id);
  return (
    <div aria-live="polite">
      <h3 style={{ margin: '0 0 8px' }}>
        {props.node.type} <code>{props.node.id}</code>
        {props.node.name && <> — {props.node.name}</>}
      </h3>
      {props.errors && (
        <ul class="error" aria-label="Problems of this node">
          {props.errors.map((m) => (
            <li key={m}>{m}</li>
          ))}
        </ul>
      )}
      <dl class="facts">
        <dt>Arrived</dt>
        <dd>{fmt(s?.arrived ?? 0)}</dd>
        <dt>Waiting now</dt>
        <dd>{fmt(s?.waiting ?? 0)}</dd>
        <dt>Awaiting a result</dt>
        <dd>{fmt(s?.awaiting ?? 0)}</dd>
        <dt>Ended here</dt>
        <dd>
          {fmt(s?.ended.completed ?? 0)} completed, {fmt(s?.ended.exited ?? 0)} exited, {fmt(s?.ended.failed ?? 0)}{' '}
          failed
        </dd>
        <dt>Left by</dt>
        <dd>
          {s?.advanced.length
            ? s.advanced.map((a) => `${a.outcome} → ${a.to ?? 'end'}: ${fmt(a.count)}`).join('; ')
            : 'no run yet'}
        </dd>
        {!!props.sends?.length && (
          <>
            <dt>Messages</dt>
            <dd>
              {props.sends
                .map((m) => `${m.destinationId} ${m.status}${m.reason ? ` (${m.reason})` : ''}: ${fmt(m.count)}`)
                .join('; ')}
            </dd>
          </>
        )}
      </dl>
      <h4>Definition</h4>
      <Json value={props.node} label={`Definition of node ${props.node.id}`} />
    </div>
  );
}
