// The outbox: one localStorage queue per tab, so two tabs never send each other's events. A tab proves it is
// alive with a heartbeat; a queue whose tab stopped beating (or let go on pagehide) is moved into the queue of
// exactly one live tab, under a Web Lock where the browser has them.

import { cfg, json, log, now, safe, uuid } from './state.ts';
import { del, get, persisting, set } from './store.ts';
import type { CairnEvent } from './types.ts';

const Q = 'cairn_q_';
const H = 'cairn_h_';
const BEAT = 5e3;
// Hidden tabs may run timers only once a minute (Chrome's intensive throttling); stay well above that.
const TTL = 12e4;
/** The server refuses events over 32 KB. */
const MAX_EVENT = 32e3;

let tab = '';
let dropped = 0;

export const size = (s: string) => new Blob([s]).size;
export const read = (): CairnEvent[] => json(get(Q + tab)) || [];
const write = (q: CairnEvent[]) => (q.length ? set(Q + tab, JSON.stringify(q)) : del(Q + tab));

/** Appends events (skipping messageIds already queued); when over `maxQueue`, the oldest are dropped and counted. */
export function add(events: CairnEvent[]) {
  const q = read();
  const ids = new Set(q.map((e) => e.messageId));
  for (const e of events) {
    if (size(JSON.stringify(e)) > MAX_EVENT) log('event over 32 KB dropped', e);
    else ids.has(e.messageId) || q.push(e);
  }
  const over = q.length - cfg!.maxQueue;
  if (over > 0) {
    dropped += over;
    log('queue full, dropped', dropped, q.splice(0, over));
  }
  write(q);
}

export const clear = () => write([]);
/** This tab's keys, to take off the device when consent is withdrawn. */
export const own = () => [Q + tab, H + tab];

export function remove(ids: string[]) {
  write(read().filter((e) => !ids.includes(e.messageId)));
}

/** Rewrites every queued event (used when consent arrives for events that waited for it). */
export const update = (fn: (e: CairnEvent) => void) => {
  const q = read();
  q.forEach(fn);
  write(q);
};

/** Releases the lease so that the next page (or another tab) can take what is left, at once. */
export const release = () => del(H + tab);

export function startQueue(onReclaim: () => void) {
  tab = uuid().slice(0, 8);
  const tick = safe(() => {
    if (!persisting()) return;
    set(H + tab, String(now()));
    const run = () => reclaim() && onReclaim();
    navigator.locks ? navigator.locks.request('cairn_reclaim', run).catch(log) : run();
  });
  tick();
  setInterval(tick, BEAT);
  return tick;
}

/** Moves the queues of dead tabs into ours; also clears their stale heartbeats. */
function reclaim() {
  const ls = localStorage;
  const dead = new Set<string>();
  for (let i = 0; i < ls.length; i++) {
    const t = /^cairn_[qh]_(.+)/.exec(ls.key(i)!)?.[1];
    if (t && t !== tab && now() - +(ls.getItem(H + t) || 0) > TTL) dead.add(t);
  }
  for (const t of dead) {
    const items = json<CairnEvent[]>(ls.getItem(Q + t)) || [];
    log('reclaimed', items.length, 'events of tab', t);
    add(items);
    ls.removeItem(Q + t);
    ls.removeItem(H + t);
  }
  return dead.size;
}
