// What every event says about where it came from, in Segment's context field names.
import { cfg, prefs } from './state.ts';
import type { Props } from './types.ts';

declare const __VERSION__: string;

/** The previous URL after an SPA navigation; document.referrer only describes the first page. */
let referrer = '';
let landing: Props | undefined;

export const setReferrer = (r: string) => (referrer = r);

export const pageProps = () => ({
  path: location.pathname,
  referrer: referrer || document.referrer,
  search: location.search,
  title: document.title,
  url: location.href.split('#')[0],
});

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
