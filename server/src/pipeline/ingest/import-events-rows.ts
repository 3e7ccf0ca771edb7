import { type JsonObject, LIMITS, parseTimestamp, validateEvent } from '@cairn/core';
import { blindIndex } from '../../pii/crypto.ts';
import type { Pii } from '../../pii/index.ts';
import type { EventRow } from './enrich.ts';

// One row of a historical events file -> the events row stage 1 stores, or the reason it is refused.
// Pure: no I/O. NDJSON lines are Segment events as they are; CSV rows are built from columns named by
// their path in the event (`type`, `userId`, `properties.revenue`, ...), or by an explicit mapping.

/** The source imported events are stored under (created, disabled, by migration 0029). */
export const IMPORT_SOURCE = 'import';

/** Where one CSV column goes in the event, and how its text is read. */
export interface EventColumn {
  path: string[];
  type: 'string' | 'number' | 'boolean' | 'json';
}

/** A CSV column mapping for events: column -> place in the event (null: skipped). */
export type EventMapping = Record<string, EventColumn | null>;

const TOP = new Set([
  'type',
  'event',
  'name',
  'category',
  'userId',
  'anonymousId',
  'groupId',
  'previousId',
  'messageId',
  'timestamp',
  'originalTimestamp',
  'sentAt',
  'receivedAt',
]);
const OBJECTS = new Set(['properties', 'traits', 'context', 'integrations']);
const TYPES = ['string', 'number', 'boolean', 'json'] as const;
const SEGMENT = /^[A-Za-z_$][\w$-]{0,127}$/;

/** A column's place: a top-level field, a whole object (JSON text), or a field inside one. */
function columnOf(target: string, type: EventColumn['type'] | undefined): EventColumn | string {
  const path = target.split('.');
  const [head] = path;
  if (path.length === 1 && TOP.has(head!)) return { path, type: type ?? 'string' };
  if (path.length === 1 && OBJECTS.has(head!)) {
    if (type && type !== 'json') return `${head} is a whole object: its type is json`;
    return { path, type: 'json' };
  }
  if (OBJECTS.has(head!) && path.length > 1 && path.slice(1).every((p) => SEGMENT.test(p))) {
    return { path, type: type ?? 'string' };
  }
  return `"${target}" is not a place in an event (type, event, name, userId, anonymousId, messageId, timestamp, ..., properties.<name>, traits.<name>, context.<name>)`;
}

/**
 * Parses a CSV mapping for events, `column=path[:string|number|boolean|json]` comma-separated, where
 * path is a top-level field or `properties.<name>` (also `traits.`, `context.`), or `skip`. Throws an
 * Error naming the bad entry.
 *
 * @example
 * parseEventMapping('uid=userId,when=timestamp,what=event,amount=properties.revenue:number');
 */
export function parseEventMapping(text: string): EventMapping {
  const mapping: EventMapping = {};
  for (const entry of text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.lastIndexOf('=');
    if (eq <= 0) throw new Error(`map entry "${entry}": expected column=path`);
    const column = entry.slice(0, eq).trim();
    if (column in mapping) throw new Error(`map entry "${entry}": column mapped twice`);
    const [target = '', type, ...rest] = entry
      .slice(eq + 1)
      .trim()
      .split(':');
    if (target === 'skip' && type === undefined) {
      mapping[column] = null;
      continue;
    }
    const t = TYPES.find((x) => x === type);
    if ((type !== undefined && !t) || rest.length) {
      throw new Error(`map entry "${entry}": type must be one of ${TYPES.join(', ')}`);
    }
    const col = columnOf(target, t);
    if (typeof col === 'string') throw new Error(`map entry "${entry}": ${col}`);
    mapping[column] = col;
  }
  return mapping;
}

/**
 * The mapping a CSV header implies when none is given: each column is the path it names, read as
 * text (whole objects as JSON). Returns the reason when a header names no place in an event.
 *
 * @example
 * headerMapping(['type', 'userId', 'timestamp', 'properties.sku']);
 */
export function headerMapping(columns: readonly string[]): EventMapping | string {
  const mapping: EventMapping = {};
  for (const c of columns) {
    const col = columnOf(c, undefined);
    if (typeof col === 'string') return `column ${c}: ${col}; name the columns so, or give a map`;
    mapping[c] = col;
  }
  return mapping;
}

function read(col: EventColumn, text: string): { value: unknown } | string {
  if (col.type === 'string') return { value: text };
  if (col.type === 'number') {
    const n = Number(text);
    return Number.isFinite(n) ? { value: n } : 'not a number';
  }
  if (col.type === 'boolean') {
    const t = text.toLowerCase();
    if (t === 'true' || t === '1') return { value: true };
    if (t === 'false' || t === '0') return { value: false };
    return 'not a boolean';
  }
  try {
    return { value: JSON.parse(text) };
  } catch {
    return 'not valid JSON';
  }
}

/**
 * Builds the event a CSV record stands for (empty cells set nothing), or the reason it cannot.
 *
 * @example
 * csvEvent({ type: 'track', uid: 'u1' }, { type: { path: ['type'], type: 'string' }, uid: { path: ['userId'], type: 'string' } });
 */
export function csvEvent(record: Record<string, unknown>, mapping: EventMapping): JsonObject | string {
  const out: JsonObject = {};
  for (const [column, col] of Object.entries(mapping)) {
    const cell = record[column];
    if (!col || cell === undefined || cell === null || cell === '') continue;
    const r = read(col, String(cell));
    if (typeof r === 'string') return `column ${column}: ${r}`;
    let at: JsonObject = out;
    for (const p of col.path.slice(0, -1)) {
      const next = at[p];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) at[p] = {};
      at = at[p] as JsonObject;
    }
    at[col.path.at(-1)!] = r.value;
  }
  return out;
}

/** What turning a record into a stored row needs. */
export interface ImportedEventFacts {
  sourceId: string;
  /** When Cairn received the event (the import's clock): received_at, never the event's time. */
  receivedAt: number;
  maxFutureSkewMs: number;
  pii: Pick<Pii, 'sealPayload' | 'ring'>;
}

// JSON with keys sorted at every level: the same event, whatever its field order, has the same text.
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const o = value as JsonObject;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The messageId of an imported event that has none: a keyed hash (the PII index key, so the id says
 * nothing about the content) of the event's canonical JSON, its time normalised to ISO-8601 UTC. The
 * same row imported again gets the same id, and stage 1's (source, messageId) key stores it once.
 *
 * @example
 * derivedMessageId(pii, { type: 'track', event: 'Order Completed', userId: 'u1', timestamp: '2025-01-02T03:04:05.000Z' });
 */
export function derivedMessageId(pii: Pick<Pii, 'ring'>, event: JsonObject): string {
  const { messageId: _none, ...rest } = event;
  return `import-${blindIndex(pii.ring, 'import-event', canonical(rest))}`;
}

/**
 * Validates one imported event as the tracking API does (Segment spec, ids, names, nesting, 32 KB)
 * and requires its original time; returns the events row, or the reason (never a value: reasons are
 * stored in clear).
 *
 * @example
 * const r = importedEventRow({ type: 'track', event: 'Order Completed', userId: 'u1', timestamp: '2025-01-02T03:04:05Z' }, facts);
 */
export function importedEventRow(
  raw: JsonObject,
  facts: ImportedEventFacts,
): { ok: true; row: EventRow } | { ok: false; reason: string } {
  const v = validateEvent(raw, '');
  if (!v.ok) {
    const reason = v.issue.path === 'body' ? v.issue.message : `${v.issue.path}: ${v.issue.message}`;
    return { ok: false, reason: v.issue.path === 'type' ? `unknown type: ${v.issue.message}` : reason };
  }
  const e = v.event;
  if (e.timestamp === undefined) return { ok: false, reason: 'timestamp: missing (an imported event needs its time)' };
  const at = parseTimestamp(e.timestamp);
  if (at > facts.receivedAt + facts.maxFutureSkewMs) {
    return { ok: false, reason: `timestamp: ${Math.round((at - facts.receivedAt) / 3_600_000)} h in the future` };
  }
  if (at < 0) return { ok: false, reason: 'timestamp: before 1970-01-01' };
  const size = Buffer.byteLength(JSON.stringify(raw));
  if (size > LIMITS.maxEventBytes) {
    return { ok: false, reason: `too large: the event is ${size} bytes, the limit is ${LIMITS.maxEventBytes}` };
  }
  const { writeKey: _secretish, ...rest } = e;
  const timestamp = new Date(at).toISOString();
  const received = new Date(facts.receivedAt).toISOString();
  const event: JsonObject = { ...rest, timestamp };
  const messageId = e.messageId ?? derivedMessageId(facts.pii, event);
  // The file's receivedAt (when the system it comes from got the event) is kept; else the import's time.
  const payload: JsonObject = { ...event, messageId, receivedAt: e.receivedAt ?? received };
  const name = e.type === 'track' ? e.event : e.type === 'page' || e.type === 'screen' ? e.name : undefined;
  return {
    ok: true,
    row: {
      sourceId: facts.sourceId,
      messageId,
      type: e.type,
      event: name ?? null,
      userId: e.userId ?? null,
      anonymousId: e.anonymousId ?? null,
      timestamp,
      receivedAt: received,
      payload: JSON.stringify(facts.pii.sealPayload(payload)),
    },
  };
}
