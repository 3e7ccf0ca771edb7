// Live events: a Server-Sent Events stream of stored and refused events, filterable and pausable.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, qs } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, ErrorBox, Field, PageHeader, Time, useApi, useCan } from '../ui.tsx';

interface LiveEvent {
  id: string;
  sourceId: string;
  type: string;
  event: string | null;
  profileId: string | null;
  receivedAt: string;
  processedAt: string | null;
  payload: { userId?: string; anonymousId?: string; name?: string };
}
interface Refusal {
  id: string;
  sourceId: string | null;
  receivedAt: string;
  status: number;
  code: string;
  reason: string;
}
type Row = { kind: 'event'; e: LiveEvent } | { kind: 'refused'; r: Refusal };

const MAX_ROWS = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export default function LiveEvents() {
  const [filter, setFilter] = useState({ sourceId: '', type: '', event: '', person: '' });
  const [profileId, setProfileId] = useState<string | null>('');
  const [rows, setRows] = useState<Row[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState<Row[]>([]);
  const [status, setStatus] = useState<'connecting' | 'live' | 'reconnecting'>('connecting');
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const sources = useApi<{ data: { id: string; name: string }[] }>('/sources');

  // A person typed as an email or a user id is looked up once; a profile id is used as it is.
  useEffect(() => {
    const p = filter.person.trim();
    if (!p) return setProfileId('');
    if (UUID.test(p)) return setProfileId(p);
    const ctl = new AbortController();
    const t = setTimeout(() => {
      const by = p.includes('@') ? { email: p } : { userId: p };
      api<{ id: string }>(`/profiles${qs(by)}`, { signal: ctl.signal })
        .then((r) => setProfileId(r.id))
        .catch(() => setProfileId(null));
    }, 300);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [filter.person]);

  useEffect(() => {
    if (profileId === null) return;
    setRows([]);
    setHeld([]);
    setStatus('connecting');
    const url = `/api/events/stream${qs({
      sourceId: filter.sourceId,
      type: filter.type,
      event: filter.event.trim(),
      profileId,
      refused: !filter.type && !filter.event.trim() && !profileId,
    })}`;
    const source = new EventSource(url);
    const add = (row: Row) => {
      if (pausedRef.current) setHeld((h) => [row, ...h].slice(0, MAX_ROWS));
      else setRows((r) => [row, ...r].slice(0, MAX_ROWS));
    };
    source.onopen = () => setStatus('live');
    source.onerror = () => setStatus('reconnecting');
    source.addEventListener('event', (m) => add({ kind: 'event', e: JSON.parse((m as MessageEvent).data) }));
    source.addEventListener('refused', (m) => add({ kind: 'refused', r: JSON.parse((m as MessageEvent).data) }));
    return () => source.close();
  }, [filter.sourceId, filter.type, filter.event, profileId]);

  const resume = () => {
    setRows((r) => [...held, ...r].slice(0, MAX_ROWS));
    setHeld([]);
    setPaused(false);
  };
  const set = (k: keyof typeof filter) => (e: Event) =>
    setFilter({ ...filter, [k]: (e.target as HTMLInputElement).value });

  return (
    <>
      <PageHeader title="Live events">
        <span class={`live-status ${status}`} aria-live="polite">
          {status === 'live' ? (paused ? `Paused (${held.length} held)` : 'Live') : status}
        </span>
        {paused ? (
          <button type="button" onClick={resume}>
            Resume
          </button>
        ) : (
          <button type="button" onClick={() => setPaused(true)}>
            Pause
          </button>
        )}
      </PageHeader>
      <form class="filters" aria-label="Filter events" onSubmit={(e) => e.preventDefault()}>
        <Field label="Source">
          <select value={filter.sourceId} onChange={set('sourceId')}>
            <option value="">All sources</option>
            {sources.data?.data.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Type">
          <select value={filter.type} onChange={set('type')}>
            <option value="">All types</option>
            {['track', 'identify', 'page', 'screen', 'group', 'alias'].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </Field>
        <Field label="Event name">
          <input value={filter.event} onInput={set('event')} placeholder="Order Completed" />
        </Field>
        <Field label="Person" hint="Email, user id or profile id">
          <input value={filter.person} onInput={set('person')} />
        </Field>
      </form>
      {profileId === null && <ErrorBox error={new Error(`no profile for ${filter.person}`)} />}
      <table class="grid live">
        <caption class="sr-only">Events, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Received</th>
            <th scope="col">Type</th>
            <th scope="col">Event</th>
            <th scope="col">Source</th>
            <th scope="col">Person</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) =>
            row.kind === 'event' ? (
              <EventRow key={`e${row.e.id}`} e={row.e} />
            ) : (
              <RefusedRow key={`r${row.r.id}`} r={row.r} />
            ),
          )}
        </tbody>
      </table>
      {rows.length === 0 && <p class="muted">Waiting for events… send one with the snippet or POST /v1/track.</p>}
    </>
  );
}

function EventRow({ e }: { e: LiveEvent }) {
  const who = e.payload.userId ?? e.payload.anonymousId ?? '';
  return (
    <tr>
      <td>
        <Time at={e.receivedAt} />
      </td>
      <td>{e.type}</td>
      <td>
        <Link href={`/events/${e.id}`}>{e.event ?? e.payload.name ?? `(${e.type})`}</Link>
      </td>
      <td>{e.sourceId}</td>
      <td class="ellipsis">{e.profileId ? <Link href={`/people/${e.profileId}`}>{who || e.profileId}</Link> : who}</td>
      <td>{e.processedAt ? <Badge value="processed" tone="ok" /> : <Badge value="queued" tone="warn" />}</td>
    </tr>
  );
}

function RefusedRow({ r }: { r: Refusal }) {
  const canReplay = useCan('events:replay');
  const [replayed, setReplayed] = useState<string>();
  const [error, setError] = useState<Error>();
  const replay = () =>
    api<{ status: string }>(`/failed-events/${r.id}/replay`, { method: 'POST', body: {} })
      .then((x) => setReplayed(x.status))
      .catch(setError);
  return (
    <tr class="refused">
      <td>
        <Time at={r.receivedAt} />
      </td>
      <td>
        <Badge value="refused" />
      </td>
      <td>
        <code>{r.code}</code> {r.reason}
      </td>
      <td>{r.sourceId ?? ''}</td>
      <td />
      <td>
        {replayed ? (
          <Badge value={replayed} />
        ) : canReplay ? (
          <button type="button" onClick={replay} aria-label={`Replay refused event ${r.id}`}>
            Replay
          </button>
        ) : null}
        <ErrorBox error={error} />
      </td>
    </tr>
  );
}
