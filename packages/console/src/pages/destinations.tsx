// Destinations: each with its plugin, enabled or paused, its circuit breaker, and its deliveries by outcome.
import { Link } from '../router.tsx';
import { ErrorBox, Loaded, PageHeader, useApi } from '../ui.tsx';
import {
  Circuit,
  Count,
  type Destination,
  type DestinationDetail,
  Enabled,
  STATUS_HELP,
  STATUSES,
} from './destination-parts.tsx';

export default function Destinations() {
  const list = useApi<{ data: Destination[] }>('/destinations');
  return (
    <>
      <PageHeader title="Destinations">
        <button type="button" onClick={list.reload} disabled={list.loading}>
          Refresh
        </button>
      </PageHeader>
      <Loaded state={list}>
        {({ data }) =>
          data.length === 0 ? (
            <p class="muted">
              No destination yet. Create one with <code>POST /api/destinations</code> (plugins: GET
              /api/destinations/plugins).
            </p>
          ) : (
            <div class="table-scroll">
              <table class="grid">
                <caption class="sr-only">Destinations with their deliveries by outcome</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Plugin</th>
                    <th scope="col">State</th>
                    <th scope="col">Circuit</th>
                    {STATUSES.map((s) => (
                      <th scope="col" class="num" key={s} title={STATUS_HELP[s]}>
                        {s}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {data.map((d) => (
                    <Row key={d.id} d={d} />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

// Each row asks for its own counts (GET /destinations/{id}): the list answer has none.
function Row({ d }: { d: Destination }) {
  const detail = useApi<DestinationDetail>(`/destinations/${encodeURIComponent(d.id)}`);
  const counts = detail.data?.deliveries;
  return (
    <tr>
      <td>
        <Link href={`/destinations/${d.id}`}>{d.name}</Link>
        <ErrorBox error={detail.error} />
      </td>
      <td>{d.plugin}</td>
      <td>
        <Enabled enabled={d.enabled} />
      </td>
      <td>
        <Circuit circuit={d.circuit} />
      </td>
      {STATUSES.map((s) => (
        <Count key={s} n={counts?.[s]} />
      ))}
    </tr>
  );
}
