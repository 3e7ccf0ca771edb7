// What every event says about where it came from, in Segment's context field names.
import { cfg, prefs } from './state.ts';
import type { Props } from './types.ts';

declare const __VERSION__: string;

/** The previous URL after an SPA navigation; document.referrer only describes the first page. */
let referrer = '';
let landing: Props | undefined;

export const setReferrer = (r: string) => (referrer = r);

/** Where a page view happened; an SPA page view is built later than the navigation it records. */
export type Loc = { path: string; referrer: string; search: string; url: string };
let pinned: Loc | undefined;

/** The current location, as a page view taken now would record it. */
export const here = (): Loc => ({
  path: location.pathname,
  referrer: referrer || document.referrer,
  search: location.search,
  url: location.href.split('#')[0]!,
});

/** Builds events as if at `loc`: two route changes in one task must not both record the last one. */
export function at(loc: Loc, fn: () => void) {
  pinned = loc;
  try {
    fn();
  } finally {
    pinned = undefined;
  }
}

export const pageProps = () => ({ ...(pinned || here()), title: document.title });

/** utm_campaign is Segment's `name`; other utm_x keep their suffix. */
function utm(search: string) {
  let c: Props | undefined;
  new URLSearchParams(search).forEach((v, k) => {
    const m = /^utm_(.+)/.exec(k);
    if (m) {
      c ||= {};
      c[m[1] === 'campaign' ? 'name' : m[1]!] = v;
    }
  });
  return c;
}

/** The campaign of the landing URL sticks for the life of the page, across SPA navigations. */
export const startContext = () => (landing = utm(location.search));

export function context(): Props {
  const c: Props = { library: { name: 'cairn-web', version: __VERSION__ } };
  if (Object.keys(prefs).length) c.consent = { categoryPreferences: { ...prefs } };
  if (cfg!.campaign) c.campaign = utm(location.search) || landing;
  if (cfg!.pageContext)
    Object.assign(c, {
      page: pageProps(),
      locale: navigator.language,
      userAgent: navigator.userAgent,
      screen: { width: screen.width, height: screen.height, density: devicePixelRatio },
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    });
  return c;
}
