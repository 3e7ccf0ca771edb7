import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { createPluginFetch, sendBatch } from './run.ts';
import type {
  Channel,
  DeliveredEvent,
  DeliveryItem,
  DeliveryProfile,
  ItemOutcome,
  PluginDefinition,
  PluginKv,
} from './types.ts';

/** Options of {@link runPlugin}. */
export interface RunOptions {
  /** The profile every event belongs to (default: none). */
  profile?: DeliveryProfile | null;
  /** One profile per event, in order (overrides `profile`): a batch mixing people, as the server sends it. */
  profiles?: ReadonlyArray<DeliveryProfile | null>;
  /** A kv store to share between runs (default: a fresh in-memory one). */
  kv?: Map<string, unknown>;
  /** Builds unsubscribe URLs (default: `http://localhost/u/test-<profile>-<channel>[-<topic>]`). */
  unsubscribeUrl?: (profile: DeliveryProfile, channel: Channel, topic?: string) => string;
  now?: () => Date;
  destination?: { id: string; name: string };
}

/** What {@link runPlugin} observed. */
export interface RunResult {
  /** One per event, in order. */
  outcomes: ItemOutcome[];
  logs: { level: 'info' | 'warn' | 'error'; message: string; data?: Record<string, unknown> }[];
  kv: Map<string, unknown>;
  /** The items as the plugin received them. */
  items: DeliveryItem[];
}

/** The outcome {@link runPlugin} gives an ordered plugin's item held behind its profile's failure in an earlier batch. */
export const WAITING = 'not sent: waiting behind an earlier event of this profile';

/** Thrown by {@link runPlugin} when the settings do not pass the plugin's schema. */
export class PluginSettingsError extends Error {}

/**
 * Runs a plugin locally the way Cairn runs it: validates the settings with the plugin's schema,
 * completes the events (messageId, timestamp), gives each its profile (`profile`, or `profiles` one per
 * event), batches them by the plugin's `batchSize` (an ordered plugin's profile that must be retried
 * sends nothing in later batches, as on the server), gives it a
 * real `fetch` with timeouts, a logger and an in-memory kv, and maps thrown errors to outcomes exactly
 * as the server does. For plugin authors' own tests.
 *
 * @example
 * const { outcomes } = await runPlugin(plugin, { url: receiver.url }, [{ type: 'track', event: 'Signed Up' }]);
 * expect(outcomes).toEqual([{ status: 'delivered' }]);
 */
export async function runPlugin<S extends z.ZodType>(
  plugin: Readonly<PluginDefinition<S>>,
  settings: unknown,
  events: ReadonlyArray<Partial<DeliveredEvent>>,
  options: RunOptions = {},
): Promise<RunResult> {
  const parsed = plugin.settings.safeParse(settings);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'settings'}: ${i.message}`);
    throw new PluginSettingsError(`invalid settings for ${plugin.name}: ${issues.join('; ')}`);
  }
  const destination = options.destination ?? { id: 'test', name: `${plugin.name} (test)` };
  const kv = options.kv ?? new Map<string, unknown>();
  const logs: RunResult['logs'] = [];
  const log = (level: 'info' | 'warn' | 'error') => (message: string, data?: Record<string, unknown>) =>
    logs.push({ level, message, ...(data ? { data } : {}) });
  const store: PluginKv = {
    get: async (key) => kv.get(key),
    set: async (key, value) => void kv.set(key, value),
    delete: async (key) => void kv.delete(key),
  };
  const now = options.now ?? (() => new Date());
  if (options.profiles && options.profiles.length !== events.length) {
    throw new RangeError(`runPlugin: ${options.profiles.length} profiles for ${events.length} events`);
  }
  const items: DeliveryItem[] = events.map((e, i) => {
    const event = { type: 'track', messageId: randomUUID(), timestamp: now().toISOString(), ...e } as DeliveredEvent;
    return {
      idempotencyKey: `${event.messageId}:${destination.id}`,
      event,
      profile: (options.profiles ? options.profiles[i] : options.profile) ?? null,
      attempt: 1,
    };
  });
  const controller = new AbortController();
  const ctx = {
    settings: parsed.data as z.infer<S>,
    destination,
    fetch: createPluginFetch(controller.signal),
    log: { info: log('info'), warn: log('warn'), error: log('error') },
    kv: store,
    unsubscribeUrl:
      options.unsubscribeUrl ??
      ((p: DeliveryProfile, channel: Channel, topic?: string) =>
        `http://localhost/u/test-${p.id}-${channel}${topic ? `-${topic}` : ''}`),
    now,
    signal: controller.signal,
  };
  const outcomes: ItemOutcome[] = new Array(items.length);
  const size = plugin.batchSize ?? 1;
  // As the server does for ordered plugins: a profile whose item ended `retry` in one batch sends
  // nothing more in later ones (its line waits for the next attempt).
  const held = new Set<string>();
  const ordered = plugin.ordering === 'profile';
  for (let start = 0; start < items.length; start += size) {
    const positions = items.slice(start, start + size).map((_, n) => start + n);
    const waiting = (i: number) => ordered && held.has(items[i]!.profile?.id ?? '');
    for (const i of positions.filter(waiting)) outcomes[i] = { status: 'retry', error: WAITING };
    const batch = positions.filter((i) => !waiting(i));
    if (!batch.length) continue;
    const results = await sendBatch(
      plugin,
      batch.map((i) => items[i]!),
      ctx,
    );
    results.forEach((o, n) => {
      const i = batch[n]!;
      outcomes[i] = o;
      if (o.status === 'retry' && items[i]!.profile) held.add(items[i]!.profile!.id);
    });
  }
  return { outcomes, logs, kv, items };
}
