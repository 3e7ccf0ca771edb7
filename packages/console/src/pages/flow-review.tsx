// A flow's review (GET /api/flows/{id}/review): the working copy's diff against the live version, whom it
// would enter, where it sends, the live flows it may conflict with; and the steps a role may take: submit
// (flows:submit), approve or reject (flows:approve, never one's own last edit), publish, pause, resume.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Badge, ErrorBox, Field, fmt, Loaded, useAction, useApi, useCan, useMe } from '../ui.tsx';
import { actorText, type Flow, statusTone } from './flow-model.ts';

interface Change {
  path: string;
  before?: unknown;
  after?: unknown;
}
/** A review's diff: flow settings, the start node, nodes and edges added, removed, changed. */
export interface ReviewDiff {
  settings: Change[];
  start?: { before?: string; after?: string };
  nodes: {
    added: { id: string; type: string }[];
    removed: { id: string; type: string }[];
    changed: { id: string; type: string; changes: Change[] }[];
  };
  edges: { added: Edge[]; removed: Edge[] };
}
interface Review {
  state: Flow['review']['state'];
  against: number | null;
  diff: ReviewDiff;
  preview: {
    reach: { trigger: string; people: number | null; basis: string };
    sends: { destinations: { id: string; name: string | null; channel: string | null; nodes: string[] }[] };
  };
  conflicts: { flowId: string; name: string; reasons: { text: string }[]; slot: { text: string } }[];
}
interface Edge {
  from: string;
  to: string;
  on: string;
}

const show = (v: unknown) => (v === undefined ? '—' : JSON.stringify(v));
const edgeText = (e: Edge) => `${e.from} —${e.on}→ ${e.to}`;

/**
 * The review section of a flow's page.
 *
 * @example
 * <FlowReview flow={flow} onChanged={reload} />
 */
export function FlowReview(props: {
  flow: Flow;
  onChanged: () => void;
  /** Receives the diff once read (the page tags the nodes it adds or changes). */
  onDiff?: (diff: ReviewDiff | undefined) => void;
}) {
  const { flow, onDiff } = props;
  const review = useApi<Review>(`/flows/${encodeURIComponent(flow.id)}/review`);
  useEffect(() => onDiff?.(review.data?.diff), [review.data, onDiff]);
  const me = useMe().user?.id;
  const state = flow.review.state.replace('_', ' ');
  return (
    <section aria-labelledby="fl-review">
      <h2 id="fl-review">Review</h2>
      <p>
        Working copy <Badge value={state} tone={statusTone(state)} />
        {flow.review.submittedBy && <> · submitted by {actorText(flow.review.submittedBy, me)}</>}
        {flow.review.approvedBy && <> · approved by {actorText(flow.review.approvedBy, me)}</>}
        {flow.review.lastTransition?.note && <> · last note: “{flow.review.lastTransition.note}”</>}
      </p>
      <ReviewActions flow={flow} onChanged={props.onChanged} />
      <Loaded state={review}>{(r) => <ReviewBody review={r} />}</Loaded>
    </section>
  );
}

function ReviewActions(props: { flow: Flow; onChanged: () => void }) {
  const { flow } = props;
  const me = useMe();
  const [note, setNote] = useState('');
  const [canSubmit, canApprove, canWrite] = [useCan('flows:submit'), useCan('flows:approve'), useCan('flows:write')];
  const step = useAction(async (verb: string) => {
    await api(`/flows/${encodeURIComponent(flow.id)}/${verb}`, {
      method: 'POST',
      body: note.trim() ? { note: note.trim() } : {},
    });
    setNote('');
    props.onChanged();
  });
  if (flow.status === 'archived') return <p class="muted">Archived: nothing to review.</p>;
  const state = flow.review.state;
  const ownEdit = !!me.user && flow.review.lastEditedBy === `user:${me.user.id}`;
  const buttons: [string, string, boolean][] = [
    ['submit', 'Submit for review', canSubmit && state === 'draft'],
    ['approve', 'Approve', canApprove && state === 'in_review' && !ownEdit],
    ['reject', 'Reject', canApprove && state === 'in_review' && !ownEdit],
    ['publish', 'Publish', canWrite && state === 'approved'],
    ['pause', 'Pause', canWrite && flow.status === 'live'],
    ['resume', 'Resume', canWrite && flow.status === 'paused'],
  ];
  const shown = buttons.filter(([, , ok]) => ok);
  return (
    <>
      {canApprove && state === 'in_review' && ownEdit && (
        <p class="muted">You made the last edit of this working copy: another person approves it.</p>
      )}
      {shown.length > 0 && (
        <form
          class="filters"
          aria-label="Review steps"
          onSubmit={(e) => {
            e.preventDefault();
          }}
        >
          <Field label="Note (why)" hint="Required to reject; kept in the audit log">
            <input value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
          </Field>
          {shown.map(([verb, label]) => (
            <button
              type="button"
              key={verb}
              class={verb === 'reject' || verb === 'pause' ? 'danger' : 'primary'}
              disabled={step.busy}
              onClick={() => step.run(verb)}
            >
              {label}
            </button>
          ))}
        </form>
      )}
      <ErrorBox error={step.error} />
    </>
  );
}

function ReviewBody(props: { review: Review }) {
  const { diff, preview, conflicts, against } = props.review;
  const same =
    !diff.settings.length &&
    !diff.start &&
    !diff.nodes.added.length &&
    !diff.nodes.removed.length &&
    !diff.nodes.changed.length &&
    !diff.edges.added.length &&
    !diff.edges.removed.length;
  return (
    <div class="cols">
      <div>
        <h3>
          {against === null ? 'Changes (never published: everything is new)' : `Changes against version ${against}`}
        </h3>
        {same ? <p class="muted">The working copy is the live version.</p> : <DiffList diff={diff} />}
      </div>
      <div>
        <h3>Who and where</h3>
        <p>
          Would enter {preview.reach.people === null ? 'an unknown number of' : fmt(preview.reach.people)} people (
          {preview.reach.basis}).
        </p>
        <p>
          Sends through:{' '}
          {preview.sends.destinations.length
            ? preview.sends.destinations
                .map((d) => `${d.name ?? d.id}${d.channel ? ` (${d.channel})` : ''} at ${d.nodes.join(', ')}`)
                .join('; ')
            : 'nothing'}
        </p>
        <h3>Conflicts with live flows</h3>
        {conflicts.length === 0 ? (
          <p class="muted">None found.</p>
        ) : (
          <ul>
            {conflicts.map((c) => (
              <li key={c.flowId}>
                <strong>{c.name}</strong>: {c.reasons.map((r) => r.text).join('; ')}. {c.slot.text}
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

function DiffList(props: { diff: ReviewDiff }) {
  const { diff } = props;
  return (
    <ul aria-label="Diff" class="diff">
      {diff.start && (
        <li>
          start node: {show(diff.start.before)} → {show(diff.start.after)}
        </li>
      )}
      {diff.settings.map((c) => (
        <li key={`s:${c.path}`}>
          <code>{c.path}</code>: {show(c.before)} → {show(c.after)}
        </li>
      ))}
      {diff.nodes.added.map((n) => (
        <li key={`a:${n.id}`}>
          <Badge value="added" tone="ok" /> node <code>{n.id}</code> ({n.type})
        </li>
      ))}
      {diff.nodes.removed.map((n) => (
        <li key={`r:${n.id}`}>
          <Badge value="removed" tone="bad" /> node <code>{n.id}</code> ({n.type})
        </li>
      ))}
      {diff.nodes.changed.flatMap((n) =>
        n.changes.map((c) => (
          <li key={`c:${n.id}:${c.path}`}>
            <Badge value="changed" tone="warn" /> node <code>{n.id}</code> <code>{c.path}</code>: {show(c.before)} →{' '}
            {show(c.after)}
          </li>
        )),
      )}
      {diff.edges.added.map((e) => (
        <li key={`ea:${edgeText(e)}`}>
          <Badge value="added" tone="ok" /> edge {edgeText(e)}
        </li>
      ))}
      {diff.edges.removed.map((e) => (
        <li key={`er:${edgeText(e)}`}>
          <Badge value="removed" tone="bad" /> edge {edgeText(e)}
        </li>
      ))}
    </ul>
  );
}
