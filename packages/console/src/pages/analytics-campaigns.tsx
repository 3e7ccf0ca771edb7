// Campaigns: the list (GET /api/campaigns) and one campaign's results (POST /api/analytics/campaigns/{id}/results):
// sent, opened, clicked, converted, revenue, cost, ROI and cost per acquisition, per flow and per UTM value.
import { useState } from 'preact/hooks';
import { ErrorBox, Field, fmt, Loaded, useApi } from '../ui.tsx';
import { AsApiCall, Bar, eventMatch, Notes, pct, QueryForm, ScrollTable, usePost } from './analytics-common.tsx';

interface Campaign {
  id: string;
  name: string;
  currency: string;
  budget: number | null;
  startDate: string;
  endDate: string | null;
  cost: number;
  utm: string[];
  flows: string[];
}
interface Metrics {
  sent: number;
  delivered: number;
  reached: number;
  opened: { people: number; rate: number | null };
  clicked: { people: number; rate: number | null };
  unsubscribed: number;
  converted: number | null;
  revenue: number | null;
}
interface Results {
  campaign: { name: string; currency: string };
  totals: Metrics & {
    touched: number;
    cost: number;
    roi: number | null;
    costPerAcquisition: number | null;
    revenuePerConversion: number | null;
  };
  flows: (Metrics & { flowId: string; name: string | null })[];
  utm: { value: string; people: number; converted: number | null; revenue: number | null }[];
  meta: { notes: string[] };
}

export default function Campaigns() {
  const list = useApi<{ data: Campaign[] }>('/campaigns');
  const [chosen, setChosen] = useState<string>();
  return (
    <Loaded state={list}>
      {({ data }) =>
        data.length === 0 ? (
          <p class="muted">No campaigns yet. Create one with POST /api/campaigns (name, dates, flows, UTM values).</p>
        ) : (
          <>
            <table class="grid">
              <caption class="sr-only">Campaigns</caption>
              <thead>
                <tr>
                  <th scope="col">Campaign</th>
                  <th scope="col">Dates</th>
                  <th scope="col">UTM values</th>
                  <th scope="col" class="num">
                    Budget
                  </th>
                  <th scope="col" class="num">
                    Cost
                  </th>
                </tr>
              </thead>
              <tbody>
                {data.map((c) => (
                  <tr key={c.id} aria-current={c.id === chosen ? 'true' : undefined}>
                    <th scope="row">
                      <button type="button" class="link" onClick={() => setChosen(c.id)}>
                        {c.name}
                      </button>
                    </th>
                    <td>
                      {c.startDate} – {c.endDate ?? 'open'}
                    </td>
                    <td>{c.utm.join(', ') || '—'}</td>
                    <td class="num">{c.budget === null ? '—' : `${fmt(c.budget, 2)} ${c.currency}`}</td>
                    <td class="num">
                      {fmt(c.cost, 2)} {c.currency}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {chosen && <CampaignResults key={chosen} campaign={data.find((c) => c.id === chosen)!} />}
          </>
        )
      }
    </Loaded>
  );
}

function CampaignResults({ campaign }: { campaign: Campaign }) {
  const [form, setForm] = useState({ goal: 'Order Completed', days: '7' });
  const bodyOf = () =>
    form.goal.trim()
      ? { goal: { events: eventMatch(form.goal), window: { value: Number(form.days), unit: 'days' } } }
      : {};
  const [body, setBody] = useState<ReturnType<typeof bodyOf>>(bodyOf);
  const path = `/analytics/campaigns/${encodeURIComponent(campaign.id)}/results`;
  const q = usePost<Results>(path, body);
  return (
    <section aria-labelledby="campaign-title">
      <h2 id="campaign-title">{campaign.name}</h2>
      <QueryForm label="Campaign goal" onSubmit={() => setBody(bodyOf())} busy={q.loading}>
        <Field label="Goal event" hint="Empty: no conversions, ROI or CPA">
          <input value={form.goal} onInput={(e) => setForm({ ...form, goal: (e.target as HTMLInputElement).value })} />
        </Field>
        <Field label="Window after a touch (days)">
          <input
            type="number"
            min="1"
            max="90"
            required
            value={form.days}
            style={{ width: '5em' }}
            onInput={(e) => setForm({ ...form, days: (e.target as HTMLInputElement).value })}
          />
        </Field>
      </QueryForm>
      <ErrorBox error={q.error} />
      {q.loading && <p aria-busy="true">Loading…</p>}
      {q.data && <ResultsView r={q.data} />}
      <AsApiCall path={path} body={body} />
    </section>
  );
}

function ResultsView({ r }: { r: Results }) {
  const t = r.totals;
  const cur = r.campaign.currency;
  const money = (n: number | null) => (n === null ? '—' : `${fmt(n, 2)} ${cur}`);
  const funnel: [string, number | null][] = [
    ['Touched', t.touched],
    ['Sent', t.sent],
    ['Opened (people)', t.opened.people],
    ['Clicked (people)', t.clicked.people],
    ['Converted (people)', t.converted],
  ];
  const top = Math.max(1, ...funnel.map(([, v]) => v ?? 0));
  return (
    <>
      <dl class="cards">
        {(
          [
            ['ROI', t.roi === null ? '—' : pct(t.roi * 100, 1)],
            ['Cost per acquisition', money(t.costPerAcquisition)],
            ['Revenue', money(t.revenue)],
            ['Cost', money(t.cost)],
            ['Converted', fmt(t.converted)],
          ] as const
        ).map(([k, v]) => (
          <div class="card" key={k}>
            <dt class="muted">{k}</dt>
            <dd class="big" style={{ margin: 0 }}>
              {v}
            </dd>
          </div>
        ))}
      </dl>
      <table class="grid" style={{ marginTop: '12px' }}>
        <caption class="sr-only">From touch to conversion</caption>
        <tbody>
          {funnel.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td class="num">{fmt(v)}</td>
              <td style={{ width: '50%' }}>
                <Bar value={v ?? 0} max={top} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {r.utm.length > 0 && <UtmTable r={r} money={money} />}
      {r.flows.length > 0 && <FlowsTable r={r} money={money} />}
      <Notes notes={r.meta.notes} />
    </>
  );
}

type Money = (n: number | null) => string;

function UtmTable({ r, money }: { r: Results; money: Money }) {
  return (
    <>
      <h3>By UTM value</h3>
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">UTM campaign</th>
            <th scope="col" class="num">
              People
            </th>
            <th scope="col" class="num">
              Converted
            </th>
            <th scope="col" class="num">
              Revenue
            </th>
          </tr>
        </thead>
        <tbody>
          {r.utm.map((u) => (
            <tr key={u.value}>
              <th scope="row">{u.value}</th>
              <td class="num">{fmt(u.people)}</td>
              <td class="num">{fmt(u.converted)}</td>
              <td class="num">{money(u.revenue)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function FlowsTable({ r, money }: { r: Results; money: Money }) {
  return (
    <>
      <h3>By flow</h3>
      <ScrollTable label="Results by flow">
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Flow</th>
              {['Sent', 'Delivered', 'Opened', 'Clicked', 'Unsubscribed', 'Converted', 'Revenue'].map((h) => (
                <th scope="col" class="num" key={h}>
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {r.flows.map((f) => (
              <tr key={f.flowId}>
                <th scope="row">{f.name ?? f.flowId}</th>
                <td class="num">{fmt(f.sent)}</td>
                <td class="num">{fmt(f.delivered)}</td>
                <td class="num">
                  {fmt(f.opened.people)} ({pct(f.opened.rate === null ? null : f.opened.rate * 100, 1)})
                </td>
                <td class="num">
                  {fmt(f.clicked.people)} ({pct(f.clicked.rate === null ? null : f.clicked.rate * 100, 1)})
                </td>
                <td class="num">{fmt(f.unsubscribed)}</td>
                <td class="num">{fmt(f.converted)}</td>
                <td class="num">{money(f.revenue)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollTable>
    </>
  );
}
