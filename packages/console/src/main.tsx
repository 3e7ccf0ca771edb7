// The console's shell: sign-in, the navigation (pages the caller may open), and the current page.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type Me } from './api.ts';
import { PAGES } from './pages.ts';
import { Lazy, Link, match, navigate, useLocation } from './router.tsx';
import { ErrorBox, Field, MeContext, useAction } from './ui.tsx';

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [error, setError] = useState<Error>();
  const load = () =>
    api<Me>('/me')
      .then(setMe)
      .catch((e: Error) => (e instanceof ApiError && e.status === 401 ? setMe(null) : setError(e)));
  useEffect(() => {
    load();
  }, []);
  if (error) return <ErrorBox error={error} />;
  if (me === undefined) return <p aria-busy="true">Loading…</p>;
  if (me === null) return <SignIn onSignedIn={load} />;
  return (
    <MeContext.Provider value={me}>
      <Shell me={me} onSignedOut={() => setMe(null)} />
    </MeContext.Provider>
  );
}

function SignIn(props: { onSignedIn: () => void }) {
  const [mode, setMode] = useState<'in' | 'up'>('in');
  const [form, setForm] = useState({ name: '', email: '', password: '' });
  const submit = useAction(async () => {
    const body =
      mode === 'in'
        ? { email: form.email, password: form.password }
        : { name: form.name || form.email, email: form.email, password: form.password };
    await api(`/auth/sign-${mode}/email`, { method: 'POST', body });
    props.onSignedIn();
  });
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <main id="main" class="signin">
      <h1>Cairn</h1>
      <form
        aria-label={mode === 'in' ? 'Sign in' : 'Create the first admin account'}
        onSubmit={(e) => {
          e.preventDefault();
          submit.run();
        }}
      >
        <h2>{mode === 'in' ? 'Sign in' : 'Create the first admin account'}</h2>
        {mode === 'up' && (
          <Field label="Name">
            <input name="name" autoComplete="name" value={form.name} onInput={set('name')} />
          </Field>
        )}
        <Field label="Email">
          <input name="email" type="email" required autoComplete="username" value={form.email} onInput={set('email')} />
        </Field>
        <Field label="Password" hint={mode === 'up' ? 'At least 12 characters' : undefined}>
          <input
            name="password"
            type="password"
            required
            autoComplete={mode === 'in' ? 'current-password' : 'new-password'}
            value={form.password}
            onInput={set('password')}
          />
        </Field>
        <ErrorBox error={submit.error} />
        <button type="submit" class="primary" disabled={submit.busy}>
          {mode === 'in' ? 'Sign in' : 'Create account'}
        </button>
        <p class="muted">
          {mode === 'in' ? 'No one has an account yet? ' : 'Have an account? '}
          <button type="button" class="link" onClick={() => setMode(mode === 'in' ? 'up' : 'in')}>
            {mode === 'in' ? 'Create the first admin account' : 'Sign in'}
          </button>
        </p>
      </form>
    </main>
  );
}

function Shell(props: { me: Me; onSignedOut: () => void }) {
  const { path } = useLocation();
  const allowed = PAGES.filter((p) => props.me.permissions.includes(p.permission));
  useEffect(() => {
    if (path === '/' && allowed[0]) navigate(allowed[0].path, { replace: true });
  }, [path]);
  let current: { page: (typeof PAGES)[number]; params: Record<string, string> } | undefined;
  for (const page of allowed) {
    const params = match(page.path, path);
    if (params) {
      current = { page, params };
      break;
    }
  }
  const signOut = async () => {
    await api('/auth/sign-out', { method: 'POST', body: {} }).catch(() => undefined);
    props.onSignedOut();
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Cairn</span>
        <nav aria-label="Console">
          <ul>
            {allowed
              .filter((p) => p.title)
              .map((p) => (
                <li key={p.path}>
                  <Link href={p.path} aria-current={path.startsWith(p.path) ? 'page' : undefined}>
                    {p.title}
                  </Link>
                </li>
              ))}
          </ul>
        </nav>
        <span class="who">
          {props.me.user?.email ?? props.me.kind} · <span class="role">{props.me.role}</span>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main">
        {current ? (
          <Lazy load={current.page.load} params={current.params} key={current.page.path} />
        ) : path === '/' ? null : (
          <p>No such page, or your role cannot open it.</p>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
