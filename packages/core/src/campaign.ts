/** Segment's `context.campaign` shape, filled from `utm_*` query parameters. */
export type Campaign = Record<string, string>;

// Segment renames utm_campaign to `name`; the other utm_* keys keep their suffix.
const RENAMED: Record<string, string> = { campaign: 'name' };

/**
 * Reads `utm_*` parameters from a query string or URL into Segment's `context.campaign` shape.
 * Returns undefined when there are none.
 *
 * @example
 * campaignFromUrl('https://shop.test/?utm_source=news&utm_campaign=spring');
 * // { source: 'news', name: 'spring' }
 */
export function campaignFromUrl(urlOrSearch: string | undefined): Campaign | undefined {
  if (!urlOrSearch) return undefined;
  const q = urlOrSearch.indexOf('?');
  const search = q >= 0 ? urlOrSearch.slice(q + 1) : urlOrSearch.startsWith('?') ? urlOrSearch.slice(1) : urlOrSearch;
  const hash = search.indexOf('#');
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(hash >= 0 ? search.slice(0, hash) : search);
  } catch {
    return undefined;
  }
  let campaign: Campaign | undefined;
  for (const [key, value] of params) {
    const k = key.toLowerCase();
    if (!k.startsWith('utm_') || k.length === 4 || !value) continue;
    const suffix = k.slice(4);
    campaign ??= {};
    campaign[RENAMED[suffix] ?? suffix] = value.slice(0, 1000);
  }
  return campaign;
}
