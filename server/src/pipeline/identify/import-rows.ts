import { extractIdentities, type IdentityOptions, type JsonObject, type TrackingEvent } from '@cairn/core';
import { blindIndex } from '../../pii/crypto.ts';
import type { Pii } from '../../pii/index.ts';

// One imported row -> the identify event it stands for, or the reason it is refused. Pure: no I/O.

/** Where one column goes. */
export type ColumnTarget =
  | { kind: 'trait'; name: string; type: 'string' | 'number' | 'boolean' | 'date' }
  | { kind: 'identity'; name: 'userId' | 'anonymousId' | 'email' | 'phone' }
  | { kind: 'consent'; name: string }
  | { kind: 'tag'; name: string }
  | { kind: 'skip' };

/** A column mapping: column (CSV header or NDJSON field) -> target. */
export type ImportMapping = Record<string, ColumnTarget>;

const IDENTITY_TYPES = ['userId', 'anonymousId', 'email', 'phone'] as const;
const TRAIT_TYPES = ['string', 'number', 'boolean', 'date'] as const;
const NAME = /^[A-Za-z_$][\w$.-]{0,127}$/;

/**
 * Parses a mapping written as `col=trait:name[:type],col=identity:email,col=consent:marketing,col=tag:vip,col=skip`
 * (the CLI's `--map` and the API's `map` parameter). Throws an Error naming the bad entry.
 *
 * @example
 * parseMapping('id=identity:userId,mail=identity:email,born=trait:birthday:date');
 */
export function parseMapping(text: string): ImportMapping {
  const mapping: ImportMapping = {};
  for (const entry of text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.lastIndexOf('=');
    if (eq <= 0) throw new Error(`map entry "${entry}": expected column=target`);
    const column = entry.slice(0, eq).trim();
    const [kind, name = '', type = 'string', ...rest] = entry
      .slice(eq + 1)
      .trim()
      .split(':');
    const bad = (why: string) => new Error(`map entry "${entry}": ${why}`);
    if (column in mapping) throw bad('column mapped twice');
    if (kind === 'skip') mapping[column] = { kind: 'skip' };
    else if (kind === 'identity') {
      const id = IDENTITY_TYPES.find((t) => t === name);
      if (!id) throw bad(`identity type must be one of ${IDENTITY_TYPES.join(', ')}`);
      mapping[column] = { kind: 'identity', name: id };
    } else if (kind === 'trait') {
      const t = TRAIT_TYPES.find((x) => x === type);
      if (!t || rest.length) throw bad(`trait type must be one of ${TRAIT_TYPES.join(', ')}`);
      if (!NAME.test(name)) throw bad('trait name must be a plain name');
      // The pipeline takes traits.email and traits.phone as identities; so does an import.
      mapping[column] =
        name === 'email' || name === 'phone' ? { kind: 'identity', name } : { kind: 'trait', name, type: t };
    } else if (kind === 'consent' || kind === 'tag') {
      if (!NAME.test(name)) throw bad(`${kind} needs a name`);
      mapping[column] = { kind, name };
    } else throw bad('target must be trait:, identity:, consent:, tag: or skip');
  }
  if (!Object.values(mapping).some((t) => t.kind === 'identity')) {
    throw new Error('the mapping needs at least one identity column (identity:userId|anonymousId|email|phone)');
  }
  return mapping;
}

/** A valid row, ready to store. */
export interface ImportedRow {
  line: number;
  /** The identify event the row stands for (clear values; sealed when stored). */
  payload: JsonObject;
  /** Consent choices, also in payload.context.consent. */
  consent: Record<string, boolean>;
  tags: string[];
  /** Normalised identities, the key identity first (userId, then email, phone, anonymousId). */
  identities: ReturnType<typeof extractIdentities>;
}

const TRUE = new Set(['true', 'yes', 'y', '1', 't', 'on']);
const FALSE = new Set(['false', 'no', 'n', '0', 'f', 'off']);
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function parseBoolean(text: string): boolean | undefined {
  const t = text.toLowerCase();
  return TRUE.has(t) ? true : FALSE.has(t) ? false : undefined;
}

/** `YYYY-MM-DD` stays a date; a date-time becomes ISO-8601 UTC; anything else (or 2026-02-30) is refused. */
function parseDate(text: string): string | undefined {
  const m = ISO_DATE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (day.getUTCMonth() !== Number(mo) - 1 || day.getUTCDate() !== Number(d)) return undefined;
  if (!m[4]) return `${y}-${mo}-${d}`;
  const at = Date.parse(m[7] ? text.replace(' ', 'T') : `${text.replace(' ', 'T')}Z`);
  return Number.isNaN(at) ? undefined : new Date(at).toISOString();
}

function traitValue(type: ColumnTarget & { kind: 'trait' }, text: string): unknown {
  if (type.type === 'string') return text;
  if (type.type === 'number') {
    const n = Number(text);
    return text !== '' && Number.isFinite(n) ? n : undefined;
  }
  if (type.type === 'boolean') return parseBoolean(text);
  return parseDate(text);
}

const cell = (v: unknown): string | undefined => {
  if (v === null || v === undefined) return undefined;
  const text = (typeof v === 'object' ? JSON.stringify(v) : String(v)).trim();
  return text === '' ? undefined : text;
};

/**
 * Turns one parsed record into an identify event, or the reason it is refused (never the value: a
 * reason is stored in clear and may name a sensitive column).
 *
 * @example
 * rowToEvent({ id: 'u1', mail: 'ann@example.com' }, 2, mapping, {}); // { ok: true, row: {...} }
 */
export function rowToEvent(
  record: Record<string, unknown>,
  line: number,
  mapping: ImportMapping,
  identity: IdentityOptions,
): { ok: true; row: ImportedRow } | { ok: false; reason: string } {
  const payload: JsonObject = { type: 'identify' };
  const traits: JsonObject = {};
  const consent: Record<string, boolean> = {};
  const tags: string[] = [];
  for (const [column, target] of Object.entries(mapping)) {
    const text = cell(record[column]);
    if (text === undefined || target.kind === 'skip') continue;
    if (target.kind === 'identity') {
      if (target.name === 'email' || target.name === 'phone') traits[target.name] = text;
      else payload[target.name] = text;
    } else if (target.kind === 'trait') {
      const value = traitValue(target, text);
      if (value === undefined) return { ok: false, reason: `column ${column}: not a valid ${target.type}` };
      traits[target.name] = value as JsonObject[string];
    } else {
      const b = parseBoolean(text);
      if (b === undefined) return { ok: false, reason: `column ${column}: not a boolean (true/false, yes/no, 1/0)` };
      if (target.kind === 'consent') consent[target.name] = b;
      else if (b) tags.push(target.name);
    }
  }
  if (Object.keys(traits).length) payload.traits = traits;
  if (Object.keys(consent).length) payload.context = { consent: { categoryPreferences: consent } };
  const identities = extractIdentities(payload as unknown as TrackingEvent, identity);
  // An identity the mapping names but that did not normalise (bad email or phone, blocked value).
  for (const [column, target] of Object.entries(mapping)) {
    if (target.kind !== 'identity' || cell(record[column]) === undefined) continue;
    if (!identities.some((i) => i.type === target.name)) {
      return { ok: false, reason: `column ${column}: not a valid ${target.name}` };
    }
  }
  if (!identities.length) return { ok: false, reason: 'no identity: every identity column is empty' };
  return { ok: true, row: { line, payload, consent, tags, identities } };
}

/**
 * The keyed hash of what a row sets (identities, traits, consent, tags): the same row imported again
 * has the same hash and is skipped. Keyed so that the stored hash says nothing about the values.
 *
 * @example
 * rowHash(pii, row);
 */
export function rowHash(pii: Pick<Pii, 'ring'>, row: ImportedRow): string {
  return blindIndex(pii.ring, 'import-row', JSON.stringify([row.identities, row.payload, row.tags]));
}
