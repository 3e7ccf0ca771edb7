/**
 * Hard limits of the tracking API. They match Segment's documented limits so that existing
 * Segment and RudderStack clients (which already chunk below them) just work.
 *
 * @example
 * if (body.byteLength > LIMITS.maxRequestBytes) reject(413);
 */
export const LIMITS = Object.freeze({
  /** Serialized size of one event, before server-side enrichment. */
  maxEventBytes: 32 * 1024,
  /** Size of one request body after decompression. */
  maxRequestBytes: 500 * 1024,
  /** Events in one `/v1/batch` request. */
  maxBatchEvents: 2500,
  /** Nesting of objects and arrays inside one event (a JSON "nesting bomb" guard). */
  maxDepth: 32,
  /** Length of ids (messageId, userId, anonymousId, groupId, previousId). */
  maxIdLength: 255,
  /** Length of an event, page or screen name. */
  maxNameLength: 255,
});

/** The six Segment event types. */
export const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;

/** One of the six Segment event types. */
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * Whether a string names an event type.
 *
 * @example
 * isEventType('track'); // true
 */
export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}
