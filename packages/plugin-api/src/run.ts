import { PermanentError, RetryableError } from './errors.ts';
import type { DeliveryItem, ItemOutcome, PluginContext, PluginDefinition, PluginFetch } from './types.ts';

/** Default time one HTTP call of a plugin may take. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/**
 * A `fetch` that aborts after `timeoutMs` (per call, default 10 s) or when `signal` aborts.
 *
 * @example
 * const fetch = createPluginFetch(controller.signal);
 * await fetch(url, { method: 'POST', body, timeoutMs: 2000 });
 */
export function createPluginFetch(signal: AbortSignal, defaultTimeoutMs = DEFAULT_FETCH_TIMEOUT_MS): PluginFetch {
  return async function pluginFetch(input, init = {}) {
    const { timeoutMs = defaultTimeoutMs, signal: own, ...rest } = init;
    const signals = [signal, AbortSignal.timeout(timeoutMs), ...(own ? [own] : [])];
    try {
      return await fetch(input, { ...rest, signal: AbortSignal.any(signals) });
    } catch (err) {
      // Network errors and timeouts are worth retrying; say which.
      const reason =
        (err as Error)?.name === 'TimeoutError'
          ? `timed out after ${timeoutMs} ms`
          : String((err as Error)?.message ?? err);
      const cause = (err as { cause?: { code?: string } })?.cause?.code;
      throw new RetryableError(`request failed: ${reason}${cause ? ` (${cause})` : ''}`, { cause: err });
    }
  };
}

function describe(err: unknown): string {
  return String((err as Error)?.message ?? err).slice(0, 1000);
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
    if (err instanceof PermanentError) return items.map(() => ({ status: 'failed', error: describe(err) }));
    const retryAfter = err instanceof RetryableError ? err.retryAfter : undefined;
    return items.map(() => ({
      status: 'retry',
      error: describe(err),
      ...(retryAfter !== undefined ? { retryAfter } : {}),
    }));
  }
  if (returned !== undefined && (!Array.isArray(returned) || returned.length !== items.length)) {
    const error = `plugin ${plugin.name} returned ${Array.isArray(returned) ? returned.length : typeof returned} results for ${items.length} items`;
    return items.map(() => ({ status: 'failed', error }));
  }
  return items.map((_, i) => returned?.[i] ?? { status: 'delivered' });
}
