// Funnels: a steps editor, then per step the people who reached it as bars with conversion and drop-off,
// and the people who dropped before a step (POST /api/analytics/funnels/people) linked to their pages.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { ErrorBox, Field, fmt, useAction } from '../ui.tsx';
import {
  AsApiCall,
  apiRange,
  Bar,
  Choice,
  eventMatch,
  Notes,
  pct,
  QueryForm,
  RangeFields,
  ScrollTable,
  usePost,
  useSharedRange,
} from './analytics-common.tsx';

interface Step {
  step: number;
  name: string;
  entered: number;
  fromPrevious: number | null;
  fromFirst: number | null;
  dropOff: number;
  medianSeconds: number | null;
}
interface FunnelAnswer {
  steps: Step[];
  meta: { notes: string[] };
}
type FunnelBody = Record<string, unknown>;

const DEFAULT_STEPS = ['Product Viewed', 'Product Added', 'Order Completed'];

export default function Funnels() {
  const [range, setRange] = useSharedRange();
  const [steps, setSteps] = useState(DEFAULT_STEPS);
  const [win, setWin] = useState({ value: '7', unit: 'days', order: 'sequential' });
  const bodyOf = (): FunnelBody => ({
    range: apiRange(range),
    steps: steps.map((s) => ({ events: eventMatch(s), name: s.trim() })),
    window: { value: Number(win.value), unit: win.unit },
    order: win.order,
  });
  const [body, setBody] = useState<FunnelBody>(bodyOf);
  const q = usePost<FunnelAnswer>('/analytics/funnels', body);
  return (
    <>
      <QueryForm label="Funnel query" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <RangeFields value={range} onChange={setRange} />
        <StepsEditor steps={steps} onChange={setSteps} />
        <Field label="Conversion window">
          <input
            type="number"
            min="1"
            required
            value={win.value}
            style={{ width: '6em' }}
            onInput={(e) => setWin({ ...win, value: (e.target as HTMLInputElement).value })}
          />
        </Field>
        <Choice
          label="Window unit"
          value={win.unit}
          options={['minutes', 'hours', 'days']}
          onChange={(unit) => setWin({ ...win, unit })}
        />
        <Choice
          label="Order"
          value={win.order}
          options={[
            ['sequential', 'In order'],
            ['strict', 'Strictly in order'],
            ['any', 'Any order'],
          ]}
          onChange={(order) => setWin({ ...win, order })}
        />
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <FunnelView key={JSON.stringify(body)} answer={q.data} body={body} />}
      <AsApiCall path="/analytics/funnels" body={body} />
    </>
  );
}

// The steps, in order: an event name each (or several, comma-separated), 2 to 20 of them.
function StepsEditor(props: { steps: string[]; onChange: (steps: string[]) => void }) {
  const setStep = (i: number, v: string) => props.onChange(props.steps.map((s, k) => (k === i ? v : s)));
  return (
    <fieldset
      style={{
        border: '1px solid var(--line)',
        borderRadius: '6px',
        padding: '8px 12px',
        flexBasis: '100%',
        minWidth: 0,
      }}
    >
      <legend>Steps</legend>
      <ol style={{ margin: 0, padding: 0, display: 'flex', flexWrap: 'wrap', gap: '8px 16px', listStyle: 'none' }}>
        {props.steps.map((s, i) => (
          <li key={i} style={{ display: 'flex', flexWrap: 'wrap', gap: '6px', alignItems: 'flex-end' }}>
            <Field label={`Step ${i + 1} event`}>
              <input
                required
                value={s}
                style={{ width: '14em', maxWidth: '100%' }}
                onInput={(e) => setStep(i, (e.target as HTMLInputElement).value)}
              />
            </Field>
            {props.steps.length > 2 && (
              <button type="button" onClick={() => props.onChange(props.steps.filter((_, k) => k !== i))}>
                Remove step {i + 1}
              </button>
            )}
          </li>
        ))}
      </ol>
      {props.steps.length < 20 && (
        <button type="button" style={{ marginTop: '6px' }} onClick={() => props.onChange([...props.steps, ''])}>
          Add a step
        </button>
      )}
    </fieldset>
  );
}

const duration = (s: number | null) => {
  if (s === null) return '—';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${fmt(s / 3600, 1)} h`;
  return `${fmt(s / 86_400, 1)} d`;
};

function FunnelView({ answer, body }: { answer: FunnelAnswer; body: FunnelBody }) {
  const [dropped, setDropped] = useState<number>();
  const first = answer.steps[0]?.entered ?? 0;
  const last = answer.steps[answer.steps.length - 1];
  const summary = `${fmt(first)} people entered; ${fmt(last?.entered ?? 0)} reached the last step (${pct(last?.fromFirst)}).`;
  return (
    <figure style={{ margin: '0 0 16px' }}>
      <figcaption>
        <strong>Funnel.</strong> {summary}
      </figcaption>
      <ScrollTable label="Funnel steps">
        <table class="grid">
          <caption class="sr-only">Funnel steps: people, conversion and drop-off</caption>
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col" class="num">
                People
              </th>
              <th scope="col" style={{ width: '30%' }}>
                <span class="sr-only">Bar</span>
              </th>
              <th scope="col" class="num">
                Of step 1
              </th>
              <th scope="col" class="num">
                Of previous
              </th>
              <th scope="col" class="num">
                Drop-off
              </th>
              <th scope="col" class="num">
                Median time
              </th>
              <th scope="col">
                <span class="sr-only">Who dropped</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {answer.steps.map((s, i) => {
              const prev = answer.steps[i - 1];
              const dropPct = prev && prev.entered > 0 ? (s.dropOff / prev.entered) * 100 : null;
              return (
                <tr key={s.step}>
                  <th scope="row">
                    {s.step}. {s.name}
                  </th>
                  <td class="num">{fmt(s.entered)}</td>
                  <td>
                    <Bar value={s.entered} max={first} />
                  </td>
                  <td class="num">{pct(s.fromFirst)}</td>
                  <td class="num">{i === 0 ? '—' : pct(s.fromPrevious)}</td>
                  <td class="num" data-drop-off={i === 0 ? undefined : s.step}>
                    {i === 0 ? '—' : `${fmt(s.dropOff)} (${pct(dropPct)})`}
                  </td>
                  <td class="num">{i === 0 ? '—' : duration(s.medianSeconds)}</td>
                  <td>
                    {i > 0 && s.dropOff > 0 && (
                      <button type="button" class="link" onClick={() => setDropped(s.step)}>
                        Who dropped before step {s.step}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </ScrollTable>
      {dropped !== undefined && <DroppedPeople key={dropped} body={body} step={dropped} />}
      <Notes notes={answer.meta.notes} />
    </figure>
  );
}

function DroppedPeople(props: { body: FunnelBody; step: number }) {
  const [ids, setIds] = useState<string[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const load = useAction(async (after?: string) => {
    const page = await api<{ data: string[]; nextCursor: string | null }>('/analytics/funnels/people', {
      method: 'POST',
      body: { ...props.body, step: props.step, status: 'dropped', limit: 50, ...(after ? { cursor: after } : {}) },
    });
    setIds((x) => [...x, ...page.data]);
    setCursor(page.nextCursor);
  });
  useEffect(() => {
    load.run();
  }, []);
  return (
    <section aria-labelledby="dropped-title">
      <h2 id="dropped-title">Dropped before step {props.step}</h2>
      <p class="muted">
        Reached step {props.step - 1} but not step {props.step} within the window.
      </p>
      <ErrorBox error={load.error} />
      <ul>
        {ids.map((id) => (
          <li key={id}>
            <Link href={`/people/${id}`}>Person {id}</Link>
          </li>
        ))}
      </ul>
      {load.busy && <p aria-busy="true">Loading…</p>}
      {cursor && (
        <button type="button" onClick={() => load.run(cursor)} disabled={load.busy}>
          More
        </button>
      )}
    </section>
  );
}
