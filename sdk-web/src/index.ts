// The IIFE entry (dist/cairn.min.js). Options come from the script tag's data-* attributes, under any
// cairn.init({...}) queued by the copy-paste stub; the stub's other queued calls are replayed in order.
import { api, call } from './client.ts';
import { defaults, setBase } from './state.ts';
import type { Options } from './types.ts';

const w = window as unknown as { cairn?: unknown[][] | typeof api };
const stub = w.cairn;

// Loaded twice: the first copy stays in charge.
if (!stub || Array.isArray(stub)) {
  w.cairn = api;
  try {
    const s = document.currentScript as HTMLScriptElement | null;
    const o: Record<string, unknown> = {};
    if (s?.src) o.host = new URL(s.src).origin;
    for (const k in s?.dataset) {
      const v = s.dataset[k]!;
      o[k] = typeof defaults[k as keyof typeof defaults] === 'number' ? +v : v === 'true' || (v !== 'false' && v);
    }
    setBase(o);
    const calls = stub || [];
    const init = calls.find((c) => c[0] === 'init');
    if (o.writeKey || init) api.init((init?.[1] || {}) as Options);
    for (const [m, ...a] of calls) if (m !== 'init') call(api, m as string, a);
  } catch {}
}
