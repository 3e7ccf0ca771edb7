// Attribution: every model side by side — a table of credited conversions and revenue per channel and model,
// and grouped bars (one group per channel, one bar per model) drawing the same conversions.
import { useState } from 'preact/hooks';
import { ErrorBox, Field, fmt } from '../ui.tsx';
import {
  AsApiCall,
  apiRange,
  Choice,
  eventMatch,
  Notes,
  PALETTE,
  QueryForm,
  RangeFields,
  ScrollTable,
  usePost,
  useSharedRange,
} from './analytics-common.tsx';

interface Credit {
  conversions: number;
  revenue: number;
}
interface AttributionAnswer {
  models: string[];
  channels: { channel: string; models: Record<string, Credit> }[];
  totals: { conversions: number; revenue: number; attributed: Credit; unattributed: Credit };
  meta: { notes: string[] };
}

const MODEL_NAMES: Record<string, string> = {
  first_touch: 'First touch',
  last_touch: 'Last touch',
  last_non_direct: 'Last non-direct',
  linear: 'Linear',
  position_based: 'Position based',
  time_decay: 'Time decay',
};
const modelName = (m: string) => MODEL_NAMES[m] ?? m;

export default function Attribution() {
  const [range, setRange] = useSharedRange();
  const [form, setForm] = useState({
    conversion: 'Order Completed',
    revenue: '',
    lookback: '30',
    channelOf: 'campaign',
  });
  const bodyOf = () => ({
    range: apiRange(range),
    conversion: eventMatch(form.conversion),
    ...(form.revenue.trim() ? { revenueProperty: form.revenue.trim() } : {}),
    lookback: { value: Number(form.lookback), unit: 'days' },
    channelOf: form.channelOf,
  });
  const [body, setBody] = useState<ReturnType<typeof bodyOf>>(bodyOf);
  const q = usePost<AttributionAnswer>('/analytics/attribution', body);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  const text = (k: keyof typeof form) => (e: Event) => set(k)((e.target as HTMLInputElement).value);
  return (
    <>
      <QueryForm label="Attribution query" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <RangeFields value={range} onChange={setRange} />
        <Field label="Conversion event">
          <input required value={form.conversion} onInput={text('conversion')} />
        </Field>
        <Field label="Revenue property" hint="Default: revenue, else total">
          <input value={form.revenue} onInput={text('revenue')} placeholder="revenue" />
        </Field>
        <Field label="Lookback (days)">
          <input
            type="number"
            min="1"
            max="365"
            required
            value={form.lookback}
            style={{ width: '5em' }}
            onInput={text('lookback')}
          />
        </Field>
        <Choice
          label="Channels"
          value={form.channelOf}
          options={[
            ['campaign', 'UTM campaign'],
            ['source_medium', 'UTM source / medium'],
            ['flow', 'Cairn flow (clicks)'],
          ]}
          onChange={set('channelOf')}
        />
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <ModelsSideBySide answer={q.data} />}
      <AsApiCall path="/analytics/attribution" body={body} />
    </>
  );
}

function ModelsSideBySide({ answer }: { answer: AttributionAnswer }) {
  const t = answer.totals;
  return (
    <>
      <p>
        {fmt(t.conversions)} conversions ({fmt(t.revenue, 2)} revenue): {fmt(t.attributed.conversions)} with a touch in
        the lookback, {fmt(t.unattributed.conversions)} without.
      </p>
      <ModelsTable answer={answer} />
      <GroupedBars answer={answer} />
      <Notes notes={answer.meta.notes} />
    </>
  );
}

function ModelsTable({ answer }: { answer: AttributionAnswer }) {
  return (
    <ScrollTable label="Attribution table">
      <table class="grid">
        <caption style={{ textAlign: 'left', fontWeight: 600, padding: '4px 0' }}>
          Conversions and revenue credited per channel, each model side by side
        </caption>
        <thead>
          <tr>
            <th scope="col" rowSpan={2}>
              Channel
            </th>
            {answer.models.map((m) => (
              <th scope="colgroup" colSpan={2} key={m} style={{ textAlign: 'center' }}>
                {modelName(m)}
              </th>
            ))}
          </tr>
          <tr>
            {answer.models.map((m) => [
              <th scope="col" class="num" key={`${m}c`}>
                Conv.
              </th>,
              <th scope="col" class="num" key={`${m}r`}>
                Revenue
              </th>,
            ])}
          </tr>
        </thead>
        <tbody>
          {answer.channels.map((c) => (
            <tr key={c.channel}>
              <th scope="row">{c.channel}</th>
              {answer.models.map((m) => [
                <td class="num" key={`${m}c`}>
                  {fmt(c.models[m]?.conversions, 2)}
                </td>,
                <td class="num" key={`${m}r`}>
                  {fmt(c.models[m]?.revenue, 2)}
                </td>,
              ])}
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollTable>
  );
}

// One group per channel, one bar per model: the table's conversion columns, drawn (the table is the text).
function GroupedBars({ answer }: { answer: AttributionAnswer }) {
  const max = Math.max(0, ...answer.channels.flatMap((c) => answer.models.map((m) => c.models[m]?.conversions ?? 0)));
  return (
    <figure style={{ margin: '16px 0' }}>
      <figcaption>
        <strong>Conversions credited per channel, by model.</strong> The bars draw the conversion columns of the table
        above.
      </figcaption>
      <ul
        aria-hidden="true"
        style={{ display: 'flex', flexWrap: 'wrap', gap: '4px 16px', listStyle: 'none', padding: 0 }}
      >
        {answer.models.map((m, i) => (
          <li key={m}>
            <span
              style={{
                display: 'inline-block',
                width: '12px',
                height: '12px',
                background: PALETTE[i % PALETTE.length],
                marginRight: '6px',
                verticalAlign: 'middle',
              }}
            />
            {modelName(m)}
          </li>
        ))}
      </ul>
      <div
        aria-hidden="true"
        style={{ display: 'flex', gap: '24px', alignItems: 'flex-end', overflowX: 'auto', paddingBottom: '4px' }}
      >
        {answer.channels.map((c) => (
          <div key={c.channel} style={{ textAlign: 'center', minWidth: '90px' }}>
            <div
              style={{
                display: 'flex',
                gap: '2px',
                alignItems: 'flex-end',
                height: '160px',
                justifyContent: 'center',
              }}
            >
              {answer.models.map((m, i) => (
                <div
                  key={m}
                  style={{
                    width: '12px',
                    height: `${max > 0 ? ((c.models[m]?.conversions ?? 0) / max) * 100 : 0}%`,
                    background: PALETTE[i % PALETTE.length],
                  }}
                />
              ))}
            </div>
            <div class="ellipsis" style={{ fontSize: '0.85rem', maxWidth: '120px' }}>
              {c.channel}
            </div>
          </div>
        ))}
      </div>
    </figure>
  );
}
