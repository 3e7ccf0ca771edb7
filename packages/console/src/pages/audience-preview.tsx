// The live preview of an unsaved rule: how many people it selects now (POST /api/audiences/preview, the
// same evaluation as membership), a few of them, the rule in words, and the problems the API found.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { ErrorBox, fmt } from '../ui.tsx';
import { parseRule, type RuleIssue, ruleIssues } from './rule-paths.ts';

interface PreviewAnswer {
  count: number;
  sample: string[];
  words: string;
  at: string;
}

/** What the preview shows: nothing yet, a count, the rule's problems, or another error. */
export interface PreviewState {
  busy: boolean;
  answer?: PreviewAnswer;
  issues: RuleIssue[];
  error?: Error;
}

/**
 * Previews `text` (a rule's JSON) a moment after it stops changing; `idle` waits for the first change
 * (a new rule is not previewed before anyone touched it).
 *
 * @example
 * const preview = usePreview(text, !existing);
 */
export function usePreview(text: string, idle: boolean): PreviewState {
  const [state, setState] = useState<PreviewState>({ busy: false, issues: [] });
  const [first] = useState(text);
  useEffect(() => {
    if (idle && text === first) return;
    const parsed = parseRule(text);
    if (!('rule' in parsed)) return setState({ busy: false, issues: [] });
    const ctl = new AbortController();
    const t = setTimeout(() => {
      setState((s) => ({ ...s, busy: true }));
      api<PreviewAnswer>('/audiences/preview', {
        method: 'POST',
        body: { rule: parsed.rule, sample: 5 },
        signal: ctl.signal,
      })
        .then((answer) => setState({ busy: false, answer, issues: [] }))
        .catch((e: Error) => {
          if (e.name === 'AbortError') return;
          const issues = ruleIssues(e, parsed.rule);
          setState({ busy: false, issues, error: issues.length ? undefined : e });
        });
    }, 350);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [text]);
  return state;
}

/**
 * The preview's count, sample and words (announced politely as they change).
 *
 * @example
 * <PreviewBox state={preview} />
 */
export function PreviewBox(props: { state: PreviewState }) {
  const { answer, issues, error, busy } = props.state;
  return (
    <section class="card preview" aria-labelledby="preview-title">
      <h2 id="preview-title">Preview</h2>
      <div aria-live="polite" aria-busy={busy}>
        {issues.length > 0 ? (
          <p>The rule has {issues.length === 1 ? 'a problem' : `${issues.length} problems`}: see the conditions.</p>
        ) : answer ? (
          <>
            <p>
              <span class="big" data-testid="preview-count">
                {fmt(answer.count, 0)}
              </span>{' '}
              {answer.count === 1 ? 'person matches' : 'people match'} now
            </p>
            <p class="muted words">{answer.words}</p>
          </>
        ) : (
          <p class="muted">{busy ? 'Counting…' : 'Change the rule to see how many people it selects.'}</p>
        )}
      </div>
      {answer && answer.sample.length > 0 && issues.length === 0 && (
        <p>
          For example:{' '}
          {answer.sample.map((id, i) => (
            <span key={id}>
              {i > 0 && ', '}
              <Link href={`/people/${id}`} aria-label={`Person ${id}`}>
                {id.slice(0, 8)}
              </Link>
            </span>
          ))}
        </p>
      )}
      <ErrorBox error={error} />
    </section>
  );
}
