// People: find a person by any identity (email and phone through the API's blind index), or browse the
// people seen most recently.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, qs } from '../api.ts';
import { Link, navigate, useLocation } from '../router.tsx';
import { Field, Loaded, PageHeader, Time, useApi } from '../ui.tsx';
import { Scroll } from './people-scroll.tsx';
import { labelOf, type Profile, type ProfileSummary } from './people-types.ts';

const KINDS = {
  any: 'Any identity',
  email: 'Email',
  phone: 'Phone',
  userId: 'User id',
  anonymousId: 'Anonymous id',
  profile: 'Profile id',
  externalId: 'External id (type:value)',
} as const;
type Kind = keyof typeof KINDS;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PHONE = /^\+?[\d\s().-]{6,}$/;

/** The lookups one search makes: each identity type the text could be. */
function lookupsOf(text: string, kind: Kind): { by: string; path: string }[] {
  const one = (by: Exclude<Kind, 'any' | 'profile'>) => ({ by: KINDS[by], path: `/profiles${qs({ [by]: text })}` });
  const profile = { by: KINDS.profile, path: `/profiles/${encodeURIComponent(text)}` };
  if (kind === 'profile') return UUID.test(text) ? [profile] : [];
  if (kind !== 'any') return [one(kind)];
  const out: { by: string; path: string }[] = [one('userId'), one('anonymousId')];
  if (text.includes('@')) out.push(one('email'));
  if (PHONE.test(text)) out.push(one('phone'));
  if (/^[^:\s]+:.+/.test(text) && !text.includes('@')) out.push(one('externalId'));
  if (UUID.test(text)) out.push(profile);
  return out;
}

/** Runs the lookups at once; the people found, each with the identity types that found it. */
async function search(text: string, kind: Kind): Promise<{ profile: Profile; by: string[] }[]> {
  const found = new Map<string, { profile: Profile; by: string[] }>();
  const answers = await Promise.all(
    lookupsOf(text, kind).map(async (l) => {
      try {
        const r = await api<{ data: Profile[] } | Profile>(l.path);
        return { by: l.by, profiles: 'data' in r ? r.data : [r] };
      } catch (e) {
        // Not this kind of identity (400), no such profile id (404), an erased one (410).
        if (e instanceof ApiError && [400, 404, 410].includes(e.status)) return { by: l.by, profiles: [] };
        throw e;
      }
    }),
  );
  for (const a of answers) {
    for (const p of a.profiles) {
      const hit = found.get(p.id) ?? { profile: p, by: [] };
      hit.by.push(a.by);
      found.set(p.id, hit);
    }
  }
  return [...found.values()];
}

export default function People() {
  const { search: params } = useLocation();
  const q = params.get('q') ?? '';
  const kind = (params.get('by') ?? 'any') as Kind;
  const [form, setForm] = useState({ q, kind });
  useEffect(() => setForm({ q, kind }), [q, kind]);
  const submit = (e: Event) => {
    e.preventDefault();
    const text = form.q.trim();
    navigate(`/people${qs({ q: text, by: form.kind === 'any' ? '' : form.kind })}`, { replace: true });
  };
  return (
    <>
      <PageHeader title="People" />
      <search>
        <form class="filters" aria-label="Find a person" onSubmit={submit}>
          <Field label="Find a person" hint="Email, phone, user id, anonymous id or profile id">
            <input
              type="search"
              value={form.q}
              onInput={(e) => setForm({ ...form, q: (e.target as HTMLInputElement).value })}
              size={36}
            />
          </Field>
          <Field label="Identity type">
            <select
              value={form.kind}
              onChange={(e) => setForm({ ...form, kind: (e.target as HTMLSelectElement).value as Kind })}
            >
              {Object.entries(KINDS).map(([k, label]) => (
                <option key={k} value={k}>
                  {label}
                </option>
              ))}
            </select>
          </Field>
          <button type="submit" class="primary">
            Search
          </button>
          {q && (
            <button type="button" onClick={() => navigate('/people', { replace: true })}>
              Clear
            </button>
          )}
        </form>
      </search>
      {q ? <Results text={q} kind={kind} /> : <Recent />}
    </>
  );
}

function Results(props: { text: string; kind: Kind }) {
  const [state, setState] = useState<{ data?: { profile: Profile; by: string[] }[]; error?: Error; loading: boolean }>({
    loading: true,
  });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    search(props.text, props.kind)
      .then((data) => live && setState({ data, loading: false }))
      .catch((error: Error) => live && setState({ error, loading: false }));
    return () => {
      live = false;
    };
  }, [props.text, props.kind]);
  return (
    <section aria-labelledby="people-found">
      <h2 id="people-found">Matching “{props.text}”</h2>
      <Loaded state={state}>
        {(rows) =>
          rows.length === 0 ? (
            <p role="status">No one holds that identity.</p>
          ) : (
            <PeopleTable
              caption={`${rows.length} ${rows.length === 1 ? 'person' : 'people'} found`}
              rows={rows.map((r) => ({ ...r.profile, by: r.by }))}
            />
          )
        }
      </Loaded>
    </section>
  );
}

function Recent() {
  const [before, setBefore] = useState<string[]>([]);
  const cursor = before.at(-1);
  const state = useApi<{ data: ProfileSummary[]; next: string | null }>(`/profiles/recent${qs({ before: cursor })}`);
  return (
    <section aria-labelledby="people-recent">
      <h2 id="people-recent">Seen recently</h2>
      <Loaded state={state}>
        {(page) => (
          <>
            {page.data.length === 0 ? (
              <p class="muted">No one yet: people appear once their first event is processed.</p>
            ) : (
              <PeopleTable caption="People, most recently seen first" rows={page.data} />
            )}
            <p class="filters">
              {before.length > 0 && (
                <button type="button" onClick={() => setBefore(before.slice(0, -1))}>
                  Newer
                </button>
              )}
              {page.next && (
                <button type="button" onClick={() => setBefore([...before, page.next!])}>
                  Older
                </button>
              )}
            </p>
          </>
        )}
      </Loaded>
    </section>
  );
}

function PeopleTable(props: {
  caption: string;
  rows: (ProfileSummary & { traits?: Profile['traits']; by?: string[] })[];
}) {
  return (
    <Scroll label="People">
      <table class="grid">
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Person</th>
            <th scope="col">Identities</th>
            {props.rows.some((r) => r.by) && <th scope="col">Found by</th>}
            <th scope="col">Last seen</th>
            <th scope="col">First seen</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((p) => (
            <tr key={p.id}>
              <td>
                <Link href={`/people/${p.id}`}>{labelOf(p)}</Link>
              </td>
              <td>
                {p.identities.map((i) => (
                  <div key={`${i.type}:${i.value}`}>
                    <span class="muted">{i.type}</span> {i.value}
                  </div>
                ))}
              </td>
              {p.by && <td>{p.by.join(', ')}</td>}
              <td>
                <Time at={p.updatedAt} />
              </td>
              <td>
                <Time at={p.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Scroll>
  );
}
