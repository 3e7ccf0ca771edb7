// An audience or a dynamic tag: its name and rule (the form and the JSON), a live count of who the rule
// selects now before saving, save and delete for those who may, and its current members with "why".
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { navigate, useLocation } from '../router.tsx';
import { ErrorBox, Field, Loaded, PageHeader, useAction, useApi, useCan } from '../ui.tsx';
import { Members } from './audience-members.tsx';
import { PreviewBox, usePreview } from './audience-preview.tsx';
import { audienceStyles } from './audience-style.ts';
import type { Definition, Kind } from './audience-types.ts';
import { NEW_RULE, RuleEditor } from './rule-editor.tsx';
import { parseRule, type RuleIssue, ruleIssues } from './rule-paths.ts';

export default function AudiencePage(props: { params: Record<string, string> }) {
  audienceStyles();
  const { path } = useLocation();
  const kind: Kind = path.startsWith('/tags') ? 'tag' : 'audience';
  const key = props.params.key;
  const existing = useApi<Definition>(key && key !== 'new' ? `/${kind}s/${encodeURIComponent(key)}` : null);
  if (!key) return <Editor kind={kind} />;
  // `/audiences/new` reaches this page as a key only when the caller may not write (pages.ts).
  if (key === 'new')
    return (
      <PageHeader title={`New ${kind}`}>
        <span>Your role cannot create {kind}s.</span>
      </PageHeader>
    );
  return <Loaded state={existing}>{(d) => <Editor kind={kind} existing={d} key={`${d.key}:${d.members}`} />}</Loaded>;
}

// A key from a name: lower-case words joined by _ (the API's key rule), starting with a letter.
const keyOf = (name: string) =>
  name
    .toLowerCase()
    .normalize('NFKD')
    .replaceAll(/[^a-z0-9]+/g, '_')
    .replaceAll(/^[^a-z]+|_+$/g, '')
    .slice(0, 64);

function Editor(props: { kind: Kind; existing?: Definition }) {
  const { kind, existing } = props;
  const noun = kind === 'audience' ? 'audience' : 'tag';
  const canWrite = useCan('audiences:write');
  const [name, setName] = useState(existing?.name ?? '');
  const [key, setKey] = useState(existing?.key ?? '');
  const [keyTouched, setKeyTouched] = useState(false);
  const [description, setDescription] = useState(existing?.description ?? '');
  const [enabled, setEnabled] = useState(existing?.enabled ?? true);
  const [text, setText] = useState(JSON.stringify(existing ? existing.rule : NEW_RULE, null, 2));
  const [saveIssues, setSaveIssues] = useState<RuleIssue[] | null>(null);
  const [saved, setSaved] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const isStatic = kind === 'tag' && existing && existing.rule === null;
  const parsed = parseRule(text);
  const rule = 'rule' in parsed ? parsed.rule : undefined;
  const preview = usePreview(text, !existing || !!isStatic);

  useEffect(() => {
    setSaveIssues(null);
    setSaved(false);
  }, [text, name, key, description, enabled]);

  const save = useAction(async () => {
    const body =
      kind === 'audience'
        ? { name, description: description || (existing ? null : undefined), rule, enabled }
        : { name, rule };
    try {
      if (existing) await api(`/${kind}s/${existing.key}`, { method: 'PATCH', body });
      else await api(`/${kind}s`, { method: 'POST', body: { key, ...body } });
    } catch (e) {
      const issues = ruleIssues(e as Error, rule);
      if (issues.length) setSaveIssues(issues);
      throw e;
    }
    setSaved(true);
    if (!existing) navigate(`/${kind}s/${key}`, { replace: true });
  });
  const remove = useAction(async () => {
    await api(`/${kind}s/${existing!.key}`, { method: 'DELETE' });
    navigate('/audiences');
  });

  const title = existing ? `${kind === 'audience' ? 'Audience' : 'Tag'}: ${existing.name}` : `New ${noun}`;
  return (
    <>
      <PageHeader title={title}>
        {canWrite && existing && !confirming && (
          <button type="button" class="danger" onClick={() => setConfirming(true)}>
            Delete
          </button>
        )}
      </PageHeader>
      {confirming && (
        <div class="confirm" role="alertdialog" aria-labelledby="confirm-text">
          <p id="confirm-text">
            Delete the {noun} “{existing!.name}” and its membership history? Flows and rules using it refuse this.
          </p>
          <button type="button" class="danger" disabled={remove.busy} onClick={() => remove.run()}>
            Delete for good
          </button>{' '}
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
          <ErrorBox error={remove.error} />
        </div>
      )}
      <form
        class="definition"
        aria-label={`${noun} definition`}
        onSubmit={(e) => {
          e.preventDefault();
          if (canWrite) save.run();
        }}
      >
        <div class="filters">
          <Field label="Name">
            <input
              value={name}
              required
              readOnly={!canWrite}
              onInput={(e) => {
                const v = (e.target as HTMLInputElement).value;
                setName(v);
                if (!existing && !keyTouched) setKey(keyOf(v));
              }}
            />
          </Field>
          <Field label="Key" hint={existing ? 'Rules refer to it; it cannot change' : 'a-z, 0-9 and _'}>
            <input
              value={key}
              required
              readOnly={!!existing || !canWrite}
              onInput={(e) => {
                setKeyTouched(true);
                setKey((e.target as HTMLInputElement).value);
              }}
            />
          </Field>
          {kind === 'audience' && (
            <Field label="Description">
              <input
                value={description}
                readOnly={!canWrite}
                onInput={(e) => setDescription((e.target as HTMLInputElement).value)}
              />
            </Field>
          )}
          {kind === 'audience' && (
            <label class="check">
              <input
                type="checkbox"
                checked={enabled}
                disabled={!canWrite}
                onChange={(e) => setEnabled((e.target as HTMLInputElement).checked)}
              />{' '}
              Enabled (kept current)
            </label>
          )}
        </div>
        {isStatic ? (
          <p class="muted">A static tag: set and removed on people through the API and flows; it has no rule.</p>
        ) : (
          <>
            <PreviewBox state={preview} />
            <RuleEditor text={text} onText={setText} issues={saveIssues ?? preview.issues} />
          </>
        )}
        {canWrite && (
          <p class="form-actions">
            <button type="submit" class="primary" disabled={save.busy || (!existing && !key)}>
              {existing ? 'Save' : `Create ${noun}`}
            </button>{' '}
            <span aria-live="polite">{saved ? 'Saved: members are being recomputed.' : ''}</span>
          </p>
        )}
        {!saveIssues?.length && <ErrorBox error={save.error} />}
      </form>
      {existing && <Members kind={kind} definition={existing} />}
    </>
  );
}
