import { errorOutcome } from './errors.ts';
import { pluginHttp } from './http.ts';
import type { DeliveryItem, ItemOutcome, PluginContext, PluginDefinition, PluginFetch } from './types.ts';

/** Default time one HTTP call of a plugin may take. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/**
 * A `fetch` that aborts after `timeoutMs` (per call, default 10 s) or when `signal` aborts, on the
 * shared keep-alive HTTP client of `http.ts`; every failure to get a response is a `RetryableError`.
 *
 * @example
 * const fetch = createPluginFetch(controller.signal);
 * await fetch(url, { method: 'POST', body, timeoutMs: 2000 });
 */
export function createPluginFetch(signal: AbortSignal, defaultTimeoutMs = DEFAULT_FETCH_TIMEOUT_MS): PluginFetch {
  return function pluginFetch(input, init = {}) {
    return pluginHttp(input, init, { signal, timeoutMs: init.timeoutMs ?? defaultTimeoutMs });
  };
}

/**
 * Calls a plugin's `send` for one batch and returns one outcome per item: what it returned, or, when
 * it threw, the thrown error's decision for every item (`RetryableError` → retry, `PermanentError` →
 * failed, anything else → retry: an unexpected error is presumed transient until attempts run out).
 * The server and the test harness both use this, so a plugin behaves the same in both.
 *
 * @example
 * const outcomes = await sendBatch(plugin, items, ctx);
 */
export async function sendBatch<S>(
  plugin: Pick<PluginDefinition, 'send' | 'name'>,
  items: DeliveryItem[],
  ctx: PluginContext<S>,
): Promise<ItemOutcome[]> {
  let returned: Array<ItemOutcome | undefined> | undefined;
  try {
    returned = await plugin.send(items, ctx as PluginContext<unknown>);
  } catch (err) {
    const outcome = errorOutcome(err);
    return items.map(() => ({ ...outcome }));
  }
  if (returned !== undefined && (!Array.isArray(returned) || returned.length !== items.length)) {
    const error = `plugin ${plugin.name} returned ${Array.isArray(returned) ? returned.length : typeof returned} results for ${items.length} items`;
    return items.map(() => ({ status: 'failed', error }));
  }
  return items.map((_, i) => returned?.[i] ?? { status: 'delivered' });
}
