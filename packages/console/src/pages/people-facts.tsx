// A person's facts: identities, traits (when, from which event), consent with its history, subscriptions,
// tags with their history.
import { Link } from '../router.tsx';
import { Badge, Loaded, Time, useApi } from '../ui.tsx';
import { Scroll } from './people-scroll.tsx';
import { type Profile, show } from './people-types.ts';

/** The identities the person holds (email and phone masked by the server without pii:read). */
export function Identities(props: { profile: Profile }) {
  const p = props.profile;
  return (
    <section aria-labelledby="person-identities">
      <h2 id="person-identities">Identities</h2>
      <Scroll label="Identities">
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col">Value</th>
              <th scope="col">Since</th>
            </tr>
          </thead>
          <tbody>
            {p.identities.map((i) => (
              <tr key={`${i.type}:${i.value}`}>
                <td>{i.type}</td>
                <td class="ellipsis" title={i.value}>
                  {i.value}
                </td>
                <td>
                  <Time at={i.createdAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Scroll>
      {p.accounts.length > 0 && <p>Accounts: {p.accounts.map((a) => a.id).join(', ')}</p>}
    </section>
  );
}

/** Traits with the time and the event that last set each. */
export function Traits(props: { profile: Profile }) {
  const traits = Object.entries(props.profile.traits);
  return (
    <section aria-labelledby="person-traits">
      <h2 id="person-traits">Traits</h2>
      {traits.length === 0 ? (
        <p class="muted">No traits yet.</p>
      ) : (
        <Scroll label="Traits">
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">Trait</th>
                <th scope="col">Value</th>
                <th scope="col">Set</th>
                <th scope="col">From</th>
              </tr>
            </thead>
            <tbody>
              {traits.map(([key, t]) => (
                <tr key={key}>
                  <td>{key}</td>
                  <td class="ellipsis" title={show(t.value)}>
                    {show(t.value)}
                  </td>
                  <td>
                    <Time at={t.updatedAt} />
                  </td>
                  <td>
                    {t.source}{' '}
                    <Link href={`/events/${t.eventId}`} aria-label={`Event ${t.eventId} that set ${key}`}>
                      event {t.eventId}
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      )}
    </section>
  );
}

interface ConsentChange {
  purpose: string;
  granted: boolean;
  at: string;
  source: string;
  eventId: string | null;
  actor: string | null;
}

/** Consent per purpose now, and every recorded change (proof of consent). */
export function Consent(props: { profile: Profile }) {
  const now = Object.entries(props.profile.consent);
  const history = useApi<{ data: ConsentChange[] }>(`/profiles/${props.profile.id}/consent`);
  return (
    <section aria-labelledby="person-consent">
      <h2 id="person-consent">Consent</h2>
      {now.length === 0 ? (
        <p class="muted">No consent recorded: the sources' default policy applies.</p>
      ) : (
        <Scroll label="Current consent">
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">Purpose</th>
                <th scope="col">State</th>
                <th scope="col">Since</th>
                <th scope="col">How</th>
              </tr>
            </thead>
            <tbody>
              {now.map(([purpose, c]) => (
                <tr key={purpose}>
                  <td>{purpose}</td>
                  <td>
                    <Badge value={c.granted ? 'granted' : 'denied'} />
                  </td>
                  <td>
                    <Time at={c.at} />
                  </td>
                  <td>{c.actor ? `${c.source} (${c.actor})` : c.source}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      )}
      <Loaded state={history}>
        {(h) =>
          h.data.length > 0 && (
            <details>
              <summary>
                Consent history ({h.data.length} {h.data.length === 1 ? 'change' : 'changes'})
              </summary>
              <Scroll label="Consent history">
                <table class="grid">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Purpose</th>
                      <th scope="col">Choice</th>
                      <th scope="col">From</th>
                    </tr>
                  </thead>
                  <tbody>
                    {h.data.map((c, i) => (
                      <tr key={`${c.at}:${c.purpose}:${i}`}>
                        <td>
                          <Time at={c.at} />
                        </td>
                        <td>{c.purpose}</td>
                        <td>{c.granted ? 'granted' : 'denied'}</td>
                        <td>
                          {c.eventId ? <Link href={`/events/${c.eventId}`}>event {c.eventId}</Link> : c.source}
                          {c.actor && ` (${c.actor})`}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </Scroll>
            </details>
          )
        }
      </Loaded>
    </section>
  );
}

interface Subscription {
  contact: string;
  channel: string;
  topic: string;
  subscribed: boolean;
  source: string;
  actor: string | null;
  updatedAt: string;
}

/** Subscription state per contact point, channel and topic, with when and how it last changed. */
export function Subscriptions(props: { id: string }) {
  const state = useApi<{ data: Subscription[] }>(`/profiles/${props.id}/subscriptions`);
  return (
    <section aria-labelledby="person-subs">
      <h2 id="person-subs">Subscriptions</h2>
      <Loaded state={state}>
        {(s) =>
          s.data.length === 0 ? (
            <p class="muted">No subscription changes recorded: every contact point is subscribed.</p>
          ) : (
            <Scroll label="Subscriptions">
              <table class="grid">
                <thead>
                  <tr>
                    <th scope="col">Contact</th>
                    <th scope="col">Channel · topic</th>
                    <th scope="col">State</th>
                    <th scope="col">Changed</th>
                  </tr>
                </thead>
                <tbody>
                  {s.data.map((r) => (
                    <tr key={`${r.contact}:${r.channel}:${r.topic}`}>
                      <td class="ellipsis" title={r.contact}>
                        {r.contact}
                      </td>
                      <td>
                        {r.channel} · {r.topic || 'all topics'}
                      </td>
                      <td>
                        <Badge value={r.subscribed ? 'subscribed' : 'unsubscribed'} />
                      </td>
                      <td>
                        <Time at={r.updatedAt} /> <span class="muted">by {r.actor ?? r.source}</span>
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

interface TagAssignment {
  tag: string;
  addedAt: string;
  addedBy: string;
  addedReason: string | null;
  removedAt: string | null;
  removedBy: string | null;
}

/** Current tags and every period the person carried one. */
export function Tags(props: { id: string }) {
  const state = useApi<{ current: string[]; history: TagAssignment[] }>(`/profiles/${props.id}/tags`);
  return (
    <section aria-labelledby="person-tags">
      <h2 id="person-tags">Tags</h2>
      <Loaded state={state}>
        {(t) => (
          <>
            {t.current.length === 0 ? (
              <p class="muted">No tags now.</p>
            ) : (
              <ul class="filters" aria-label="Current tags" style={{ listStyle: 'none', padding: 0 }}>
                {t.current.map((tag) => (
                  <li key={tag}>
                    <Link href={`/tags/${encodeURIComponent(tag)}`}>
                      <Badge value={tag} tone="info" />
                    </Link>
                  </li>
                ))}
              </ul>
            )}
            {t.history.length > 0 && (
              <details>
                <summary>
                  Tag history ({t.history.length} {t.history.length === 1 ? 'period' : 'periods'})
                </summary>
                <Scroll label="Tag history">
                  <table class="grid">
                    <thead>
                      <tr>
                        <th scope="col">Tag</th>
                        <th scope="col">Added</th>
                        <th scope="col">Removed</th>
                      </tr>
                    </thead>
                    <tbody>
                      {t.history.map((h, i) => (
                        <tr key={`${h.tag}:${h.addedAt}:${i}`}>
                          <td>{h.tag}</td>
                          <td>
                            <Time at={h.addedAt} /> <span class="muted">by {h.addedBy}</span>
                          </td>
                          <td>
                            {h.removedAt ? (
                              <>
                                <Time at={h.removedAt} /> <span class="muted">by {h.removedBy}</span>
                              </>
                            ) : (
                              '—'
                            )}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </Scroll>
              </details>
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}
