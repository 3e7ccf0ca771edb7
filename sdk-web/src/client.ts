// The public API. Every method is wrapped: before init() calls are buffered, and no error reaches the page.
import { context, pageProps, startContext } from './context.ts';
import { watchHistory } from './history.ts';
import { clear, own, startQueue, update } from './queue.ts';
import { enqueue, flush, resume, unload } from './send.ts';
import { cfg, configure, iso, json, log, pending, prefs, safe, setPrefs, uuid } from './state.ts';
import { AID, CONSENT, cookie, del, get, readCookie, set, setPersist, TRAITS, UID } from './store.ts';
import type { Cairn, CairnEvent, Middleware, Options, Props, Purposes } from './types.ts';

let aid = '';
let uid: string | null = null;
let traits: Props = {};
let tick: () => void;
const early: [keyof Cairn, unknown[]][] = [];
const mw: Middleware[] = [];

const keys = () => [AID, UID, TRAITS, CONSENT, ...own()];

function save() {
  set(AID, aid);
  uid ? set(UID, uid) : del(UID);
  set(TRAITS, JSON.stringify(traits));
  cookie(AID, aid);
}

/** Persistence follows consent: always without consent mode, after the analytics grant with it. */
function persistence() {
  setPersist(!cfg!.requireConsent || prefs.analytics === true, keys());
}

function build(type: CairnEvent['type'], fields: Partial<CairnEvent>) {
  let e: CairnEvent | null | undefined = {
    type,
    messageId: uuid(),
    anonymousId: aid,
    ...(uid && { userId: uid }),
    timestamp: iso(),
    context: context(),
    ...fields,
  };
  // A throwing middleware drops the event (the error is logged): it may have been meant to scrub it.
  for (const fn of mw) {
    e = fn(e);
    if (!e) {
      log('dropped by middleware', type);
      return;
    }
  }
  log(type, e);
  return e;
}

/** Events made after `analytics: false` are not even queued. */
function emit(type: CairnEvent['type'], fields: Partial<CairnEvent>) {
  const e = prefs.analytics !== false && build(type, fields);
  e && enqueue(e);
}

const methods = {
  init(o: Partial<Options>) {
    if (cfg || !configure(o)) return log('init: needs a writeKey, once');
    setPrefs(json(get(CONSENT)) || {});
    persistence();
    aid = readCookie(AID) || get(AID) || uuid();
    uid = get(UID);
    traits = json(get(TRAITS)) || {};
    save();
    startContext();
    tick = startQueue(flush);
    addEventListener('pagehide', safe(unload));
    addEventListener('pageshow', () => {
      resume();
      tick();
    });
    document.addEventListener('visibilitychange', () => document.visibilityState === 'hidden' && flush());
    for (const [m, a] of early.splice(0)) call(api, m, a);
    cfg!.autoPage && api.page();
    cfg!.spa && watchHistory(() => api.page());
  },

  identify(id?: unknown, t?: Props) {
    if (id && typeof id === 'object') {
      t = id as Props;
      id = null;
    }
    if (id != null) {
      // A different person on this device: their traits start empty (as in analytics.js).
      if (uid && uid !== id) traits = {};
      uid = String(id);
    }
    traits = { ...traits, ...t };
    save();
    emit('identify', { traits });
  },

  track(event: string, properties?: Props) {
    emit('track', { event, properties: properties || {} });
  },

  page(...a: unknown[]) {
    const strings = a.filter((x) => typeof x === 'string') as string[];
    const name = strings.pop();
    emit('page', {
      name,
      category: strings.pop(),
      properties: { ...pageProps(), ...(a.find((x) => x && typeof x === 'object') as Props) },
    });
  },

  group(groupId: string, traits?: Props) {
    emit('group', { groupId: String(groupId), traits: traits || {} });
  },

  alias(userId: string, previousId?: string) {
    emit('alias', { userId: String(userId), previousId: previousId || uid || aid });
  },

  reset() {
    uid = null;
    traits = {};
    aid = uuid();
    save();
  },

  user: () => ({ anonymousId: aid, userId: uid, traits: { ...traits } }),

  ready(cb: () => void) {
    cb();
  },

  /**
   * Merges the purposes and, when they change, sends `Consent Updated`. The event goes out if analytics was
   * allowed before or after the change, so a withdrawal is recorded but a refusal up front sends nothing.
   */
  consent(p: Purposes) {
    const allowed = () => prefs.analytics ?? !cfg!.requireConsent;
    const before = allowed();
    const was = JSON.stringify(prefs);
    setPrefs({ ...prefs, ...p });
    if (JSON.stringify(prefs) === was) return;
    const now = allowed();
    if (!before && !now) clear();
    persistence();
    set(CONSENT, JSON.stringify(prefs));
    if (now) {
      save();
      tick();
    }
    // Events that waited for this answer carry it; the others keep the consent they were made under.
    if (!before) update((e) => (e.context.consent = { categoryPreferences: { ...prefs } }));
    if (before || now) {
      const e = build('track', { event: 'Consent Updated', properties: { ...prefs } });
      e && enqueue(e);
    }
    pending() || flush();
  },

  use(fn: Middleware) {
    typeof fn === 'function' && mw.push(fn);
  },

  debug(on = true) {
    cfg!.debug = on;
  },
} satisfies Record<keyof Cairn, unknown>;

/** Calls a method by name with untyped arguments (replayed calls, the stub's queue). */
export const call = (o: object, m: PropertyKey, a: unknown[]) =>
  (o[m as keyof typeof o] as ((...a: unknown[]) => unknown) | undefined)?.(...a);

export const api = {} as Cairn;
for (const k in methods) {
  const m = k as keyof Cairn;
  api[m] = ((...a: unknown[]) => {
    try {
      if (!cfg && m !== 'init' && m !== 'use' && m !== 'user') {
        early.push([m, a]);
        return api;
      }
      const r = call(methods, m, a);
      return m === 'user' ? r : api;
    } catch (e) {
      log(e);
      return api;
    }
  }) as never;
}
