// Module-level state shared by the snippet's parts. One tracker per page, so plain variables (which the
// minifier can rename) beat an object threaded through every call: the size budget is 5 KB gzipped.
import type { Options, Purposes } from './types.ts';

export const defaults = {
  host: '',
  flushAt: 20,
  flushInterval: 1000,
  maxQueue: 500,
  requireConsent: false,
  cookieDomain: '',
  autoPage: true,
  spa: true,
  campaign: true,
  pageContext: true,
  debug: false,
};

export type Config = typeof defaults & { writeKey: string };

export let cfg: Config | undefined;
/** Consent as last told by `consent()`, persisted only once analytics is granted. */
export let prefs: Purposes = {};
/** Options from the script tag, under those passed to `init()`. */
let base: Partial<Options> = {};

export const setBase = (o: Partial<Options>) => (base = o);
export const setPrefs = (p: Purposes) => (prefs = p);

/** Merges defaults, script-tag options and `o`; without a write key nothing is configured. */
export function configure(o: Partial<Options>) {
  const c = { ...defaults, ...base, ...o } as Config;
  c.host = c.host.replace(/\/+$/, '');
  if (c.writeKey) cfg = c;
  return c.writeKey;
}

/** Consent mode and no answer yet: events wait in memory, nothing leaves the page. */
export const pending = () => !!cfg?.requireConsent && prefs.analytics == null;

export const log = (...a: unknown[]) => cfg?.debug && console.log('[cairn]', ...a);

export const json = <T>(s: string | null | undefined): T | undefined => {
  try {
    return s ? JSON.parse(s) : undefined;
  } catch {}
};

/** Runs host-triggered work so that nothing we do can throw into the page. */
export const safe =
  <A extends unknown[]>(fn: (...a: A) => unknown) =>
  (...a: A) => {
    try {
      fn(...a);
    } catch (e) {
      log(e);
    }
  };

/** crypto.randomUUID needs a secure context; getRandomValues does not. */
export const uuid = (): string =>
  crypto.randomUUID
    ? crypto.randomUUID()
    : '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
        (+c ^ (crypto.getRandomValues(new Uint8Array(1))[0]! & (15 >> (+c / 4)))).toString(16),
      );

export const now = Date.now;
export const iso = () => new Date().toISOString();
