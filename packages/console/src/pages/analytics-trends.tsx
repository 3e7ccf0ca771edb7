// Trends: events, people, a sum or a mean per hour/day/week/month, optionally broken down by a property and
// compared with the period before; a uPlot line chart with a written summary and the numbers as a table.
import { useMemo, useState } from 'preact/hooks';
import { ErrorBox, Field, fmt } from '../ui.tsx';
import {
  AsApiCall,
  apiRange,
  bucketLabel,
  Choice,
  eventMatch,
  Notes,
  PALETTE,
  pct,
  QueryForm,
  RangeFields,
  ScrollTable,
  usePost,
  useSharedRange,
} from './analytics-common.tsx';
import { type Line, LineChart } from './chart.tsx';

interface TrendLine {
  values: (number | null)[];
  total: number | null;
  previous?: { values: (number | null)[]; total: number | null };
  change?: number | null;
}
interface TrendsAnswer {
  interval: string;
  buckets: string[];
  previous?: { buckets: string[] };
  series: (TrendLine & { name: string; measure: string; groups?: (TrendLine & { group: string | null })[] })[];
  meta: { notes: string[] };
}

const MEASURES: [string, string][] = [
  ['count', 'Events'],
  ['people', 'Unique people'],
  ['sum', 'Sum of a property'],
  ['avg', 'Mean of a property'],
];

export default function Trends() {
  const [range, setRange] = useSharedRange();
  const [form, setForm] = useState({
    event: '',
    measure: 'count',
    property: '',
    interval: 'day',
    breakdown: '',
    compare: true,
  });
  const bodyOf = () => ({
    range: apiRange(range),
    interval: form.interval,
    series: [
      {
        events: eventMatch(form.event),
        measure: form.measure,
        ...(form.measure === 'sum' || form.measure === 'avg' ? { property: form.property.trim() } : {}),
      },
    ],
    ...(form.breakdown.trim() ? { breakdown: { property: form.breakdown.trim() } } : {}),
    ...(form.compare ? { compare: 'previous' } : {}),
  });
  const [body, setBody] = useState<ReturnType<typeof bodyOf>>(bodyOf);
  const q = usePost<TrendsAnswer>('/analytics/trends', body);
  const set = (k: keyof typeof form) => (v: string | boolean) => setForm({ ...form, [k]: v });
  const text = (k: keyof typeof form) => (e: Event) => set(k)((e.target as HTMLInputElement).value);
  const needsProperty = form.measure === 'sum' || form.measure === 'avg';
  return (
    <>
      <QueryForm label="Trend query" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <RangeFields value={range} onChange={setRange} />
        <Field label="Events" hint="Names, comma-separated; empty: every event">
          <input value={form.event} onInput={text('event')} placeholder="Order Completed" />
        </Field>
        <Choice label="Measure" value={form.measure} options={MEASURES} onChange={set('measure')} />
        {needsProperty && (
          <Field label="Property">
            <input required value={form.property} onInput={text('property')} placeholder="revenue" />
          </Field>
        )}
        <Choice
          label="Interval"
          value={form.interval}
          options={['hour', 'day', 'week', 'month']}
          onChange={set('interval')}
        />
        <Field label="Breakdown by property" hint="Optional">
          <input value={form.breakdown} onInput={text('breakdown')} placeholder="category" />
        </Field>
        <label style={{ display: 'flex', gap: '6px', alignItems: 'center' }}>
          <input
            type="checkbox"
            checked={form.compare}
            onChange={(e) => set('compare')((e.target as HTMLInputElement).checked)}
          />
          Compare to previous period
        </label>
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <TrendView answer={q.data} />}
      <AsApiCall path="/analytics/trends" body={body} />
    </>
  );
}

/** The lines of an answer: each series (or each group of it) and, compared, its previous period dashed. */
function linesOf(a: TrendsAnswer): (Line & { total: number | null; change?: number | null })[] {
  const out: (Line & { total: number | null; change?: number | null })[] = [];
  for (const s of a.series) {
    const parts = s.groups?.length
      ? s.groups.map((g) => ({ ...g, label: `${s.name}: ${g.group ?? '(none)'}` }))
      : [{ ...s, label: s.name }];
    for (const p of parts) {
      const color = PALETTE[out.filter((l) => !l.dash).length % PALETTE.length]!;
      out.push({ label: p.label, values: p.values, color, total: p.total, change: p.change });
      if (p.previous)
        out.push({
          label: `${p.label} (previous period)`,
          values: p.previous.values,
          color,
          dash: true,
          total: p.previous.total,
        });
    }
  }
  return out;
}

function TrendView({ answer }: { answer: TrendsAnswer }) {
  const lines = useMemo(() => linesOf(answer), [answer]);
  const current = lines.filter((l) => !l.dash);
  const summary = current
    .map((l) => {
      const prev = lines.find((p) => p.dash && p.label === `${l.label} (previous period)`);
      return `${l.label}: ${fmt(l.total, 2)} in total${prev ? `, previous period ${fmt(prev.total, 2)} (${l.change === null || l.change === undefined ? 'no change figure' : `${l.change > 0 ? '+' : ''}${pct(l.change, 1)}`})` : ''}`;
    })
    .join('; ');
  const title = `${answer.series.map((s) => s.name).join(', ')} per ${answer.interval}`;
  return (
    <figure style={{ margin: '0 0 16px' }}>
      <LineChart x={answer.buckets} lines={lines} summary={`Line chart: ${title}. ${summary}.`} />
      <figcaption>
        <strong>{title}.</strong> <span data-testid="trend-summary">{summary}.</span>
      </figcaption>
      <details>
        <summary>Data table</summary>
        <ScrollTable label="Trend data table">
          <table class="grid">
            <caption class="sr-only">{title}</caption>
            <thead>
              <tr>
                <th scope="col">{answer.interval}</th>
                {lines.map((l) => (
                  <th scope="col" class="num" key={l.label}>
                    {l.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {answer.buckets.map((b, i) => (
                <tr key={b}>
                  <th scope="row">{bucketLabel(b, answer.interval)}</th>
                  {lines.map((l) => (
                    <td class="num" key={l.label}>
                      {fmt(l.values[i], 2)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                {lines.map((l) => (
                  <td class="num" key={l.label}>
                    {fmt(l.total, 2)}
                  </td>
                ))}
              </tr>
            </tfoot>
          </table>
        </ScrollTable>
      </details>
      <Notes notes={answer.meta.notes} />
    </figure>
  );
}
