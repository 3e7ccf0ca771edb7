import { type DeliveredEvent, type ItemOutcome, type PluginDefinition, sendBatch } from '@cairn/plugin-api';
import { destinationQueue, ensureQueue } from '../../jobs/queues.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { resetForReplay } from './ledger.ts';
import { isOrdered, promoteProfiles } from './order.ts';
import { type Destination, getDestination } from './queries/destinations.ts';
import { pluginContext, type SenderDeps, scrub, secretValues } from './sender.ts';

/** What staff can ask of stage 5 (the admin API calls these; it never reaches into the ledger itself). */
export interface DeliverCommands {
  /** Creates the destination's own queue if missing (before its first job). */
  prepareQueue(destinationId: string): Promise<void>;
  /** Sends one sample event now, outside the queue and the ledger, and says what the plugin answered. */
  testSend(
    destination: Destination,
    plugin: Readonly<PluginDefinition>,
    event?: Record<string, unknown>,
  ): Promise<{ outcome: ItemOutcome; idempotencyKey: string }>;
  /**
   * Sends a notice that is no person's (an alert, a report) now through a destination's plugin, outside
   * the queue and the ledger, as a `track` event of `notice.event` with `notice.properties`; the profile
   * the plugin sees is the system's, with `recipient` as its address (email and SMS plugins send there).
   * Says what the plugin answered; 'failed' when the destination is gone or its plugin is not installed.
   */
  sendNotice(
    destinationId: string,
    notice: { event: string; messageId: string; properties: Record<string, unknown>; recipient?: string | null },
  ): Promise<ItemOutcome>;
  /** Queues again the dead letters (no range) or every delivery of events received in `range`; returns how many. */
  replay(
    destination: Destination,
    plugin: Readonly<PluginDefinition>,
    range: { from: Date; to: Date } | null,
  ): Promise<number>;
}

/**
 * The commands of stage 5, over the sender's dependencies.
 *
 * @example
 * const commands = deliverCommands(sender);
 * await commands.replay(destination, plugin, null); // dead letters
 */
export function deliverCommands(deps: SenderDeps): DeliverCommands {
  const { sql, boss } = deps;
  const prepareQueue = (id: string) =>
    ensureQueue(
      boss,
      destinationQueue(id, {
        retryDelay: deps.delivery.retryDelaySeconds,
        retryDelayMax: deps.delivery.retryMaxSeconds,
      }),
    );
  return {
    prepareQueue,
    async testSend(destination, plugin, overrides) {
      const settings = plugin.settings.parse(destination.settings);
      const event = {
        type: 'track',
        event: 'Cairn Test Event',
        messageId: `test-${Date.now()}`,
        timestamp: new Date().toISOString(),
        userId: 'cairn-test-user',
        properties: { test: true },
        ...overrides,
      } as DeliveredEvent;
      const profile = {
        id: '00000000-0000-4000-8000-000000000000',
        userId: 'cairn-test-user',
        email: 'test@example.com',
        phone: null,
        anonymousIds: [],
        traits: { name: 'Test User' },
      };
      const idempotencyKey = `${event.messageId}:${destination.id}`;
      const [outcome] = await sendBatch(
        plugin,
        [{ idempotencyKey, event, profile, attempt: 1 }],
        pluginContext(deps, destination, settings),
      );
      // What the receiver answered goes back to the caller's browser: masked as the ledger masks it.
      return { outcome: scrubbed(outcome!, secretValues(plugin, settings)), idempotencyKey };
    },
    async sendNotice(destinationId, notice) {
      const destination = await getDestination(sql, destinationId);
      const plugin = destination ? deps.plugins.get(destination.plugin) : undefined;
      if (!destination || !plugin)
        return { status: 'failed', error: `destination ${destinationId} is missing or its plugin is not installed` };
      const event = {
        type: 'track',
        event: notice.event,
        messageId: notice.messageId,
        timestamp: new Date().toISOString(),
        userId: 'cairn',
        properties: notice.properties,
      } as DeliveredEvent;
      const recipient = notice.recipient ?? null;
      const profile = {
        id: '00000000-0000-4000-8000-000000000000',
        userId: 'cairn',
        email: recipient?.includes('@') ? recipient : null,
        phone: recipient && !recipient.includes('@') ? recipient : null,
        anonymousIds: [],
        traits: {},
      };
      const [outcome] = await sendBatch(
        plugin,
        [{ idempotencyKey: `${notice.messageId}:${destination.id}`, event, profile, attempt: 1 }],
        pluginContext(deps, destination, plugin.settings.parse(destination.settings)),
      );
      return scrubbed(outcome!, secretValues(plugin, destination.settings));
    },
    async replay(destination, plugin, range) {
      await prepareQueue(destination.id);
      const a = { destination, plugin };
      // Ordered destinations: the rows are reset to `waiting`, then each profile's go (in event order)
      // once nothing of that profile is pending or retrying there (order.ts). A crash in between
      // leaves them waiting for the sweep.
      const rows = (await sql.begin(async (tx) => {
        const reset = await resetForReplay(tx, destination.id, range ?? { status: 'dead' }, isOrdered(a));
        await enqueueDeliveries(
          boss,
          tx,
          [a],
          reset.filter((r) => r.status === 'pending').map((r) => ({ ...r, destinationId: destination.id })),
        );
        return reset;
      })) as Awaited<ReturnType<typeof resetForReplay>>;
      const waiting = rows.filter((r) => r.status === 'waiting' && r.profileId).map((r) => r.profileId!);
      await promoteProfiles(boss, sql, a, waiting);
      return rows.length;
    },
  };
}

// An outcome whose error text cannot carry a destination's secret (a receiver may echo what it was sent).
function scrubbed(o: ItemOutcome, secrets: readonly string[]): ItemOutcome {
  return o.status === 'delivered' ? o : { ...o, error: scrub(o.error, secrets) };
}
