// The KPI board: each KPI's current period (GET /api/kpis/{id}/status) — value, target, achievement and
// linear pacing — a form to add one (kpis:write), and the alert history (GET /api/alerts and each rule's events).
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Badge, ErrorBox, Field, fmt, Loaded, Time, useAction, useApi, useCan } from '../ui.tsx';
import { Bar, Choice, eventMatch, pct, ScrollTable, ZONE } from './analytics-common.tsx';

interface Kpi {
  id: string;
  name: string;
  period: string;
  timezone: string;
  target: number;
  series: { measure: string; events: { event?: string | string[] }; property?: string };
}
interface KpiStatus {
  period: { from: string; to: string };
  value: number;
  target: number;
  achievementPct: number | null;
  elapsed: number;
  expected: number;
  pacePct: number | null;
  projected: number | null;
}
interface AlertRule {
  id: string;
  name: string;
  kind: string;
  kpiId: string | null;
  firing: boolean;
  enabled: boolean;
}
interface AlertEvent {
  id: string;
  status: string;
  value: number | null;
  threshold: number | null;
  at: string;
  deliveredAt: string | null;
  deliveryError: string | null;
}

export default function KpiBoard() {
  const kpis = useApi<{ data: Kpi[] }>('/kpis');
  const canWrite = useCan('kpis:write');
  return (
    <>
      <Loaded state={kpis}>
        {({ data }) =>
          data.length === 0 ? (
            <p class="muted">No KPIs yet.</p>
          ) : (
            <ul
              class="cards"
              aria-label="KPIs"
              style={{ listStyle: 'none', padding: 0, gridTemplateColumns: 'repeat(auto-fill, minmax(320px, 1fr))' }}
            >
              {data.map((k) => (
                <KpiCard key={k.id} kpi={k} />
              ))}
            </ul>
          )
        }
      </Loaded>
      {canWrite && <NewKpi onCreated={kpis.reload} />}
      <AlertHistory kpis={kpis.data?.data ?? []} />
    </>
  );
}

const day = (iso: string) => new Date(iso).toLocaleDateString(undefined, { dateStyle: 'medium' });

function KpiCard({ kpi }: { kpi: Kpi }) {
  const status = useApi<KpiStatus>(`/kpis/${encodeURIComponent(kpi.id)}/status`);
  const what = `${kpi.series.measure} of ${[kpi.series.events.event ?? 'every event'].flat().join(', ')}${kpi.series.property ? ` (${kpi.series.property})` : ''}`;
  return (
    <li class="card" aria-labelledby={`kpi-${kpi.id}`}>
      <h2 id={`kpi-${kpi.id}`} style={{ margin: '0 0 4px', fontSize: '1.05rem' }}>
        {kpi.name}
      </h2>
      <p class="muted" style={{ margin: '0 0 8px', fontSize: '0.85rem' }}>
        {what}, per {kpi.period} ({kpi.timezone})
      </p>
      <Loaded state={status}>
        {(s) => {
          const pace = s.pacePct;
          const tone = pace === null ? 'info' : pace >= 100 ? 'ok' : pace >= 80 ? 'warn' : 'bad';
          return (
            <>
              <div class="big">
                {fmt(s.value, 2)} <span style={{ fontSize: '1rem', fontWeight: 400 }}>of {fmt(s.target, 2)}</span>
              </div>
              <Bar value={s.value} max={s.target} color={tone === 'bad' ? 'var(--bad)' : 'var(--accent)'} />
              <dl class="facts" style={{ marginTop: '8px', fontSize: '0.9rem' }}>
                <dt>Target</dt>
                <dd>{fmt(s.target, 2)}</dd>
                <dt>Achievement</dt>
                <dd>{pct(s.achievementPct, 2)}</dd>
                <dt>Pacing</dt>
                <dd>
                  <Badge value={pace === null ? 'starting' : `${pct(pace, 0)} of pace`} tone={tone} /> expected{' '}
                  {fmt(s.expected, 1)} by now
                </dd>
                <dt>Projected</dt>
                <dd>{fmt(s.projected, 1)}</dd>
                <dt>Period</dt>
                <dd>
                  {day(s.period.from)} – {day(new Date(Date.parse(s.period.to) - 1).toISOString())} (
                  {pct(s.elapsed * 100, 0)} gone)
                </dd>
              </dl>
            </>
          );
        }}
      </Loaded>
    </li>
  );
}

function NewKpi(props: { onCreated: () => void }) {
  const [form, setForm] = useState({
    name: '',
    event: '',
    measure: 'count',
    property: '',
    period: 'month',
    target: '',
  });
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  const text = (k: keyof typeof form) => (e: Event) => set(k)((e.target as HTMLInputElement).value);
  const needsProperty = form.measure === 'sum' || form.measure === 'avg';
  const create = useAction(async () => {
    await api('/kpis', {
      method: 'POST',
      body: {
        name: form.name.trim(),
        series: {
          events: eventMatch(form.event),
          measure: form.measure,
          ...(needsProperty ? { property: form.property.trim() } : {}),
        },
        period: form.period,
        timezone: ZONE,
        target: Number(form.target),
      },
    });
    setForm({ ...form, name: '', target: '' });
    props.onCreated();
  });
  return (
    <section aria-labelledby="new-kpi">
      <h2 id="new-kpi">New KPI</h2>
      <form
        class="filters"
        aria-label="New KPI"
        onSubmit={(e) => {
          e.preventDefault();
          create.run();
        }}
      >
        <Field label="Name">
          <input required value={form.name} onInput={text('name')} placeholder="Orders per month" />
        </Field>
        <Field label="Events" hint="Names, comma-separated; empty: every event">
          <input value={form.event} onInput={text('event')} placeholder="Order Completed" />
        </Field>
        <Choice
          label="Measure"
          value={form.measure}
          options={[
            ['count', 'Events'],
            ['people', 'Unique people'],
            ['sum', 'Sum of a property'],
            ['avg', 'Mean of a property'],
          ]}
          onChange={set('measure')}
        />
        {needsProperty && (
          <Field label="Property">
            <input required value={form.property} onInput={text('property')} placeholder="revenue" />
          </Field>
        )}
        <Choice label="Period" value={form.period} options={['day', 'week', 'month']} onChange={set('period')} />
        <Field label="Target">
          <input type="number" min="0" step="any" required value={form.target} onInput={text('target')} />
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>
          Create KPI
        </button>
      </form>
      <ErrorBox error={create.error} />
    </section>
  );
}

function AlertHistory(props: { kpis: Kpi[] }) {
  const rules = useApi<{ data: AlertRule[] }>('/alerts');
  return (
    <section aria-labelledby="alert-history">
      <h2 id="alert-history">Alert history</h2>
      <Loaded state={rules}>
        {({ data }) =>
          data.length === 0 ? (
            <p class="muted">No alert rules (POST /api/alerts).</p>
          ) : (
            <ScrollTable label="Alert history table">
              <table class="grid">
                <caption class="sr-only">Alert rules and their firings and resolves, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Rule</th>
                    <th scope="col">Watches</th>
                    <th scope="col">Now</th>
                    <th scope="col">History</th>
                  </tr>
                </thead>
                <tbody>
                  {data.map((r) => (
                    <tr key={r.id}>
                      <th scope="row">
                        {r.name} <span class="muted">({r.kind})</span>
                      </th>
                      <td>
                        {r.kpiId ? (props.kpis.find((k) => k.id === r.kpiId)?.name ?? r.kpiId) : 'its own metric'}
                      </td>
                      <td>
                        <Badge value={!r.enabled ? 'disabled' : r.firing ? 'firing' : 'ok'} />
                      </td>
                      <td>
                        <RuleEvents id={r.id} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </ScrollTable>
          )
        }
      </Loaded>
    </section>
  );
}

function RuleEvents({ id }: { id: string }) {
  const events = useApi<{ data: AlertEvent[] }>(`/alerts/${encodeURIComponent(id)}/events?limit=10`);
  return (
    <Loaded state={events}>
      {({ data }) =>
        data.length === 0 ? (
          <span class="muted">Never fired</span>
        ) : (
          <ul style={{ margin: 0, paddingLeft: '18px' }}>
            {data.map((e) => (
              <li key={e.id}>
                <Badge value={e.status} tone={e.status === 'fired' ? 'bad' : 'ok'} /> <Time at={e.at} />: value{' '}
                {fmt(e.value, 2)}, threshold {fmt(e.threshold, 2)}
                {e.deliveryError ? <span class="error-text"> (not sent: {e.deliveryError})</span> : null}
              </li>
            ))}
          </ul>
        )
      }
    </Loaded>
  );
}
