// SPA page views. A route change is a new path, or a new query string by pushState/popstate; replaceState
// that keeps the path (routers use it to store filters and scroll state) is not a page view.
import { at, here, setReferrer } from './context.ts';
import { safe } from './state.ts';

export function watchHistory(page: () => void) {
  let { pathname: path, search, href: url } = location;
  const nav = safe((replace?: boolean) => {
    const { pathname: p, search: s } = location;
    if (p !== path || (!replace && s !== search)) {
      setReferrer(url);
      // Deferred so that the router has set the new document.title; the location is taken now.
      const loc = here();
      setTimeout(() => at(loc, page));
    }
    path = p;
    search = s;
    url = location.href;
  });
  for (const m of ['pushState', 'replaceState'] as const) {
    const orig = history[m];
    history[m] = function (this: History, ...a: Parameters<History['pushState']>) {
      const r = orig.apply(this, a);
      nav(m === 'replaceState');
      return r;
    };
  }
  addEventListener('popstate', () => nav());
}
