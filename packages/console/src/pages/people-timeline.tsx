// A person's timeline: their events (each with the deliveries it made), the messages flows sent them and
// the flow runs they entered, newest first, older pages on demand.
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, ErrorBox, Time, useApi, useCan } from '../ui.tsx';
import { Scroll } from './people-scroll.tsx';

interface Delivery {
  id: string;
  destinationId: string;
  status: string;
  reason: string | null;
  attempts: number;
  lastError: string | null;
  deliveredAt: string | null;
}
type Item =
  | {
      kind: 'event';
      at: string;
      id: string;
      type: string;
      name: string | null;
      sourceId: string;
      deliveries: Delivery[];
    }
  | (Delivery & { kind: 'delivery'; at: string; flowRunId: string | null; node: string | null })
  | {
      kind: 'run';
      at: string;
      id: string;
      flowId: string;
      flowName: string | null;
      version: number;
      status: string;
      node: string | null;
      endedAt: string | null;
      reason: string | null;
    };

// Destination names by id (ids when the caller may not list destinations).
const Names = createContext<Map<string, string>>(new Map());
const useName = (id: string) => useContext(Names).get(id) ?? id;

/** The timeline section of a person's page. */
export function Timeline(props: { id: string }) {
  const [items, setItems] = useState<Item[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const destinations = useApi<{ data: { id: string; name: string }[] }>(
    useCan('destinations:read') ? '/destinations' : null,
  );
  const names = new Map((destinations.data?.data ?? []).map((d) => [d.id, d.name]));
  const load = async (before?: string) => {
    setBusy(true);
    setError(undefined);
    try {
      const page = await api<{ data: Item[]; next: string | null }>(
        `/profiles/${props.id}/timeline${qs({ before, limit: 50 })}`,
      );
      setItems((old) => (before ? [...old, ...page.data] : page.data));
      setNext(page.next);
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    load();
  }, [props.id]);
  return (
    <Names.Provider value={names}>
      <section aria-labelledby="person-timeline">
        <h2 id="person-timeline">Timeline</h2>
        <ErrorBox error={error} />
        {next === undefined && !error ? (
          <p aria-busy="true">Loading…</p>
        ) : items.length === 0 ? (
          <p class="muted">Nothing yet.</p>
        ) : (
          <Scroll label="Timeline">
            <table class="grid">
              <caption class="sr-only">Events, deliveries and flow runs, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">What</th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {items.map((i) => (
                  <Row key={`${i.kind}:${i.id}`} item={i} />
                ))}
              </tbody>
            </table>
          </Scroll>
        )}
        {next && (
          <button type="button" disabled={busy} onClick={() => load(next)}>
            Load older
          </button>
        )}
      </section>
    </Names.Provider>
  );
}

function Row({ item }: { item: Item }) {
  return (
    <tr>
      <td>
        <Time at={item.at} />
      </td>
      {item.kind === 'event' ? (
        <>
          <td>
            <Badge value={item.type} tone="info" />{' '}
            <Link href={`/events/${item.id}`}>{item.name ?? `(${item.type})`}</Link>
          </td>
          <td>
            {item.deliveries.length === 0 ? (
              <span class="muted">no destination</span>
            ) : (
              item.deliveries.map((d) => <Sent key={d.id} d={d} />)
            )}
          </td>
        </>
      ) : item.kind === 'delivery' ? (
        <>
          <td>
            <Badge value="message" tone="info" /> flow step <code>{item.node ?? '?'}</code> to{' '}
            <Link href={`/destinations/${item.destinationId}`}>
              <DestinationName id={item.destinationId} />
            </Link>
          </td>
          <td>
            <Sent d={item} />
          </td>
        </>
      ) : (
        <>
          <td>
            <Badge value="flow" tone="info" /> entered{' '}
            <Link href={`/flows/${item.flowId}`}>{item.flowName ?? item.flowId}</Link>{' '}
            <span class="muted">v{item.version}</span>
          </td>
          <td>
            <Badge value={item.status} /> {item.node && <code>{item.node}</code>}
            {item.endedAt && (
              <span class="muted">
                {' '}
                ended <Time at={item.endedAt} />
                {item.reason && `: ${item.reason}`}
              </span>
            )}
          </td>
        </>
      )}
    </tr>
  );
}

function Sent({ d }: { d: Delivery }) {
  const why = d.lastError ?? d.reason;
  return (
    <div>
      <DestinationName id={d.destinationId} />: <Badge value={d.status} />
      {why && <span class="muted"> {why}</span>}
    </div>
  );
}

function DestinationName(props: { id: string }) {
  return <>{useName(props.id)}</>;
}
