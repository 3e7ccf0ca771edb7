// Pieces every analytics view shares: the date range (kept while switching views), event names typed as
// text, POST queries run on submit, HTML bars and heat-map colours, and the query shown as an API call.
import type { ComponentChildren, CSSProperties } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Field, fmt, Json } from '../ui.tsx';

/** A date range as the form holds it: local calendar days, both inclusive (YYYY-MM-DD). */
export interface DayRange {
  from: string;
  to: string;
}

/** The viewer's time zone: days, weeks and months are cut in it. */
export const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

const ymd = (d: Date) =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

/**
 * The last `days` days, today included.
 *
 * @example
 * lastDays(14); // { from: '2026-11-24', to: '2026-12-07' }
 */
export function lastDays(days: number): DayRange {
  const to = new Date();
  const from = new Date(to.getFullYear(), to.getMonth(), to.getDate() - (days - 1));
  return { from: ymd(from), to: ymd(to) };
}

/**
 * The API's range for the form's days: local midnights, the end exclusive (the day after `to`).
 *
 * @example
 * apiRange({ from: '2026-12-01', to: '2026-12-07' }); // { from: '…T…Z', to: '…', timezone: 'Europe/Berlin' }
 */
export function apiRange(r: DayRange) {
  const [y, m, d] = r.to.split('-').map(Number) as [number, number, number];
  return {
    from: new Date(`${r.from}T00:00:00`).toISOString(),
    to: new Date(y, m - 1, d + 1).toISOString(),
    timezone: ZONE,
  };
}

// Kept for the page's life, so switching views keeps the range the analyst picked.
let shared: DayRange = lastDays(14);

/**
 * The range shared by the analytics views.
 *
 * @example
 * const [range, setRange] = useSharedRange();
 */
export function useSharedRange(): [DayRange, (r: DayRange) => void] {
  const [range, set] = useState(shared);
  return [
    range,
    (r) => {
      shared = r;
      set(r);
    },
  ];
}

/** The range's two date fields. */
export function RangeFields(props: { value: DayRange; onChange: (r: DayRange) => void }) {
  const set = (k: keyof DayRange) => (e: Event) =>
    props.onChange({ ...props.value, [k]: (e.target as HTMLInputElement).value });
  return (
    <>
      <Field label="From">
        <input type="date" required value={props.value.from} max={props.value.to} onInput={set('from')} />
      </Field>
      <Field label="To" hint={`Inclusive, ${ZONE}`}>
        <input type="date" required value={props.value.to} min={props.value.from} onInput={set('to')} />
      </Field>
    </>
  );
}

/**
 * An event match from what was typed: names separated by commas; nothing is every event.
 *
 * @example
 * eventMatch('Order Completed, Refunded'); // { event: ['Order Completed', 'Refunded'] }
 */
export function eventMatch(text: string): { event?: string | string[] } {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) return {};
  return { event: names.length === 1 ? names[0]! : names };
}

/**
 * Runs a POST query whenever `body` changes (null: nothing yet); the answer, its error and a busy flag.
 *
 * @example
 * const q = usePost<TrendsAnswer>('/analytics/trends', submitted);
 */
export function usePost<T>(path: string, body: unknown) {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: body !== null });
  const key = body === null ? null : JSON.stringify(body);
  useEffect(() => {
    if (key === null) return setState({ loading: false });
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    api<T>(path, { method: 'POST', body: JSON.parse(key), signal: ctl.signal })
      .then((data) => setState({ data, loading: false }))
      .catch((error: Error) => {
        if (error.name !== 'AbortError') setState({ error, loading: false });
      });
    return () => ctl.abort();
  }, [path, key]);
  return state;
}

/** A form of query fields with its submit button (queries run on submit, never on each keystroke). */
export function QueryForm(props: { label: string; onSubmit: () => void; busy?: boolean; children: ComponentChildren }) {
  return (
    <form
      class="filters"
      aria-label={props.label}
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      {props.children}
      <button type="submit" class="primary" disabled={props.busy}>
        Show
      </button>
    </form>
  );
}

/** The query as the API takes it, so an analyst can repeat it with curl or a script (the console is headless too). */
export function AsApiCall(props: { path: string; body: unknown }) {
  return (
    <details class="api-call">
      <summary>As an API call</summary>
      <Json label="API request" value={{ method: 'POST', path: `/api${props.path}`, body: props.body }} />
    </details>
  );
}

/** How the numbers were counted (every analytics answer says). */
export function Notes(props: { notes?: string[] }) {
  if (!props.notes?.length) return null;
  return (
    <details>
      <summary>How these numbers are counted</summary>
      <ul class="muted">
        {props.notes.map((n) => (
          <li key={n}>{n}</li>
        ))}
      </ul>
    </details>
  );
}

/**
 * A percentage as text ('45.5%'), or a dash.
 *
 * @example
 * pct(45.456); // '45.46%'
 */
export function pct(n: number | null | undefined, digits = 2): string {
  return n === null || n === undefined ? '—' : `${fmt(n, digits)}%`;
}

/**
 * A `.table-scroll` that also contains its screen-reader-only texts: `.sr-only` is absolutely positioned, and
 * inside a scrolled table without a positioned ancestor it would widen the page on a phone.
 */
export const SCROLL: CSSProperties = { position: 'relative' };

/**
 * A table that scrolls sideways on a narrow screen: a named region that takes keyboard focus so it can be
 * scrolled without a mouse (axe: scrollable-region-focusable), containing its screen-reader-only texts.
 *
 * @example
 * <ScrollTable label="Funnel steps"><table class="grid">…</table></ScrollTable>
 */
export function ScrollTable(props: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
    <section class="table-scroll" style={SCROLL} tabIndex={0} aria-label={props.label}>
      {props.children}
    </section>
  );
}

/** Series colours: distinct, each ≥ 3:1 against white (WCAG non-text contrast). */
export const PALETTE = ['#0b5cad', '#c2410c', '#116329', '#8250df', '#a40e26', '#0e7490', '#7d4e00', '#57606a'];

/** A horizontal bar, drawn only (its number is always written beside it). */
export function Bar(props: { value: number; max: number; color?: string; thin?: boolean }) {
  const w = props.max > 0 ? Math.max(0, Math.min(100, (props.value / props.max) * 100)) : 0;
  return (
    <div aria-hidden="true" style={{ background: '#eef1f4', borderRadius: '3px', minWidth: '80px' }}>
      <div
        style={{
          width: `${w}%`,
          height: props.thin ? '8px' : '14px',
          background: props.color ?? PALETTE[0],
          borderRadius: '3px',
        }}
      />
    </div>
  );
}

/**
 * A heat-map cell's colours for a percentage: blue, darker with more, and black or white text,
 * whichever contrasts more (≥ 4.5:1 for every shade).
 *
 * @example
 * <td style={heat(42)}>42%</td>
 */
export function heat(percent: number | null): CSSProperties {
  if (percent === null) return {};
  const t = Math.max(0, Math.min(1, percent / 100));
  // From a pale to a deep blue, linearly in sRGB.
  const rgb = [235 - 224 * t, 243 - 171 * t, 255 - 117 * t].map(Math.round) as [number, number, number];
  const lum = luminance(rgb);
  return { background: `rgb(${rgb.join(',')})`, color: lum > 0.179 ? '#000' : '#fff' };
}

function luminance(rgb: [number, number, number]): number {
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/**
 * A bucket's start as a short local label for its interval.
 *
 * @example
 * bucketLabel('2026-12-01T00:00:00.000Z', 'day'); // '12/1/26'
 */
export function bucketLabel(iso: string, interval: string): string {
  const d = new Date(iso);
  if (interval === 'hour') return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
  if (interval === 'month') return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short' });
  return d.toLocaleDateString(undefined, { dateStyle: 'short' });
}

/** A select of fixed values. */
export function Choice(props: {
  label: string;
  value: string;
  options: readonly (string | [string, string])[];
  onChange: (v: string) => void;
}) {
  return (
    <Field label={props.label}>
      <select value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map((o) => {
          const [value, text] = typeof o === 'string' ? [o, o] : o;
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
    </Field>
  );
}
