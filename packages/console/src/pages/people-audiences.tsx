// A person's audiences with "why" (the rule evaluated now, node by node), and their merge log with unmerge.
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { Badge, ErrorBox, Loaded, Time, useAction, useApi, useCan } from '../ui.tsx';
import { Scroll } from './people-scroll.tsx';
import { show } from './people-types.ts';

interface PersonAudience {
  key: string;
  name: string;
  member: boolean;
  enteredAt: string;
  exitedAt: string | null;
  enteredBy: string;
  exitedBy: string | null;
  periods: number;
}

interface ExplainedNode {
  result: boolean;
  value?: unknown;
  description: string;
  children?: ExplainedNode[];
}

/** The audiences the person is or was in; "Why" shows the rule evaluated for them now. */
export function Audiences(props: { id: string }) {
  const state = useApi<{ data: PersonAudience[] }>(`/profiles/${props.id}/audiences`);
  const canExplain = useCan('audiences:read');
  return (
    <section aria-labelledby="person-audiences">
      <h2 id="person-audiences">Audiences</h2>
      <Loaded state={state}>
        {(a) =>
          a.data.length === 0 ? (
            <p class="muted">In no audience, now or before.</p>
          ) : (
            <ul style={{ listStyle: 'none', padding: 0, margin: 0 }}>
              {a.data.map((m) => (
                <AudienceRow key={m.key} id={props.id} m={m} canExplain={canExplain} />
              ))}
            </ul>
          )
        }
      </Loaded>
    </section>
  );
}

function AudienceRow(props: { id: string; m: PersonAudience; canExplain: boolean }) {
  const { m } = props;
  const [open, setOpen] = useState(false);
  const why = useApi<{ member: boolean; matches: boolean; tree: ExplainedNode | null }>(
    open ? `/audiences/${encodeURIComponent(m.key)}/explain/${props.id}` : null,
  );
  const panel = `why-${m.key}`;
  return (
    <li class="card" style={{ marginBottom: '8px' }}>
      <Link href={`/audiences/${encodeURIComponent(m.key)}`}>{m.name}</Link>{' '}
      <Badge value={m.member ? 'member' : 'left'} tone={m.member ? 'ok' : 'warn'} />{' '}
      <span class="muted">
        {m.member ? 'since ' : 'left '}
        <Time at={m.member ? m.enteredAt : m.exitedAt} /> ({m.member ? m.enteredBy : m.exitedBy})
        {m.periods > 1 && `, ${m.periods} periods`}
      </span>{' '}
      {props.canExplain && (
        <button
          type="button"
          class="link"
          aria-expanded={open}
          aria-controls={panel}
          aria-label={`Why ${m.member ? 'in' : 'not in'} ${m.name}`}
          onClick={() => setOpen(!open)}
        >
          Why?
        </button>
      )}
      {open && (
        <div id={panel}>
          <Loaded state={why}>
            {(w) =>
              w.tree ? (
                <>
                  <p>
                    The rule {w.matches ? 'matches' : 'does not match'} this person now; stored membership:{' '}
                    {w.member ? 'in' : 'out'}.
                  </p>
                  <RuleTree node={w.tree} />
                </>
              ) : (
                <p class="muted">The rule could not be evaluated for this person.</p>
              )
            }
          </Loaded>
        </div>
      )}
    </li>
  );
}

function RuleTree(props: { node: ExplainedNode }) {
  const n = props.node;
  return (
    <ul style={{ paddingLeft: '18px', margin: '4px 0' }}>
      <li>
        <Badge value={n.result ? 'true' : 'false'} tone={n.result ? 'ok' : 'bad'} /> {n.description}
        {'value' in n && n.value !== undefined && <span class="muted"> — value: {show(n.value)}</span>}
        {n.children?.map((c, i) => (
          <RuleTree key={i} node={c} />
        ))}
      </li>
    </ul>
  );
}

interface Merge {
  id: string;
  kind: 'merge' | 'split' | 'unmerge';
  survivorId: string;
  mergedId: string;
  reason: string;
  eventId: string | null;
  actor: string | null;
  at: string;
  undoneAt: string | null;
}

/** The merge log (merges, automatic splits, unmerges), with Unmerge on merges into this person. */
export function Merges(props: { id: string; onUnmerged: () => void }) {
  const state = useApi<{ data: Merge[] }>(`/profiles/${props.id}/merges`);
  const canWrite = useCan('profiles:write');
  const unmerge = useAction((mergeId: string) =>
    api(`/profiles/${props.id}/unmerge`, { method: 'POST', body: { mergeId } }),
  );
  const run = async (mergeId: string) => {
    if (await unmerge.run(mergeId)) props.onUnmerged();
  };
  return (
    <section aria-labelledby="person-merges">
      <h2 id="person-merges">Merges</h2>
      <ErrorBox error={unmerge.error} />
      <Loaded state={state}>
        {(m) =>
          m.data.length === 0 ? (
            <p class="muted">Never merged: one device or identity so far.</p>
          ) : (
            <Scroll label="Merge log">
              <table class="grid">
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">What</th>
                    <th scope="col">Profiles</th>
                    <th scope="col">Why</th>
                    <th scope="col">State</th>
                  </tr>
                </thead>
                <tbody>
                  {m.data.map((r) => (
                    <tr key={r.id}>
                      <td>
                        <Time at={r.at} />
                      </td>
                      <td>{r.kind}</td>
                      <td>
                        <Link href={`/people/${r.mergedId}`}>
                          <code>{r.mergedId.slice(0, 8)}</code>
                        </Link>{' '}
                        into <code>{r.survivorId.slice(0, 8)}</code>
                      </td>
                      <td>
                        {r.reason}
                        {r.eventId && (
                          <>
                            {' '}
                            (<Link href={`/events/${r.eventId}`}>event {r.eventId}</Link>)
                          </>
                        )}
                        {r.actor && <span class="muted"> by {r.actor}</span>}
                      </td>
                      <td>
                        {r.undoneAt ? (
                          <>
                            <Badge value="undone" tone="warn" /> <Time at={r.undoneAt} />
                          </>
                        ) : r.kind === 'merge' && r.survivorId === props.id && canWrite ? (
                          <button
                            type="button"
                            disabled={unmerge.busy}
                            aria-label={`Unmerge profile ${r.mergedId}`}
                            onClick={() => run(r.id)}
                          >
                            Unmerge
                          </button>
                        ) : (
                          <Badge value={r.kind === 'merge' ? 'merged' : r.kind} tone="info" />
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Scroll>
          )
        }
      </Loaded>
    </section>
  );
}
