import { randomUUID } from 'node:crypto';
import pkg from '../package.json' with { type: 'json' };
import { MAX_EVENT_BYTES } from './options.ts';
import type { CairnMessage, MessageType } from './types.ts';

/** Reported as `context.library` on every message. Timestamps are normalised to ISO-8601 UTC. */
export const LIBRARY = Object.freeze({ name: '@cairn/node', version: pkg.version });

/** A message ready to queue: serialised once, so later mutation of the caller's objects cannot change what is sent. */
export interface PreparedMessage {
  message: CairnMessage;
  json: string;
  bytes: number;
}

export type Prepared =
  | { ok: true; value: PreparedMessage }
  | { ok: false; code: 'invalid_message' | 'event_too_large'; reason: string; message: CairnMessage };

const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';

/** What each type needs beyond an identity; the server checks too, but one bad event must not sink a whole batch. */
const required: Record<MessageType, (m: CairnMessage) => string | undefined> = {
  identify: () => undefined,
  track: (m) => (typeof m.event === 'string' && m.event !== '' ? undefined : 'track needs a non-empty `event`'),
  page: () => undefined,
  screen: () => undefined,
  group: (m) => (present(m.groupId) ? undefined : 'group needs a `groupId`'),
  alias: (m) => (present(m.previousId) ? undefined : 'alias needs a `previousId`'),
};

function isoTimestamp(value: unknown): string {
  if (value === undefined || value === null) return new Date().toISOString();
  const date = value instanceof Date ? value : new Date(String(value));
  // Unparseable values are kept as given so the error report shows them; problemOf() then rejects the message.
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString();
}

function problemOf(m: CairnMessage): string | undefined {
  if (m.type === 'alias' ? !present(m.userId) : !present(m.userId) && !present(m.anonymousId)) {
    return m.type === 'alias' ? 'alias needs a `userId`' : `${m.type} needs a \`userId\` or an \`anonymousId\``;
  }
  if (Number.isNaN(Date.parse(m.timestamp))) return `timestamp is not a date: ${JSON.stringify(m.timestamp)}`;
  return required[m.type](m);
}

/**
 * Builds the wire message (messageId once, ISO timestamp, `context.library`), validates it and serialises it.
 * Never throws: problems come back as `{ ok: false }` for the caller to report.
 */
export function prepareMessage(type: MessageType, params: unknown): Prepared {
  // Plain JavaScript callers can pass anything; treat a non-object as an empty message so it is reported, not thrown.
  const input = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
  const context = typeof input.context === 'object' && input.context !== null ? input.context : {};
  const message: CairnMessage = {
    ...input,
    type,
    messageId: typeof input.messageId === 'string' && input.messageId !== '' ? input.messageId : randomUUID(),
    timestamp: isoTimestamp(input.timestamp),
    context: { ...context, library: { ...LIBRARY } },
  };
  const problem = problemOf(message);
  if (problem) return { ok: false, code: 'invalid_message', reason: problem, message };
  let json: string;
  try {
    json = JSON.stringify(message);
  } catch (error) {
    return { ok: false, code: 'invalid_message', reason: `not serialisable to JSON: ${String(error)}`, message };
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_EVENT_BYTES) {
    return { ok: false, code: 'event_too_large', reason: `${bytes} bytes, limit ${MAX_EVENT_BYTES}`, message };
  }
  return { ok: true, value: { message, json, bytes } };
}
