import { type EventType, isEventType, LIMITS } from './limits.ts';
import { childPath, scanJson } from './scan.ts';

/** A JSON object as events carry them (properties, traits, context, integrations). */
export type JsonObject = Record<string, unknown>;

/**
 * A tracking event after validation, in Segment's field names. Ids are strings (numeric ids sent
 * by some clients are converted); unknown top-level fields are kept as they came.
 */
export interface TrackingEvent {
  type: EventType;
  messageId?: string;
  userId?: string;
  anonymousId?: string;
  event?: string;
  name?: string;
  category?: string;
  groupId?: string;
  previousId?: string;
  properties?: JsonObject;
  traits?: JsonObject;
  context?: JsonObject;
  integrations?: JsonObject;
  timestamp?: string;
  originalTimestamp?: string;
  sentAt?: string;
  receivedAt?: string;
  [extra: string]: unknown;
}

/** One reason an event was refused, with the path of the offending field. */
export interface Issue {
  path: string;
  message: string;
}

/** The outcome of {@link validateEvent}. */
export type Validation = { ok: true; event: TrackingEvent } | { ok: false; issue: Issue };

// Date and time are required; seconds, fractions and the offset are optional. An offset-less time is
// read as UTC (see parseTimestamp), never as the server's local time.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Parses an ISO-8601 date-time into epoch milliseconds, or returns NaN. A missing offset means UTC.
 *
 * @example
 * parseTimestamp('2026-01-02T03:04:05Z'); // 1767323045000
 */
export function parseTimestamp(value: string): number {
  if (!ISO_8601.test(value)) return Number.NaN;
  const hasOffset = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(value.slice(10));
  return Date.parse(hasOffset ? value : `${value}Z`);
}

const OBJECT_FIELDS = ['properties', 'traits', 'context', 'integrations'] as const;
const TIME_FIELDS = ['timestamp', 'originalTimestamp', 'sentAt'] as const;
const ID_FIELDS = ['messageId', 'userId', 'anonymousId', 'groupId', 'previousId'] as const;
const NAME_FIELDS = ['event', 'name', 'category'] as const;

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, field: string, message: string): Validation {
  return { ok: false, issue: { path: childPath(path, field), message } };
}

/** Normalises an id field: strings are trimmed of nothing (ids are opaque), numbers become strings. */
function readId(v: unknown): string | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

/**
 * Validates one tracking event against the Segment spec and Cairn's storage rules. `impliedType`
 * is the type given by a single-event route (`/v1/track` implies `track`). The first problem found
 * is reported with a precise path, e.g. `batch[3].timestamp: not an ISO-8601 date`.
 *
 * @example
 * const r = validateEvent({ type: 'track', event: 'Signed Up', userId: 'u1' }, 'batch[0]');
 * if (!r.ok) console.log(`${r.issue.path}: ${r.issue.message}`);
 */
export function validateEvent(input: unknown, path: string, impliedType?: EventType): Validation {
  if (!isPlainObject(input)) return { ok: false, issue: { path: path || 'body', message: 'must be a JSON object' } };
  const type = input.type ?? impliedType;
  if (!isEventType(type)) {
    return fail(path, 'type', 'must be one of track, identify, page, screen, group, alias');
  }
  if (impliedType && type !== impliedType) return fail(path, 'type', `must be "${impliedType}" on this endpoint`);

  const event: TrackingEvent = { ...input, type };
  for (const field of ID_FIELDS) {
    const id = readId(input[field]);
    if (id === null) return fail(path, field, 'must be a string or a number');
    if (id !== undefined && id.length > LIMITS.maxIdLength) {
      return fail(path, field, `longer than ${LIMITS.maxIdLength} characters`);
    }
    if (id === undefined) delete event[field];
    else event[field] = id;
  }
  if (!event.userId && !event.anonymousId) {
    return { ok: false, issue: { path: path || 'body', message: 'needs a userId or an anonymousId' } };
  }
  for (const field of NAME_FIELDS) {
    const v = input[field];
    if (v === undefined || v === null) {
      delete event[field];
      continue;
    }
    if (typeof v !== 'string') return fail(path, field, 'must be a string');
    if (v.length > LIMITS.maxNameLength) return fail(path, field, `longer than ${LIMITS.maxNameLength} characters`);
  }
  for (const field of OBJECT_FIELDS) {
    const v = input[field];
    if (v === undefined || v === null) delete event[field];
    else if (!isPlainObject(v)) return fail(path, field, 'must be a JSON object');
  }
  for (const field of TIME_FIELDS) {
    const v = input[field];
    if (v === undefined || v === null) {
      delete event[field];
      continue;
    }
    if (typeof v !== 'string' || Number.isNaN(parseTimestamp(v))) return fail(path, field, 'not an ISO-8601 date');
  }
  const required = requiredFor(type, event);
  if (required) return fail(path, required, 'is required');
  const problem = scanJson(event, path);
  if (problem) return { ok: false, issue: problem };
  return { ok: true, event };
}

function requiredFor(type: EventType, e: TrackingEvent): string | null {
  if (type === 'track' && !e.event) return 'event';
  if (type === 'group' && !e.groupId) return 'groupId';
  if (type === 'alias' && !e.previousId) return 'previousId';
  if (type === 'alias' && !e.userId) return 'userId';
  return null;
}
