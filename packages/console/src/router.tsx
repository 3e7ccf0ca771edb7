// A small router over the History API under /console/: each page is a chunk loaded the first time
// it is opened. Links are real <a href> (keyboard, middle-click, copy link all work).
import type { AnchorHTMLAttributes, ComponentChildren, ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/console';

/** The path under /console (`/people/123`), and the query string. */
export function currentLocation(): { path: string; search: URLSearchParams } {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || '/' : '/';
  return { path, search: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
addEventListener('popstate', () => {
  for (const l of listeners) l();
});

/**
 * Goes to a console path without reloading (`replace` keeps history clean for filters).
 *
 * @example
 * navigate('/people/9f0…');
 */
export function navigate(to: string, opts: { replace?: boolean } = {}) {
  const url = to.startsWith(BASE) ? to : `${BASE}${to}`;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  for (const l of listeners) l();
}

/** Re-renders on navigation; returns the current location. */
export function useLocation() {
  const [loc, setLoc] = useState(currentLocation);
  useEffect(() => {
    const l = () => setLoc(currentLocation());
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return loc;
}

/**
 * A link inside the console.
 *
 * @example
 * <Link href="/people">People</Link>
 */
export function Link(props: { href: string; children: ComponentChildren } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const { href, children, ...rest } = props;
  const full = `${BASE}${href}`;
  return (
    <a
      {...rest}
      href={full}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

/** Matches `/people/:id` against a path; the params, or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split('/').filter(Boolean);
  const b = path.split('/').filter(Boolean);
  if (a.length !== b.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const p = a[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(b[i]!);
    else if (p !== b[i]) return null;
  }
  return params;
}

/** A page module: its default export receives the route's params. */
export type PageModule = { default: ComponentType<{ params: Record<string, string> }> };

const loaded = new Map<() => Promise<PageModule>, PageModule>();

/**
 * Renders a lazily loaded page.
 *
 * @example
 * <Lazy load={() => import('./pages/events.tsx')} params={{}} />
 */
export function Lazy(props: { load: () => Promise<PageModule>; params: Record<string, string> }) {
  const [mod, setMod] = useState<PageModule | undefined>(loaded.get(props.load));
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (loaded.has(props.load)) return setMod(loaded.get(props.load));
    setMod(undefined);
    let live = true;
    props
      .load()
      .then((m) => {
        loaded.set(props.load, m);
        if (live) setMod(m);
      })
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [props.load]);
  if (error) return <p role="alert">Could not load this page: {error}</p>;
  if (!mod) return <p aria-busy="true">Loading…</p>;
  const Page = mod.default;
  return <Page params={props.params} />;
}
