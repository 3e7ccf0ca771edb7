/**
 * Who a message is about: a known `userId`, an `anonymousId`, or both.
 *
 * @example
 * const who: Identity = { userId: 'user_42' };
 */
export type Identity = { userId: string; anonymousId?: string } | { userId?: string; anonymousId: string };

/**
 * Fields every call accepts. `timestamp` is when the thing happened (defaults to now); `messageId` defaults to a
 * fresh UUID and is the server's deduplication key, so pass your own only if it is unique per event.
 *
 * @example
 * const common: CommonFields = { timestamp: new Date('2025-01-01T10:00:00Z'), context: { ip: '203.0.113.7' } };
 */
export interface CommonFields {
  context?: Record<string, unknown>;
  integrations?: Record<string, unknown>;
  timestamp?: Date | string;
  messageId?: string;
}

/**
 * Arguments of {@link Cairn.identify}.
 *
 * @example
 * const p: IdentifyParams = { userId: 'user_42', traits: { email: 'ada@example.com', plan: 'pro' } };
 */
export type IdentifyParams = Identity & CommonFields & { traits?: Record<string, unknown> };

/**
 * Arguments of {@link Cairn.track}.
 *
 * @example
 * const p: TrackParams = { userId: 'user_42', event: 'Order Completed', properties: { total: 42.5 } };
 */
export type TrackParams = Identity & CommonFields & { event: string; properties?: Record<string, unknown> };

/**
 * Arguments of {@link Cairn.page} and {@link Cairn.screen}.
 *
 * @example
 * const p: PageParams = { anonymousId: 'anon_1', name: 'Pricing', properties: { url: 'https://example.com/pricing' } };
 */
export type PageParams = Identity &
  CommonFields & { name?: string; category?: string; properties?: Record<string, unknown> };

/**
 * Arguments of {@link Cairn.group}.
 *
 * @example
 * const p: GroupParams = { userId: 'user_42', groupId: 'acme', traits: { name: 'Acme Inc.' } };
 */
export type GroupParams = Identity & CommonFields & { groupId: string; traits?: Record<string, unknown> };

/**
 * Arguments of {@link Cairn.alias}: `previousId` (e.g. an anonymous or old id) becomes the same person as `userId`.
 *
 * @example
 * const p: AliasParams = { previousId: 'anon_1', userId: 'user_42' };
 */
export type AliasParams = CommonFields & { userId: string; previousId: string; anonymousId?: string };

/**
 * The message types of the Segment-compatible tracking spec.
 *
 * @example
 * const t: MessageType = 'track';
 */
export type MessageType = 'identify' | 'track' | 'page' | 'screen' | 'group' | 'alias';

/**
 * A message as it goes on the wire: the caller's fields plus `type`, `messageId`, an ISO `timestamp` and
 * `context.library`.
 *
 * @example
 * cairn.on('sent', ({ messages }) => console.log(messages.map((m: CairnMessage) => m.messageId)));
 */
export interface CairnMessage {
  type: MessageType;
  messageId: string;
  timestamp: string;
  context: Record<string, unknown> & { library: { name: string; version: string } };
  [field: string]: unknown;
}
