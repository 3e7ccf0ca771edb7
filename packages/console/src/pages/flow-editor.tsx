// Editing a flow's working copy as JSON (flows:write). The API validates it; a refusal's issues name nodes
// (or `nodes.<i>` / `edges.<i>` paths), which the diagram then marks and this section lists.
import { useState } from 'preact/hooks';
import { ApiError, api } from '../api.ts';
import { ErrorBox, Field, useAction, useCan } from '../ui.tsx';
import { drawable, type Flow, type FlowDef, type FlowIssue, issueNode, TRIGGER } from './flow-model.ts';

/** An edit the API refused: what was sent (when drawable), its issues, and their messages by node. */
export interface Invalid {
  def?: FlowDef;
  issues: FlowIssue[];
  byNode: Map<string, string[]>;
}

/** Groups a refusal's issues by the node each is about. */
function invalidOf(issues: FlowIssue[], def: FlowDef | undefined): Invalid {
  const byNode = new Map<string, string[]>();
  for (const i of issues) {
    const node = issueNode(i, def);
    if (!node) continue;
    byNode.set(node, [...(byNode.get(node) ?? []), `${i.path}: ${i.message}`]);
  }
  return { def, issues, byNode };
}

/**
 * The edit section: hidden without flows:write, and for an archived flow.
 *
 * @example
 * <FlowEditor flow={flow} invalid={invalid} onInvalid={setInvalid} onSaved={reload} />
 */
export function FlowEditor(props: {
  flow: Flow;
  invalid: Invalid | undefined;
  onInvalid: (i: Invalid | undefined) => void;
  onSaved: () => void;
}) {
  const canWrite = useCan('flows:write');
  const [text, setText] = useState<string>();
  const save = useAction(async () => {
    props.onInvalid(undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text ?? '');
    } catch (e) {
      throw new Error(`not JSON: ${(e as Error).message}`);
    }
    try {
      await api(`/flows/${encodeURIComponent(props.flow.id)}`, { method: 'PATCH', body: { definition: parsed } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && Array.isArray(e.details))
        props.onInvalid(invalidOf(e.details as FlowIssue[], drawable(parsed)));
      throw e;
    }
    setText(undefined);
    props.onSaved();
  });
  if (!canWrite || props.flow.status === 'archived') return null;
  const editing = text !== undefined;
  const cancel = () => {
    setText(undefined);
    props.onInvalid(undefined);
  };
  return (
    <section aria-labelledby="fl-edit">
      <h2 id="fl-edit">Edit the working copy</h2>
      {!editing ? (
        <>
          <p class="muted">
            Live runs keep their version; a changed working copy is a draft again, to be submitted for review.
          </p>
          <button type="button" onClick={() => setText(JSON.stringify(props.flow.definition, null, 2))}>
            Edit definition
          </button>
        </>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save.run();
          }}
        >
          <Field label="Definition (JSON)" hint="The flow language: packages/core/src/flows/README.md">
            <textarea
              rows={22}
              spellcheck={false}
              value={text}
              onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            />
          </Field>
          {props.invalid && <IssueList invalid={props.invalid} />}
          {!props.invalid && <ErrorBox error={save.error} />}
          <div style={{ display: 'flex', gap: '8px', marginTop: '8px' }}>
            <button type="submit" class="primary" disabled={save.busy}>
              Save
            </button>
            <button type="button" onClick={cancel}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

function IssueList(props: { invalid: Invalid }) {
  return (
    <div class="error" role="alert">
      <strong>Not saved: the flow is invalid.</strong> Marked in red on the diagram.
      <ul aria-label="Validation errors">
        {props.invalid.issues.map((i) => {
          const node = issueNode(i, props.invalid.def);
          return (
            <li key={`${i.path}:${i.message}`}>
              {node && node !== TRIGGER && (
                <>
                  node <code>{node}</code>,{' '}
                </>
              )}
              <code>{i.path || 'flow'}</code>: {i.message}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
