import { z } from 'zod';
import { EVENT_TYPES, type EventType, LIMITS } from './limits.ts';
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

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Absent, null and '' ids all mean "not given"; numbers (sent by some clients) become strings.
const id = z
  .union([z.string(), z.number()], { error: 'must be a string or a number' })
  .nullish()
  .transform((v) => (v === null || v === undefined || v === '' ? undefined : String(v)))
  .pipe(
    z
      .string()
      .max(LIMITS.maxIdLength, { error: `longer than ${LIMITS.maxIdLength} characters` })
      .optional(),
  );
const name = z
  .string({ error: 'must be a string' })
  .max(LIMITS.maxNameLength, { error: `longer than ${LIMITS.maxNameLength} characters` })
  .nullish()
  .transform((v) => v ?? undefined);
const object = z
  .custom<JsonObject>(isPlainObject, { error: 'must be a JSON object' })
  .nullish()
  .transform((v) => v ?? undefined);
const time = z
  .string({ error: 'not an ISO-8601 date' })
  .refine((v) => !Number.isNaN(parseTimestamp(v)), { error: 'not an ISO-8601 date' })
  .nullish()
  .transform((v) => v ?? undefined);

// Unknown top-level fields are kept (loose): they are the client's, and Segment keeps them too.
const EventSchema = z.looseObject({
  type: z.enum(EVENT_TYPES, { error: `must be one of ${EVENT_TYPES.join(', ')}` }),
  messageId: id,
  userId: id,
  anonymousId: id,
  groupId: id,
  previousId: id,
  event: name,
  name,
  category: name,
  properties: object,
  traits: object,
  context: object,
  integrations: object,
  timestamp: time,
  originalTimestamp: time,
  sentAt: time,
});

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
  if (impliedType && input.type !== undefined && input.type !== impliedType) {
    return fail(path, 'type', `must be "${impliedType}" on this endpoint`);
  }
  const parsed = EventSchema.safeParse(impliedType ? { ...input, type: impliedType } : input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.reduce<string>((p, k) => childPath(p, typeof k === 'number' ? k : String(k)), path);
    return { ok: false, issue: { path: at || 'body', message: issue.message } };
  }
  const event = parsed.data as TrackingEvent;
  for (const key of Object.keys(event)) if (event[key] === undefined) delete event[key];
  if (!event.userId && !event.anonymousId) {
    return { ok: false, issue: { path: path || 'body', message: 'needs a userId or an anonymousId' } };
  }
  const required = requiredFor(event.type, event);
  if (required) return fail(path, required, 'is required');
  const problem = scanJson(event, path);
  if (problem) return { ok: false, issue: problem };
  return { ok: true, event };
}

function fail(path: string, field: string, message: string): Validation {
  return { ok: false, issue: { path: childPath(path, field), message } };
}

function requiredFor(type: EventType, e: TrackingEvent): string | null {
  if (type === 'track' && !e.event) return 'event';
  if (type === 'group' && !e.groupId) return 'groupId';
  if (type === 'alias' && !e.previousId) return 'previousId';
  if (type === 'alias' && !e.userId) return 'userId';
  return null;
}
