import type { CairnMessage } from './types.ts';

/**
 * Why messages did not reach the server:
 * - `invalid_message`: a required field is missing (e.g. `event`, or both `userId` and `anonymousId`), the timestamp
 *   is not a date, or the message cannot be serialised to JSON. Never queued.
 * - `event_too_large`: the serialised message exceeds 32 KB. Never queued, never sent.
 * - `queue_full`: `maxQueueSize` messages are already waiting; the new message was dropped (drop-newest policy).
 * - `closed`: the call came after `close()`.
 * - `delivery_failed`: the server answered a final 4xx, or retries ran out on network errors / 408 / 429 / 5xx.
 *
 * @example
 * const code: CairnErrorCode = 'queue_full';
 */
export type CairnErrorCode = 'invalid_message' | 'event_too_large' | 'queue_full' | 'closed' | 'delivery_failed';

/**
 * Details attached to a {@link CairnError}.
 *
 * @example
 * const details: CairnErrorDetails = { messages: [], status: 400, attempts: 1 };
 */
export interface CairnErrorDetails {
  /** The messages that were not delivered, so a caller can log or persist them. */
  messages: CairnMessage[];
  /** HTTP status of the last response, when there was one. */
  status?: number;
  /** How many HTTP attempts were made (delivery failures only). */
  attempts?: number;
  /** The server's `{ code, message, details }` error body, when it sent one. */
  serverError?: unknown;
  cause?: unknown;
}

/**
 * The one error type of `@cairn/node`. It is never thrown at the caller: it reaches `on('error')` listeners and the
 * `onError` option.
 *
 * @example
 * cairn.on('error', (err: CairnError) => {
 *   if (err.code === 'delivery_failed') saveForLater(err.messages);
 *   logger.warn({ code: err.code, status: err.status }, err.message);
 * });
 */
export class CairnError extends Error {
  override readonly name = 'CairnError';
  readonly code: CairnErrorCode;
  readonly messages: CairnMessage[];
  readonly status: number | undefined;
  readonly attempts: number | undefined;
  readonly serverError: unknown;

  constructor(code: CairnErrorCode, message: string, details: CairnErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.messages = details.messages;
    this.status = details.status;
    this.attempts = details.attempts;
    this.serverError = details.serverError;
  }
}
