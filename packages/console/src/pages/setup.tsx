// Setup: the caller's own account (who, which role may do what, change the password), and the sections the
// role may open (sources, people and roles, API keys, the audit log).
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { ErrorBox, Field, useAction, useMe } from '../ui.tsx';
import { SETUP_SECTIONS, SetupLayout } from './setup-nav.tsx';

const ABOUT: Record<string, string> = {
  '/setup/sources': 'Where events come from: write keys and the snippet tag to paste into a website.',
  '/setup/people': 'Who can sign in to the console, and with which role.',
  '/setup/keys': 'Keys for machines calling the admin API, each bound to a role.',
  '/setup/audit': 'Every write through the admin API: who, what, when, before and after.',
};

export default function Setup() {
  const me = useMe();
  const sections = SETUP_SECTIONS.filter((s) => s.path !== '/setup' && me.permissions.includes(s.permission));
  return (
    <SetupLayout title="Setup">
      <div class="cols">
        <section aria-labelledby="setup-account">
          <h2 id="setup-account">Your account</h2>
          <dl class="facts">
            <dt>Signed in as</dt>
            <dd>{me.user ? `${me.user.name} <${me.user.email}>` : me.kind}</dd>
            <dt>Role</dt>
            <dd>{me.role}</dd>
            <dt>May</dt>
            <dd>{me.permissions.filter((p) => p !== 'self:read').join(', ')}</dd>
          </dl>
          {me.kind === 'session' && <ChangePassword />}
        </section>
        <section aria-labelledby="setup-sections">
          <h2 id="setup-sections">Sections</h2>
          {sections.length === 0 ? (
            <p class="muted">Your role manages none of the settings; an admin can.</p>
          ) : (
            <ul>
              {sections.map((s) => (
                <li key={s.path}>
                  <Link href={s.path}>{s.title}</Link>: {ABOUT[s.path]}
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
    </SetupLayout>
  );
}

function ChangePassword() {
  const [form, setForm] = useState({ current: '', next: '' });
  const change = useAction(async () => {
    await api('/auth/change-password', {
      method: 'POST',
      body: { currentPassword: form.current, newPassword: form.next, revokeOtherSessions: true },
    });
    setForm({ current: '', next: '' });
    return true;
  });
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <form
      aria-labelledby="setup-password"
      class="filters"
      onSubmit={(e) => {
        e.preventDefault();
        change.run();
      }}
    >
      <h3 id="setup-password" style={{ width: '100%', margin: '16px 0 0' }}>
        Change your password
      </h3>
      <Field label="Current password">
        <input type="password" required autoComplete="current-password" value={form.current} onInput={set('current')} />
      </Field>
      <Field label="New password" hint="At least 12 characters">
        <input
          type="password"
          required
          minLength={12}
          autoComplete="new-password"
          value={form.next}
          onInput={set('next')}
        />
      </Field>
      <button type="submit" disabled={change.busy}>
        Change password
      </button>
      <ErrorBox error={change.error} />
      <p role="status" class={change.result ? '' : 'sr-only'}>
        {change.result ? 'Password changed; your other sessions were signed out.' : ''}
      </p>
    </form>
  );
}
