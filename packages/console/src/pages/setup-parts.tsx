// Pieces the Setup pages share: copying a value, a secret shown once, and a two-step confirm for removals.
import { useState } from 'preact/hooks';
import { ErrorBox } from '../ui.tsx';

export type Role = 'admin' | 'operator' | 'analyst';

/** What each role may do (the server's permission table, in words). */
export const ROLE_HELP: Record<Role, string> = {
  admin: 'everything, clear PII',
  operator: 'every write but people and keys; PII masked',
  analyst: 'reads only; PII masked',
};
export const ROLES = Object.keys(ROLE_HELP) as Role[];

async function copyText(text: string, fallback: () => HTMLTextAreaElement | HTMLInputElement | null) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an http:// address other than localhost): select the text and copy the selection.
    const el = fallback();
    el?.select();
    if (!document.execCommand('copy')) throw new Error('copy it by hand: the text is selected');
  }
}

/**
 * A button copying `text` to the clipboard, saying so in a live region.
 *
 * @example
 * <CopyButton text={tag} label="Copy the snippet tag" />
 */
export function CopyButton(props: { text: string; label: string; target?: () => HTMLTextAreaElement | null }) {
  const [copied, setCopied] = useState<boolean>();
  const [error, setError] = useState<Error>();
  const copy = () =>
    copyText(props.text, props.target ?? (() => null))
      .then(() => setCopied(true))
      .catch((e: Error) => setError(e));
  return (
    <>
      <button type="button" onClick={copy}>
        {props.label}
      </button>
      <span role="status" class="muted">
        {copied ? ' Copied.' : ''}
      </span>
      <ErrorBox error={error} />
    </>
  );
}

/**
 * A value the server shows once (a new API key, an initial password): in view, with Copy, and a warning.
 *
 * @example
 * <ShownOnce label="API key" value={created.key} />
 */
export function ShownOnce(props: { label: string; value: string; note: string }) {
  return (
    <div class="card" role="status" style={{ borderColor: 'var(--warn)', margin: '12px 0' }}>
      <p style={{ margin: '0 0 6px' }}>
        <strong>{props.label}</strong> (shown once): <code>{props.value}</code>
      </p>
      <p class="muted" style={{ margin: '0 0 6px' }}>
        {props.note}
      </p>
      <CopyButton text={props.value} label={`Copy the ${props.label.toLowerCase()}`} />
    </div>
  );
}

/**
 * A destructive action asked twice: the first click shows Confirm and Cancel.
 *
 * @example
 * <ConfirmButton label="Revoke" what="the key ci-deploy" onConfirm={() => revoke(id)} />
 */
export function ConfirmButton(props: { label: string; what: string; busy?: boolean; onConfirm: () => void }) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return (
      <button type="button" onClick={() => setAsking(true)} aria-label={`${props.label} ${props.what}`}>
        {props.label}
      </button>
    );
  return (
    <span>
      <button
        type="button"
        class="danger"
        disabled={props.busy}
        onClick={() => {
          setAsking(false);
          props.onConfirm();
        }}
      >
        {props.label} {props.what}
      </button>{' '}
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
