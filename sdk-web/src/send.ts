// Delivery: batches to `${host}/v1/batch` as text/plain (no CORS preflight) with the write key in the body.
// Events leave the queue only on a final answer: 2xx, or a 4xx other than 408/429 (retrying cannot help).
// Everything else is retried with exponential backoff and jitter, or after Retry-After; the messageId never
// changes, so the server's dedup makes every resend harmless.
import { add, read, release, remove, size } from './queue.ts';
import { cfg, iso, log, now, pending } from './state.ts';
import type { CairnEvent } from './types.ts';

// keepalive requests and beacons share a 64 KB budget per page; leave room for the envelope.
const CHUNK = 6e4;

let busy: string[] | 0 = 0;
let timer: ReturnType<typeof setTimeout> | 0 = 0;
let attempt = 0;
let retryAt = 0;
let due = 0;
/**
 * What this page beaconed on pagehide. Leaving fires pagehide and then visibilitychange (whose flush would
 * send them again); they stay queued for the next page, or for this one if it returns from the bfcache.
 */
let beaconed: string[] = [];
export const resume = () => (beaconed = []);

const url = () => `${cfg!.host}/v1/batch`;
const body = (batch: CairnEvent[]) => JSON.stringify({ batch, sentAt: iso(), writeKey: cfg!.writeKey });
const ids = (batch: CairnEvent[]) => batch.map((e) => e.messageId);

/** Schedules a flush; the earliest request wins (a retry must not wait behind a long flushInterval). */
function later(ms: number) {
  if (timer && now() + ms >= due) return;
  clearTimeout(timer);
  due = now() + ms;
  timer = setTimeout(() => {
    timer = 0;
    flush();
  }, ms);
}

/** Splits the queue into request-sized chunks, oldest first. */
function chunks(q: CairnEvent[]) {
  const out: CairnEvent[][] = [];
  let cur: CairnEvent[] = [];
  let n = 0;
  for (const e of q) {
    const s = size(JSON.stringify(e)) + 1;
    if (cur.length && n + s > CHUNK) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(e);
    n += s;
  }
  cur.length && out.push(cur);
  return out;
}

export function enqueue(e: CairnEvent) {
  add([e]);
  read().length >= cfg!.flushAt ? flush() : later(cfg!.flushInterval);
}

/** Sends the oldest chunk, then the next, until the queue is empty or the server asks us to wait. */
export function flush() {
  send().catch(log);
}

async function send() {
  if (busy || pending()) return;
  const wait = retryAt - now();
  if (wait > 0) return later(wait);
  const batch = chunks(read().filter((e) => !beaconed.includes(e.messageId)))[0];
  if (!batch) return;
  busy = ids(batch);
  let status = 0;
  let after: string | null = null;
  try {
    // The timeout keeps a server that never answers from holding the queue forever.
    const res = await fetch(url(), {
      method: 'POST',
      body: body(batch),
      keepalive: true,
      signal: AbortSignal.timeout?.(3e4),
    });
    status = res.status;
    after = res.headers.get('Retry-After');
  } catch {}
  const sent = busy;
  busy = 0;
  if (status && status < 500 && status !== 408 && status !== 429) {
    if (status > 299) log('rejected, not retried:', status, batch);
    remove(sent);
    attempt = retryAt = 0;
  } else {
    const s = +after! * 1e3 || Date.parse(after!) - now();
    retryAt = now() + (s > 0 ? s : Math.min(6e4, 500 * 2 ** attempt++) * (0.5 + Math.random() / 2));
    log('delivery failed:', status || 'network', 'retry at', new Date(retryAt));
  }
  read().length && flush();
}

/**
 * Last chance before the page goes away: beacons outlive the page, but nobody learns whether they arrived.
 * So what was beaconed (or is in flight with keepalive) stays queued: the next page or another tab sends it
 * again under the same messageIds and the server stores it once. At-least-once, never lost to a server that
 * went down a moment before the visitor left.
 */
export function unload() {
  if (!cfg || pending()) return;
  const skip = [...(busy || []), ...beaconed];
  for (const c of chunks(read().filter((e) => !skip.includes(e.messageId))))
    navigator.sendBeacon(url(), body(c)) && beaconed.push(...ids(c));
  release();
}
