// One destination: its deliveries by outcome, circuit breaker, settings (secrets masked by the server), a
// test send, pause/resume, its dead letters with their last error (and replay) and its ledger by status.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, ErrorBox, fmt, Json, Loaded, PageHeader, Time, useAction, useApi, useCan } from '../ui.tsx';
import { DeadLetters, Ledger } from './destination-ledger.tsx';
import {
  Circuit,
  type Destination,
  type DestinationDetail,
  Enabled,
  STATUS_HELP,
  STATUSES,
} from './destination-parts.tsx';

// While deliveries are on their way the page refreshes itself, so a replay or a retry is seen to land.
const REFRESH_MS = 2000;
// Six statuses in one row on a laptop, three on a phone.
const CARD_COLUMNS = 'repeat(auto-fit, minmax(115px, 1fr))';

interface TestResult {
  outcome: { status: string; error?: string; detail?: string; retryAfter?: number };
  idempotencyKey: string;
}

export default function DestinationPage(props: { params: Record<string, string> }) {
  const id = props.params.id ?? '';
  const path = `/destinations/${encodeURIComponent(id)}`;
  const detail = useApi<DestinationDetail>(path);
  const canWrite = useCan('destinations:write');
  const [tick, setTick] = useState(0);
  const [status, setStatus] = useState('');
  const refresh = () => {
    detail.reload();
    setTick((t) => t + 1);
  };
  const counts = detail.data?.deliveries;
  const inFlight = counts ? counts.pending + counts.retrying + counts.waiting : 0;
  useEffect(() => {
    if (!inFlight) return;
    const t = setTimeout(refresh, REFRESH_MS);
    return () => clearTimeout(t);
  }, [detail.data]);

  const toggle = useAction(async (enable: boolean) => {
    await api<Destination>(`${path}/${enable ? 'enable' : 'disable'}`, { method: 'POST', body: {} });
    refresh();
  });
  const test = useAction(() => api<TestResult>(`${path}/test`, { method: 'POST', body: {} }));
  const d = detail.data;

  return (
    <>
      <PageHeader title={d ? `Destination ${d.name}` : 'Destination'}>
        <Link href="/destinations">All destinations</Link>
        <button type="button" onClick={refresh} disabled={detail.loading}>
          Refresh
        </button>
        {canWrite && d && (
          <>
            <button type="button" onClick={() => test.run()} disabled={test.busy}>
              Test send
            </button>
            <button type="button" onClick={() => toggle.run(!d.enabled)} disabled={toggle.busy}>
              {d.enabled ? 'Pause' : 'Resume'}
            </button>
          </>
        )}
      </PageHeader>
      <ErrorBox error={toggle.error ?? test.error} />
      <TestOutcome result={test.result} />
      <Loaded state={detail}>
        {(dest) => (
          <>
            <Counts counts={dest.deliveries} onPick={setStatus} />
            <DeadLetters id={dest.id} tick={tick} canWrite={canWrite} onReplayed={refresh} />
            <div class="cols">
              <Facts d={dest} />
              <section aria-labelledby="dest-settings">
                <h2 id="dest-settings">Settings</h2>
                <p class="muted">Secret settings are masked by the server (********).</p>
                <Json value={dest.settings} label="Settings (JSON)" />
                <h2>Filter</h2>
                <Json value={dest.filter} label="Filter (JSON)" />
              </section>
            </div>
            <Ledger id={dest.id} tick={tick} status={status} onStatus={setStatus} />
          </>
        )}
      </Loaded>
    </>
  );
}

function TestOutcome(props: { result?: TestResult }) {
  const o = props.result?.outcome;
  return (
    <div role="status" aria-live="polite" class={o ? 'card' : 'sr-only'}>
      {o && (
        <>
          <strong>Test send:</strong> <Badge value={o.status} tone={o.status === 'delivered' ? 'ok' : 'bad'} />{' '}
          {o.error ?? o.detail ?? ''}
          {o.retryAfter !== undefined && <span class="muted"> (retry after {o.retryAfter} s)</span>}
        </>
      )}
    </div>
  );
}

function Counts(props: { counts: DestinationDetail['deliveries']; onPick: (s: string) => void }) {
  return (
    <section aria-labelledby="dest-counts">
      <h2 id="dest-counts">Deliveries by outcome</h2>
      <ul class="cards" style={{ listStyle: 'none', padding: 0, margin: 0, gridTemplateColumns: CARD_COLUMNS }}>
        {STATUSES.map((s) => (
          <li class="card" key={s}>
            <div class="big">{fmt(props.counts[s], 0)}</div>
            <button
              type="button"
              class="link"
              onClick={() => props.onPick(s)}
              aria-label={`Show ${s} deliveries in the ledger`}
            >
              {s}
            </button>
            <div class="muted">
              <small>{STATUS_HELP[s]}</small>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Facts({ d }: { d: DestinationDetail }) {
  return (
    <section aria-labelledby="dest-facts">
      <h2 id="dest-facts">State</h2>
      <dl class="facts">
        <dt>Plugin</dt>
        <dd>{d.plugin}</dd>
        <dt>State</dt>
        <dd>
          <Enabled enabled={d.enabled} />
        </dd>
        <dt>Circuit</dt>
        <dd>
          <Circuit circuit={d.circuit} />
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{d.id}</code>
        </dd>
        <dt>Consent purposes</dt>
        <dd>{d.requiredPurposes.length ? d.requiredPurposes.join(', ') : <span class="muted">none</span>}</dd>
        <dt>Channel</dt>
        <dd>
          {d.channel ?? <span class="muted">none</span>}
          {d.topic && ` / ${d.topic}`}
        </dd>
        <dt>Retry window</dt>
        <dd>{duration(d.retryWindowSeconds)}</dd>
        <dt>Concurrency</dt>
        <dd>{d.concurrency}</dd>
        <dt>Rate limit</dt>
        <dd>{d.rateLimit === null ? <span class="muted">none</span> : `${d.rateLimit} items/s per server`}</dd>
        <dt>Updated</dt>
        <dd>
          <Time at={d.updatedAt} />
        </dd>
      </dl>
    </section>
  );
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${fmt(seconds / 60)} min`;
  return `${fmt(seconds / 3600)} h`;
}
