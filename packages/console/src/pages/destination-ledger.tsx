// A destination's delivery ledger: the dead letters with their last error (and Replay), and every row by status.
import { useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, ErrorBox, Field, Time, useAction } from '../ui.tsx';
import { type DeliveryStatus, STATUS_HELP, STATUSES } from './destination-parts.tsx';

/** One ledger row (GET /api/destinations/{id}/deliveries). */
export interface Delivery {
  id: string;
  eventId: string | null;
  messageId: string | null;
  profileId: string | null;
  status: DeliveryStatus;
  reason: string | null;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

const PAGE = 50;

/**
 * Pages of a destination's ledger (newest first), restarted when `status` or `tick` changes, with a
 * `more()` that appends the next page.
 */
function useLedger(id: string, status: string, tick: number) {
  const [rows, setRows] = useState<Delivery[]>();
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<Error>();
  const load = async (before: string | null, signal?: AbortSignal) => {
    const path = `/destinations/${encodeURIComponent(id)}/deliveries${qs({ status, before, limit: PAGE })}`;
    const page = await api<{ data: Delivery[]; next: string | null }>(path, { signal });
    setRows((r) => (before ? [...(r ?? []), ...page.data] : page.data));
    setNext(page.next);
    setError(undefined);
  };
  useEffect(() => {
    const ctl = new AbortController();
    load(null, ctl.signal).catch((e: Error) => e.name !== 'AbortError' && setError(e));
    return () => ctl.abort();
  }, [id, status, tick]);
  const more = useAction(() => (next ? load(next) : Promise.resolve()));
  return { rows, next, error: error ?? more.error, more };
}

/** The dead letters with their last error, and (for destinations:write) Replay them all. */
export function DeadLetters(props: { id: string; tick: number; canWrite: boolean; onReplayed: () => void }) {
  const { rows, next, error, more } = useLedger(props.id, 'dead', props.tick);
  const replay = useAction(async () => {
    const r = await api<{ replayed: number }>(`/destinations/${encodeURIComponent(props.id)}/replay`, {
      method: 'POST',
      body: { status: 'dead' },
    });
    props.onReplayed();
    return r;
  });
  return (
    <section aria-labelledby="dest-dead">
      <div class="page-header">
        <h2 id="dest-dead">Dead letters</h2>
        {props.canWrite && (
          <div class="actions">
            <button type="button" class="primary" onClick={() => replay.run()} disabled={replay.busy || !rows?.length}>
              Replay dead letters
            </button>
          </div>
        )}
      </div>
      <p role="status" class={replay.result ? '' : 'sr-only'}>
        {replay.result &&
          `${replay.result.replayed} dead letter${replay.result.replayed === 1 ? '' : 's'} queued again.`}
      </p>
      <ErrorBox error={replay.error ?? error} />
      {rows?.length === 0 ? (
        <p class="muted">No dead letters.</p>
      ) : (
        rows && <DeliveryTable rows={rows} caption="Dead letters, newest first" />
      )}
      {next && (
        <button type="button" onClick={() => more.run()} disabled={more.busy}>
          Older dead letters
        </button>
      )}
    </section>
  );
}

/** Every ledger row of the destination, newest first, filtered by status. */
export function Ledger(props: { id: string; tick: number; status: string; onStatus: (s: string) => void }) {
  const { rows, next, error, more } = useLedger(props.id, props.status, props.tick);
  return (
    <section aria-labelledby="dest-ledger">
      <h2 id="dest-ledger">Ledger</h2>
      <form class="filters" aria-label="Filter the ledger" onSubmit={(e) => e.preventDefault()}>
        <Field label="Status">
          <select value={props.status} onChange={(e) => props.onStatus((e.target as HTMLSelectElement).value)}>
            <option value="">Every status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s} ({STATUS_HELP[s]})
              </option>
            ))}
          </select>
        </Field>
      </form>
      <ErrorBox error={error} />
      {rows?.length === 0 ? (
        <p class="muted">No deliveries{props.status ? ` with status ${props.status}` : ''}.</p>
      ) : (
        rows && <DeliveryTable rows={rows} caption="Deliveries, newest first" />
      )}
      {next && (
        <button type="button" onClick={() => more.run()} disabled={more.busy}>
          Older deliveries
        </button>
      )}
    </section>
  );
}

function DeliveryTable(props: { rows: Delivery[]; caption: string }) {
  return (
    <div class="table-scroll">
      <table class="grid">
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Person</th>
            <th scope="col">Status</th>
            <th scope="col" class="num">
              Attempts
            </th>
            <th scope="col">Last error / reason</th>
            <th scope="col">Last attempt</th>
            <th scope="col">Delivered</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((d) => (
            <tr key={d.id}>
              <td>
                {d.eventId ? (
                  <Link href={`/events/${d.eventId}`}>{d.eventId}</Link>
                ) : (
                  <span title={d.messageId ?? ''}>flow message</span>
                )}
              </td>
              <td class="ellipsis">{d.profileId ? <Link href={`/people/${d.profileId}`}>{d.profileId}</Link> : ''}</td>
              <td>
                <Badge value={d.status} />
              </td>
              <td class="num">{d.attempts}</td>
              <td style={{ overflowWrap: 'anywhere', maxWidth: '36rem' }}>
                {d.reason && d.reason !== d.lastError && <div class="muted">{d.reason}</div>}
                {d.lastError && (
                  <div>
                    {d.lastStatus !== null && <code>{d.lastStatus}</code>} {d.lastError}
                  </div>
                )}
              </td>
              <td>
                <Time at={d.lastAttemptAt} />
              </td>
              <td>
                <Time at={d.deliveredAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
