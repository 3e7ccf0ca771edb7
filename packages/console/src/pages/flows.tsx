// Flows: each with its status (draft, in review, approved, live, paused), its published version and how many
// people entered it and are in it now (GET /api/flows and GET /api/flows/counts).
import { Link } from '../router.tsx';
import { Badge, fmt, Loaded, PageHeader, Time, useApi } from '../ui.tsx';
import { type Flow, flowStatus, statusTone, triggerLabel } from './flow-model.ts';

interface Counts {
  flowId: string;
  entered: number;
  active: number;
}

export default function FlowsPage() {
  const flows = useApi<{ data: Flow[] }>('/flows');
  const counts = useApi<{ data: Counts[] }>('/flows/counts');
  const countOf = (id: string) => counts.data?.data.find((c) => c.flowId === id);
  return (
    <>
      <PageHeader title="Flows" />
      <Loaded state={flows}>
        {({ data }) =>
          data.length === 0 ? (
            <p class="muted">No flows yet. Flows are created through the API (POST /api/flows).</p>
          ) : (
            <div class="table-scroll">
              <table class="grid">
                <caption class="sr-only">Flows, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Flow</th>
                    <th scope="col">Status</th>
                    <th scope="col" class="num">
                      Version
                    </th>
                    <th scope="col">Trigger</th>
                    <th scope="col" class="num">
                      Entered
                    </th>
                    <th scope="col" class="num">
                      Active
                    </th>
                    <th scope="col">Changed</th>
                  </tr>
                </thead>
                <tbody>
                  {data.map((f) => {
                    const c = countOf(f.id);
                    const status = flowStatus(f);
                    return (
                      <tr key={f.id}>
                        <td>
                          <Link href={`/flows/${encodeURIComponent(f.id)}`}>{f.name}</Link>
                        </td>
                        <td>
                          <Badge value={status} tone={statusTone(status)} />
                          {f.status !== 'draft' && f.review.state !== 'published' && (
                            <>
                              {' '}
                              <Badge value={f.review.state === 'in_review' ? 'change in review' : 'changed'} />
                            </>
                          )}
                        </td>
                        <td class="num">{f.version ?? '—'}</td>
                        <td>{triggerLabel(f.definition.trigger)}</td>
                        <td class="num">{counts.data ? fmt(c?.entered ?? 0) : '…'}</td>
                        <td class="num">{counts.data ? fmt(c?.active ?? 0) : '…'}</td>
                        <td>
                          <Time at={f.updatedAt} />
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}
