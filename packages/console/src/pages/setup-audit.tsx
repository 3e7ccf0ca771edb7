// Setup → Audit log: every write through the admin API, newest first, paged, filtered by actor and resource.
import { useEffect, useState } from 'preact/hooks';
import { api, qs } from '../api.ts';
import { Badge, ErrorBox, Field, Json, Time, useAction, useApi, useCan } from '../ui.tsx';
import { SetupLayout } from './setup-nav.tsx';

interface Entry {
  id: string;
  at: string;
  actor: { kind: string; id: string; role: string; userId: string | null };
  action: string;
  resourceType: string;
  resourceId: string | null;
  method: string;
  path: string;
  status: number;
  before: unknown;
  after: unknown;
}

// The resource types the audit log records (server/src/audit/resources.ts), offered as suggestions.
const TYPES = [
  'alert_rule',
  'api_key',
  'audience',
  'campaign',
  'computed_trait',
  'coupon_pool',
  'destination',
  'failed_event',
  'flow',
  'profile',
  'report',
  'source',
  'tag',
  'user',
];
const PAGE = 50;

export default function SetupAudit() {
  const [filter, setFilter] = useState({ actor: '', resourceType: '', resourceId: '' });
  const [applied, setApplied] = useState(filter);
  const [rows, setRows] = useState<Entry[]>();
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<Error>();
  const people = useApi<{ data: { id: string; email: string }[] }>(useCan('users:read') ? '/users' : null);
  const who = (id: string | null) => (id ? (people.data?.data.find((u) => u.id === id)?.email ?? id) : '');

  const load = async (before: string | null, signal?: AbortSignal) => {
    // An email is turned into the person's id (the log records ids, not emails).
    const typed = applied.actor.trim();
    const actor = people.data?.data.find((u) => u.email.toLowerCase() === typed.toLowerCase())?.id ?? typed;
    const q = { actor, resourceType: applied.resourceType.trim(), before, limit: PAGE };
    const page = await api<{ data: Entry[]; next: string | null }>(
      `/audit${qs({ ...q, resourceId: applied.resourceId.trim() })}`,
      { signal },
    );
    setRows((r) => (before ? [...(r ?? []), ...page.data] : page.data));
    setNext(page.next);
  };
  useEffect(() => {
    const ctl = new AbortController();
    setError(undefined);
    load(null, ctl.signal).catch((e: Error) => e.name !== 'AbortError' && setError(e));
    return () => ctl.abort();
  }, [applied, people.data]);
  const more = useAction(() => (next ? load(next) : Promise.resolve()));
  const set = (k: keyof typeof filter) => (e: Event) =>
    setFilter({ ...filter, [k]: (e.target as HTMLInputElement).value });

  return (
    <SetupLayout title="Audit log">
      <form
        class="filters"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter);
        }}
      >
        <Field label="Actor" hint="A user id, key id, or an email of a person">
          <input value={filter.actor} onInput={set('actor')} />
        </Field>
        <Field label="Resource type">
          <input list="audit-types" value={filter.resourceType} onInput={set('resourceType')} />
        </Field>
        <datalist id="audit-types">
          {TYPES.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <Field label="Resource id">
          <input value={filter.resourceId} onInput={set('resourceId')} />
        </Field>
        <button type="submit" class="primary">
          Filter
        </button>
      </form>
      <ErrorBox error={error ?? more.error} />
      {rows?.length === 0 && <p class="muted">No entries.</p>}
      {rows && rows.length > 0 && (
        <div class="table-scroll">
          <table class="grid">
            <caption class="sr-only">Audit entries, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Resource</th>
                <th scope="col">Status</th>
                <th scope="col">Before and after</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e.id}>
                  <td>
                    <Time at={e.at} />
                  </td>
                  <td>
                    {who(e.actor.userId) || e.actor.id}{' '}
                    <small class="muted">
                      ({e.actor.kind}, {e.actor.role})
                    </small>
                  </td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td class="ellipsis">
                    {e.resourceType} {e.resourceId && <code>{e.resourceId}</code>}
                  </td>
                  <td>
                    <Badge value={String(e.status)} tone={e.status < 300 ? 'ok' : 'bad'} />
                  </td>
                  <td>
                    <details>
                      <summary>Show</summary>
                      <Json value={{ before: e.before, after: e.after }} label={`Before and after, entry ${e.id}`} />
                    </details>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" onClick={() => more.run()} disabled={more.busy}>
          Older entries
        </button>
      )}
    </SetupLayout>
  );
}
