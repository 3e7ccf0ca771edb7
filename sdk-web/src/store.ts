// Storage that can be switched off: until consent allows it (or when localStorage is unavailable or full),
// values live in memory only, so consent mode writes nothing to the device before the analytics grant.
import { cfg } from './state.ts';

export const AID = 'cairn_aid';
export const UID = 'cairn_uid';
export const TRAITS = 'cairn_traits';
export const CONSENT = 'cairn_consent';

let persist = false;
const mem: Record<string, string> = {};
const YEAR = 31536e3;

export const persisting = () => persist;

/** Memory first: it holds what could not (or may not) be written to localStorage. */
export function get(k: string): string | null {
  if (k in mem) return mem[k]!;
  try {
    return localStorage.getItem(k);
  } catch {
    return null;
  }
}

export function set(k: string, v: string) {
  try {
    if (!persist) throw 0;
    localStorage.setItem(k, v);
    delete mem[k];
  } catch {
    mem[k] = v;
  }
}

export function del(k: string) {
  delete mem[k];
  try {
    persist && localStorage.removeItem(k);
  } catch {}
}

/**
 * Turns persistence on (copy memory to the device) or off (move our keys off the device into memory, so the
 * page keeps working with the same ids but leaves nothing behind).
 */
export function setPersist(on: boolean, keys: string[]) {
  if (on === persist) return;
  if (on) {
    persist = on;
    for (const k in mem) set(k, mem[k]!);
  } else {
    for (const k of keys) {
      const v = get(k);
      if (v != null) mem[k] = v;
      try {
        localStorage.removeItem(k);
      } catch {}
    }
    cookie(AID, '');
    persist = on;
  }
}

// document.cookie throws in sandboxed iframes; there the anonymousId simply lives in localStorage or memory.
export function readCookie(name: string) {
  try {
    return document.cookie.match(`(?:^|; )${name}=([^;]*)`)?.[1];
  } catch {}
}

function write(name: string, v: string, domain?: string) {
  const attrs = [`${name}=${v}`, 'path=/', `max-age=${v ? YEAR : 0}`, 'samesite=lax'];
  if (domain) attrs.push(`domain=${domain}`);
  if (location.protocol === 'https:') attrs.push('secure');
  try {
    // biome-ignore lint/suspicious/noDocumentCookie: the Cookie Store API is async and missing from older Safari and Firefox.
    document.cookie = attrs.join(';');
  } catch {}
}

let domain: string | undefined;

/** 'auto' finds the top-level domain the way the browser sees it: the shortest suffix that accepts a cookie. */
function cookieDomain() {
  if (domain == null) {
    domain = cfg!.cookieDomain;
    if (domain === 'auto') {
      const parts = location.hostname.split('.');
      domain = '';
      for (let i = parts.length - 2; i >= 0 && !domain; i--) {
        const d = parts.slice(i).join('.');
        write('cairn_t', '1', d);
        if (readCookie('cairn_t')) {
          write('cairn_t', '', d);
          domain = d;
        }
      }
    }
  }
  return domain;
}

export function cookie(name: string, v: string) {
  if (persist || !v) write(name, v, cookieDomain());
}
