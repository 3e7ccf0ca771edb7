// Setup → People and roles: who can sign in, invite a person with a role (the initial password shown once),
// change a role, remove a person (users:write).
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Field, Loaded, Time, useAction, useApi, useCan, useMe } from '../ui.tsx';
import { SetupLayout } from './setup-nav.tsx';
import { ConfirmButton, ROLE_HELP, ROLES, type Role, ShownOnce } from './setup-parts.tsx';

interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  createdAt: string;
}

export default function SetupPeople() {
  const list = useApi<{ data: User[] }>('/users');
  const canWrite = useCan('users:write');
  return (
    <SetupLayout title="People and roles">
      {canWrite && <Invite onInvited={list.reload} />}
      <Loaded state={list}>
        {({ data }) => (
          <div class="table-scroll">
            <table class="grid">
              <caption class="sr-only">People who can sign in</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Since</th>
                  {canWrite && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {data.map((u) => (
                  <PersonRow key={u.id} u={u} canWrite={canWrite} onChanged={list.reload} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
    </SetupLayout>
  );
}

function PersonRow(props: { u: User; canWrite: boolean; onChanged: () => void }) {
  const { u } = props;
  const me = useMe();
  const self = me.user?.id === u.id;
  const setRole = useAction(async (role: Role) => {
    await api(`/users/${encodeURIComponent(u.id)}`, { method: 'PATCH', body: { role } });
    props.onChanged();
  });
  const remove = useAction(async () => {
    await api(`/users/${encodeURIComponent(u.id)}`, { method: 'DELETE' });
    props.onChanged();
  });
  return (
    <tr>
      <td>{u.name}</td>
      <td>{u.email}</td>
      <td>
        {props.canWrite && !self ? (
          <select
            aria-label={`Role of ${u.email}`}
            value={u.role}
            disabled={setRole.busy}
            onChange={(e) => setRole.run((e.target as HTMLSelectElement).value as Role)}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        ) : (
          <>
            {u.role}
            {self && <span class="muted"> (you)</span>}
          </>
        )}
        <ErrorBox error={setRole.error} />
      </td>
      <td>
        <Time at={u.createdAt} />
      </td>
      {props.canWrite && (
        <td>
          {!self && <ConfirmButton label="Remove" what={u.email} busy={remove.busy} onConfirm={() => remove.run()} />}
          <ErrorBox error={remove.error} />
        </td>
      )}
    </tr>
  );
}

function Invite(props: { onInvited: () => void }) {
  const [form, setForm] = useState<{ email: string; name: string; role: Role }>({
    email: '',
    name: '',
    role: 'analyst',
  });
  const invite = useAction(async () => {
    const created = await api<User & { initialPassword: string }>('/users', {
      method: 'POST',
      body: { email: form.email, name: form.name.trim() || undefined, role: form.role },
    });
    setForm({ email: '', name: '', role: form.role });
    props.onInvited();
    return created;
  });
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <section aria-labelledby="invite-h">
      <h2 id="invite-h">Invite a person</h2>
      <form
        class="filters"
        aria-labelledby="invite-h"
        onSubmit={(e) => {
          e.preventDefault();
          invite.run();
        }}
      >
        <Field label="Email">
          <input type="email" required value={form.email} onInput={set('email')} />
        </Field>
        <Field label="Name">
          <input value={form.name} onInput={set('name')} />
        </Field>
        <Field label="Role" hint={ROLE_HELP[form.role]}>
          <select value={form.role} onChange={set('role')}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit" class="primary" disabled={invite.busy}>
          Invite
        </button>
      </form>
      <ErrorBox error={invite.error} />
      {invite.result && (
        <ShownOnce
          label="Initial password"
          value={invite.result.initialPassword}
          note={`Give it to ${invite.result.email} (${invite.result.role}) by a safe channel; they change it under Setup → Your account.`}
        />
      )}
    </section>
  );
}
