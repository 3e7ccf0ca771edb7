// Setup → API keys: keys for machines, each bound to a role; create one (the key shown once), revoke one.
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Badge, ErrorBox, Field, Loaded, Time, useAction, useApi, useCan } from '../ui.tsx';
import { SetupLayout } from './setup-nav.tsx';
import { ConfirmButton, ROLE_HELP, ROLES, type Role, ShownOnce } from './setup-parts.tsx';

interface ApiKey {
  id: string;
  name: string | null;
  start: string | null;
  role: Role;
  ownerId: string;
  enabled: boolean;
  expiresAt: string | null;
  createdAt: string;
}

export default function SetupKeys() {
  const list = useApi<{ data: ApiKey[] }>('/keys');
  const owners = useApi<{ data: { id: string; email: string }[] }>(useCan('users:read') ? '/users' : null);
  const canWrite = useCan('keys:write');
  const ownerOf = (id: string) => owners.data?.data.find((u) => u.id === id)?.email ?? id;
  return (
    <SetupLayout title="API keys">
      <p class="muted">
        Machines call the admin API with <code>Authorization: Bearer &lt;key&gt;</code>. Keys are stored hashed: a key
        is shown once, when it is made.
      </p>
      {canWrite && <CreateKey onCreated={list.reload} />}
      <Loaded state={list}>
        {({ data }) =>
          data.length === 0 ? (
            <p class="muted">No API keys yet.</p>
          ) : (
            <div class="table-scroll">
              <table class="grid">
                <caption class="sr-only">API keys</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Starts with</th>
                    <th scope="col">Role</th>
                    <th scope="col">Made by</th>
                    <th scope="col">State</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Created</th>
                    {canWrite && <th scope="col">Actions</th>}
                  </tr>
                </thead>
                <tbody>
                  {data.map((k) => (
                    <KeyRow key={k.id} k={k} owner={ownerOf(k.ownerId)} canWrite={canWrite} onChanged={list.reload} />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </SetupLayout>
  );
}

function KeyRow(props: { k: ApiKey; owner: string; canWrite: boolean; onChanged: () => void }) {
  const { k } = props;
  const revoke = useAction(async () => {
    await api(`/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
    props.onChanged();
  });
  return (
    <tr>
      <td>{k.name ?? <span class="muted">unnamed</span>}</td>
      <td>
        <code>{k.start ? `${k.start}…` : '—'}</code>
      </td>
      <td>{k.role}</td>
      <td class="ellipsis">{props.owner}</td>
      <td>{k.enabled ? <Badge value="active" /> : <Badge value="revoked" tone="bad" />}</td>
      <td>{k.expiresAt ? <Time at={k.expiresAt} /> : <span class="muted">never</span>}</td>
      <td>
        <Time at={k.createdAt} />
      </td>
      {props.canWrite && (
        <td>
          {k.enabled && (
            <ConfirmButton
              label="Revoke"
              what={`the key ${k.name ?? k.id}`}
              busy={revoke.busy}
              onConfirm={() => revoke.run()}
            />
          )}
          <ErrorBox error={revoke.error} />
        </td>
      )}
    </tr>
  );
}

function CreateKey(props: { onCreated: () => void }) {
  const [form, setForm] = useState<{ name: string; role: Role; days: string }>({
    name: '',
    role: 'analyst',
    days: '',
  });
  const create = useAction(async () => {
    const days = Number(form.days);
    const created = await api<ApiKey & { key: string }>('/keys', {
      method: 'POST',
      body: {
        name: form.name,
        role: form.role,
        expiresInSeconds: form.days && days > 0 ? Math.round(days * 86_400) : undefined,
      },
    });
    setForm({ name: '', role: form.role, days: '' });
    props.onCreated();
    return created;
  });
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <section aria-labelledby="key-h">
      <h2 id="key-h">Create an API key</h2>
      <form
        class="filters"
        aria-labelledby="key-h"
        onSubmit={(e) => {
          e.preventDefault();
          create.run();
        }}
      >
        <Field label="Key name" hint="Up to 32 characters">
          <input required maxLength={32} value={form.name} onInput={set('name')} />
        </Field>
        <Field label="Key role" hint={ROLE_HELP[form.role]}>
          <select value={form.role} onChange={set('role')}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Expires in (days)" hint="Empty: never">
          <input type="number" min={1} step="any" value={form.days} onInput={set('days')} />
        </Field>
        <button type="submit" class="primary" disabled={create.busy}>
          Create key
        </button>
      </form>
      <ErrorBox error={create.error} />
      {create.result && (
        <ShownOnce
          label="API key"
          value={create.result.key}
          note={`${create.result.name} (${create.result.role}): store it now, in a secret store; Cairn keeps only its hash.`}
        />
      )}
    </section>
  );
}
