import type { z } from 'zod';
import { errorOutcome, isSystemic } from './errors.ts';
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

/** Options of {@link sendEach}. */
export interface SendEachOptions {
  /** `profile`: a profile's items go one after another, and after one ends `retry` the rest wait. */
  ordering?: 'profile' | 'none';
  /** Items in flight at once (of different profiles when ordered); default 1. */
  parallel?: number;
  /** Whether a thrown error stops the rest of the batch; default {@link isSystemic}. */
  systemic?: (error: unknown) => boolean;
}

/** The outcome an item not tried gets: the stopping failure's, its message prefixed with `not sent: `. */
const notSent = (o: Exclude<ItemOutcome, { status: 'delivered' }>): ItemOutcome => ({
  ...o,
  error: `not sent: ${o.error}`,
});

/** What a profile's later items get after one of its items ended `retry` (their turn comes on the next attempt). */
export const HELD_BACK = 'not sent: an earlier event of this profile failed';

/**
 * The per-item loop every plugin would otherwise copy: calls `sendOne` for each item and returns one
 * outcome per item, in order. A thrown error becomes the item's outcome ({@link errorOutcome}); a
 * systemic one ({@link isSystemic} unless `systemic` says otherwise: credentials, rate limit, receiver
 * down) stops the batch: items not yet started get that outcome as `not sent: …`. With `ordering:
 * 'profile'`, items are sent in lanes per profile (event order inside a lane, up to `parallel` lanes at
 * once), and after an item ends `retry` its profile's later items are held back ({@link HELD_BACK}), so
 * a receiver never sees a profile's events out of order. A plugin whose `send` needs a per-batch
 * resource (an SMTP connection) or a mode switch calls it itself.
 *
 * @example
 * async send(items, ctx) {
 *   const transport = open(ctx.settings);
 *   try { return await sendEach(items, ctx, (item) => mail(transport, item)); } finally { transport.close(); }
 * }
 */
export async function sendEach<S>(
  items: readonly DeliveryItem[],
  ctx: PluginContext<S>,
  // biome-ignore lint/suspicious/noConfusingVoidType: an async sendOne with no return statement returns Promise<void>
  sendOne: (item: DeliveryItem, ctx: PluginContext<S>) => Promise<ItemOutcome | undefined | void>,
  options: SendEachOptions = {},
): Promise<ItemOutcome[]> {
  const outcomes: ItemOutcome[] = new Array(items.length);
  const systemic = options.systemic ?? isSystemic;
  const ordered = options.ordering === 'profile';
  // Ordered: one lane per profile (events without a profile share one); otherwise every item is its own.
  const lanes = new Map<string, number[]>();
  items.forEach((item, i) => {
    const key = ordered ? (item.profile?.id ?? '') : String(i);
    const lane = lanes.get(key);
    if (lane) lane.push(i);
    else lanes.set(key, [i]);
  });
  const queue = [...lanes.values()];
  let stopped: Exclude<ItemOutcome, { status: 'delivered' }> | undefined;
  const runLane = async (lane: number[]) => {
    let held = false;
    for (const i of lane) {
      if (stopped) {
        outcomes[i] = notSent(stopped);
        continue;
      }
      if (held) {
        outcomes[i] = { status: 'retry', error: HELD_BACK };
        continue;
      }
      try {
        outcomes[i] = (await sendOne(items[i]!, ctx)) ?? { status: 'delivered' };
      } catch (err) {
        const outcome = errorOutcome(err);
        outcomes[i] = outcome;
        if (systemic(err)) stopped ??= outcome;
      }
      if (ordered && outcomes[i]!.status === 'retry') held = true;
    }
  };
  const parallel = Math.max(1, Math.floor(options.parallel ?? 1));
  const workers = Array.from({ length: Math.min(parallel, queue.length) }, async () => {
    for (let lane = queue.shift(); lane; lane = queue.shift()) await runLane(lane);
  });
  await Promise.all(workers);
  return outcomes;
}

/**
 * Calls a plugin for one batch and returns one outcome per item. The per-item form (`sendOne`) runs
 * through {@link sendEach} with the plugin's `ordering`, `parallel` and `systemic`; the batch form
 * (`send`) gives what it returned, or, when it threw, the thrown error's decision for every item
 * (`RetryableError` → retry, `PermanentError` → failed, anything else → retry: an unexpected error is
 * presumed transient until attempts run out). The server and the test harness both use this, so a
 * plugin behaves the same in both.
 *
 * @example
 * const outcomes = await sendBatch(plugin, items, ctx);
 */
export async function sendBatch<S extends z.ZodType>(
  plugin: Pick<PluginDefinition<S>, 'send' | 'sendOne' | 'name' | 'ordering' | 'parallel' | 'systemic'>,
  items: DeliveryItem[],
  ctx: PluginContext<z.infer<S>>,
): Promise<ItemOutcome[]> {
  if (!plugin.send) {
    if (!plugin.sendOne) return items.map(() => ({ status: 'failed', error: `plugin ${plugin.name} cannot send` }));
    const parallel = typeof plugin.parallel === 'function' ? plugin.parallel(ctx.settings) : plugin.parallel;
    // Called as methods, as `send` is: a definition may use `this`.
    const systemic = plugin.systemic && ((err: unknown) => plugin.systemic!(err));
    return sendEach(items, ctx, (item, c) => plugin.sendOne!(item, c), {
      ordering: plugin.ordering,
      parallel,
      ...(systemic ? { systemic } : {}),
    });
  }
  let returned: Array<ItemOutcome | undefined> | undefined;
  try {
    returned = await plugin.send(items, ctx);
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
