// Retention: cohorts by a start event, and per period after how many came back, as an HTML table heat map
// (every cell writes its percentage and people; the colour only repeats it).
import { useState } from 'preact/hooks';
import { ErrorBox, Field, fmt } from '../ui.tsx';
import {
  AsApiCall,
  apiRange,
  bucketLabel,
  Choice,
  eventMatch,
  heat,
  Notes,
  pct,
  QueryForm,
  RangeFields,
  ScrollTable,
  usePost,
  useSharedRange,
} from './analytics-common.tsx';

interface RetentionAnswer {
  cohort: string;
  cohorts: {
    cohort: string;
    size: number;
    periods: { period: number; people: number; percent: number | null; complete: boolean }[];
  }[];
  meta: { notes: string[] };
}

export default function Retention() {
  const [range, setRange] = useSharedRange();
  const [form, setForm] = useState({
    start: '',
    ret: '',
    cohort: 'day',
    periods: '7',
    mode: 'first_time',
    bounded: 'true',
  });
  const bodyOf = () => ({
    range: apiRange(range),
    cohort: form.cohort,
    start: eventMatch(form.start),
    return: eventMatch(form.ret),
    mode: form.mode,
    periods: Number(form.periods),
    bounded: form.bounded === 'true',
  });
  const [body, setBody] = useState<ReturnType<typeof bodyOf>>(bodyOf);
  const q = usePost<RetentionAnswer>('/analytics/retention', body);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  const text = (k: keyof typeof form) => (e: Event) => set(k)((e.target as HTMLInputElement).value);
  return (
    <>
      <QueryForm label="Retention query" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <RangeFields value={range} onChange={setRange} />
        <Field label="Start event" hint="Empty: any event">
          <input value={form.start} onInput={text('start')} placeholder="Signed Up" />
        </Field>
        <Field label="Return event" hint="Empty: any event">
          <input value={form.ret} onInput={text('ret')} placeholder="Order Completed" />
        </Field>
        <Choice label="Cohort" value={form.cohort} options={['day', 'week', 'month']} onChange={set('cohort')} />
        <Field label="Periods">
          <input
            type="number"
            min="1"
            max="60"
            required
            value={form.periods}
            style={{ width: '5em' }}
            onInput={text('periods')}
          />
        </Field>
        <Choice
          label="Cohorts of"
          value={form.mode}
          options={[
            ['first_time', 'First start event ever'],
            ['recurring', 'Every start event'],
          ]}
          onChange={set('mode')}
        />
        <Choice
          label="Came back"
          value={form.bounded}
          options={[
            ['true', 'In that period'],
            ['false', 'In that period or later'],
          ]}
          onChange={set('bounded')}
        />
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <CohortGrid answer={q.data} />}
      <AsApiCall path="/analytics/retention" body={body} />
    </>
  );
}

function CohortGrid({ answer }: { answer: RetentionAnswer }) {
  const periods = Math.max(0, ...answer.cohorts.map((c) => c.periods.length));
  const people = answer.cohorts.reduce((n, c) => n + c.size, 0);
  // Cohorts nobody entered are counted, not drawn: a row of dashes says nothing.
  const shown = answer.cohorts.filter((c) => c.size > 0);
  const empty = answer.cohorts.length - shown.length;
  const unit = answer.cohort;
  return (
    <figure style={{ margin: '0 0 16px' }}>
      <figcaption>
        <strong>Retention by {unit} cohort.</strong> {fmt(people)} people in {answer.cohorts.length} cohorts
        {empty ? ` (${empty} empty, not shown)` : ''}. Each cell: the share of the cohort that came back in that {unit}{' '}
        after, and how many people. Cells in italics are periods not over yet.
      </figcaption>
      <ScrollTable label="Retention grid">
        <table class="grid">
          <caption class="sr-only">Retention per {unit} cohort: people who came back per period after</caption>
          <thead>
            <tr>
              <th scope="col">Cohort</th>
              <th scope="col" class="num">
                People
              </th>
              {Array.from({ length: periods }, (_, k) => (
                <th scope="col" class="num" key={k}>
                  {unit} {k}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((c) => (
              <tr key={c.cohort}>
                <th scope="row">{bucketLabel(c.cohort, unit)}</th>
                <td class="num">{fmt(c.size)}</td>
                {c.periods.map((p) => (
                  <td
                    key={p.period}
                    class="num"
                    style={{ ...heat(p.percent), ...(p.complete ? {} : { fontStyle: 'italic' }) }}
                    title={`${p.people} of ${c.size}${p.complete ? '' : ' (period not over)'}`}
                  >
                    {pct(p.percent, 1)}
                    <br />
                    <small>{fmt(p.people)}</small>
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollTable>
      <Notes notes={answer.meta.notes} />
    </figure>
  );
}
