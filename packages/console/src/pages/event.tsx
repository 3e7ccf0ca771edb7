// One stored event: its payload (masked for roles without pii:read), processing state and deliveries.
import { Link } from '../router.tsx';
import { Badge, Json, Loaded, PageHeader, Time, useApi } from '../ui.tsx';

interface EventDetail {
  id: string;
  sourceId: string;
  messageId: string;
  type: string;
  event: string | null;
  profileId: string | null;
  receivedAt: string;
  processedAt: string | null;
  payload: unknown;
  deliveries: {
    id: string;
    destinationId: string;
    status: string;
    reason: string | null;
    attempts: number;
    lastError: string | null;
    lastAttemptAt: string | null;
    deliveredAt: string | null;
  }[];
}

export default function EventPage(props: { params: Record<string, string> }) {
  const state = useApi<EventDetail>(`/events/${encodeURIComponent(props.params.id ?? '')}`);
  return (
    <>
      <PageHeader title={`Event ${props.params.id}`}>
        <Link href="/events">Back to live events</Link>
      </PageHeader>
      <Loaded state={state}>
        {(e) => (
          <div class="cols">
            <section aria-labelledby="ev-state">
              <h2 id="ev-state">Processing</h2>
              <dl class="facts">
                <dt>Type</dt>
                <dd>
                  {e.type} {e.event && <strong>{e.event}</strong>}
                </dd>
                <dt>Message id</dt>
                <dd>
                  <code>{e.messageId}</code>
                </dd>
                <dt>Source</dt>
                <dd>{e.sourceId}</dd>
                <dt>Received</dt>
                <dd>
                  <Time at={e.receivedAt} />
                </dd>
                <dt>Processed</dt>
                <dd>{e.processedAt ? <Time at={e.processedAt} /> : <Badge value="queued" />}</dd>
                <dt>Profile</dt>
                <dd>{e.profileId ? <Link href={`/people/${e.profileId}`}>{e.profileId}</Link> : '—'}</dd>
              </dl>
              <h2>Deliveries</h2>
              {e.deliveries.length === 0 ? (
                <p class="muted">No destination received this event.</p>
              ) : (
                <table class="grid">
                  <thead>
                    <tr>
                      <th scope="col">Destination</th>
                      <th scope="col">Status</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Why / last error</th>
                      <th scope="col">Delivered</th>
                    </tr>
                  </thead>
                  <tbody>
                    {e.deliveries.map((d) => (
                      <tr key={d.id}>
                        <td>
                          <Link href={`/destinations/${d.destinationId}`}>{d.destinationId}</Link>
                        </td>
                        <td>
                          <Badge value={d.status} />
                        </td>
                        <td>{d.attempts}</td>
                        <td>{d.lastError ?? d.reason ?? ''}</td>
                        <td>
                          <Time at={d.deliveredAt} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
            <section aria-labelledby="ev-payload">
              <h2 id="ev-payload">Payload</h2>
              <Json value={e.payload} label="Event payload" />
            </section>
          </div>
        )}
      </Loaded>
    </>
  );
}
