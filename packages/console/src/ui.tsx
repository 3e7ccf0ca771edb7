// Shared pieces every page uses: data loading, errors, permission checks, time and JSON display.
import { type ComponentChildren, createContext, type JSX } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, type Me } from './api.ts';

/** The signed-in caller, for pages that show or hide actions by permission. */
export const MeContext = createContext<Me | null>(null);

/**
 * Whether the signed-in caller holds a permission (hide what the API would refuse).
 *
 * @example
 * const canWrite = useCan('audiences:write');
 */
export function useCan(permission: string): boolean {
  return useContext(MeContext)?.permissions.includes(permission) ?? false;
}

/** The signed-in caller. */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error('useMe outside the signed-in shell');
  return me;
}

/**
 * Loads `path` from the admin API, again when it changes; `reload()` fetches again.
 *
 * @example
 * const { data, error, loading, reload } = useApi<{ data: Tag[] }>('/tags');
 */
export function useApi<T>(path: string | null) {
  const [state, setState] = useState<{ data?: T; error?: ApiError | Error; loading: boolean }>({ loading: !!path });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return setState({ loading: false });
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    api<T>(path, { signal: ctl.signal })
      .then((data) => setState({ data, loading: false }))
      .catch((error: Error) => {
        if (error.name !== 'AbortError') setState({ error, loading: false });
      });
    return () => ctl.abort();
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/**
 * Runs an action (a POST, a DELETE) with a busy flag and its error kept for display.
 *
 * @example
 * const save = useAction(() => api('/tags', { method: 'POST', body }));
 * <button disabled={save.busy} onClick={save.run}>Save</button><ErrorBox error={save.error} />
 */
export function useAction<A extends unknown[], T>(fn: (...args: A) => Promise<T>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const [result, setResult] = useState<T>();
  const run = async (...args: A): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await fn(...args);
      setResult(r);
      return r;
    } catch (e) {
      setError(e as Error);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, result, run };
}

/** An error, with the API's per-field details when it gave them. */
export function ErrorBox(props: { error?: Error | null }) {
  const e = props.error;
  if (!e) return null;
  const details =
    e instanceof ApiError && Array.isArray(e.details) ? (e.details as { path?: string; message?: string }[]) : [];
  return (
    <div class="error" role="alert">
      <strong>{e instanceof ApiError ? `${e.status} ${e.code}` : 'Error'}:</strong> {e.message}
      {details.length > 1 && (
        <ul>
          {details.map((d) => (
            <li key={`${d.path}:${d.message}`}>
              <code>{d.path || 'body'}</code>: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** The page's title (the one h1, focused after navigation so screen readers announce the page). */
export function PageHeader(props: { title: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Cairn`;
    ref.current?.focus();
  }, [props.title]);
  return (
    <header class="page-header">
      <h1 tabIndex={-1} ref={ref}>
        {props.title}
      </h1>
      {props.children && <div class="actions">{props.children}</div>}
    </header>
  );
}

/** A timestamp in the viewer's time zone, with the exact ISO time on hover. */
export function Time(props: { at: string | null | undefined }) {
  if (!props.at) return <span class="muted">—</span>;
  const d = new Date(props.at);
  return (
    <time dateTime={props.at} title={props.at}>
      {d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })}
    </time>
  );
}

/** JSON, pretty-printed, in a scrollable block. */
export function Json(props: { value: unknown; label?: string }) {
  return (
    // A scrollable block must take keyboard focus to be scrolled without a mouse (axe: scrollable-region-focusable).
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
    // biome-ignore lint/a11y/useAriaPropsSupportedByRole: the label names the region for screen readers
    <pre class="json" tabIndex={0} aria-label={props.label ?? 'JSON'}>
      {JSON.stringify(props.value, null, 2)}
    </pre>
  );
}

/** A loading line, an error, or the children once data is there. */
export function Loaded<T>(props: {
  state: { data?: T; error?: Error; loading: boolean };
  children: (data: T) => ComponentChildren;
}) {
  if (props.state.error) return <ErrorBox error={props.state.error} />;
  if (props.state.data === undefined) return <p aria-busy="true">Loading…</p>;
  return <>{props.children(props.state.data)}</>;
}

/** A labelled form field (label tied to the control for screen readers). */
export function Field(props: { label: string; children: JSX.Element; hint?: string }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control is the child passed in
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small class="muted">{props.hint}</small>}
    </label>
  );
}

/** A status as a coloured badge (delivered, dead, live, …). */
export function Badge(props: { value: string; tone?: 'ok' | 'warn' | 'bad' | 'info' }) {
  return <span class={`badge ${props.tone ?? tone(props.value)}`}>{props.value}</span>;
}

function tone(v: string): 'ok' | 'warn' | 'bad' | 'info' {
  if (/^(delivered|live|active|ok|stored|granted|subscribed|resolved|approved|closed)$/.test(v)) return 'ok';
  if (/^(dead|failed|refused|error|denied|unsubscribed|open|firing|rejected)$/.test(v)) return 'bad';
  if (/^(retrying|pending|waiting|paused|half-open|draft|in_review|skipped)$/.test(v)) return 'warn';
  return 'info';
}

/**
 * Formats a number with the viewer's separators.
 *
 * @example
 * fmt(12345.6); // '12,345.6'
 */
export function fmt(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}
