import { parseTimestamp } from './event.ts';

/** The event times after clock-skew correction, as epoch milliseconds. */
export interface CorrectedTime {
  /** When the event happened, on the server's clock. */
  timestamp: number;
  /** The device's own time for the event, when it sent one. */
  originalTimestamp?: number;
  /** How far the device clock was ahead of the server's (negative: behind), when measurable. */
  skewMs?: number;
}

/**
 * Corrects a device clock the way Segment and RudderStack do: the device says when the event
 * happened (`originalTimestamp`, or `timestamp`) and when it sent it (`sentAt`); the difference is
 * exact on the device's clock, so `timestamp = receivedAt - (sentAt - originalTimestamp)`.
 * Without `sentAt` the device time is taken as is; without any device time, `receivedAt`.
 *
 * @example
 * correctTime({ timestamp: '2026-01-01T00:00:00Z', sentAt: '2026-01-01T00:00:10Z' }, Date.parse('2026-01-01T01:00:10Z'));
 * // { timestamp: Date.parse('2026-01-01T01:00:00Z'), originalTimestamp: ..., skewMs: -3600000 }
 */
export function correctTime(
  e: { timestamp?: string; originalTimestamp?: string; sentAt?: string },
  receivedAt: number,
  batchSentAt?: string,
): CorrectedTime {
  const device = e.originalTimestamp ?? e.timestamp;
  if (device === undefined) return { timestamp: receivedAt };
  const original = parseTimestamp(device);
  const sentAtText = e.sentAt ?? batchSentAt;
  const sentAt = sentAtText === undefined ? Number.NaN : parseTimestamp(sentAtText);
  if (Number.isNaN(sentAt)) return { timestamp: original, originalTimestamp: original };
  return { timestamp: receivedAt - (sentAt - original), originalTimestamp: original, skewMs: sentAt - receivedAt };
}
