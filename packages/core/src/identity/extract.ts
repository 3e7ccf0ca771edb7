import type { JsonObject, TrackingEvent } from '../event.ts';
import { compareIdentities, DEFAULT_BLOCKED, type Identity, type IdentityOptions, type IdentityType } from './types.ts';

// Segment's externalIds use snake_case type names; only plain (unhashed) values can stand for
// Cairn's own identity types — a sha256 of an email is not an email.
const WELL_KNOWN: Readonly<Record<string, IdentityType>> = {
  user_id: 'userId',
  userid: 'userId',
  anonymous_id: 'anonymousId',
  anonymousid: 'anonymousId',
  email: 'email',
  phone: 'phone',
};
const CUSTOM_TYPE = /^[a-z0-9_.-]{1,64}$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
// E.164 allows at most 15 digits; fewer than 4 is not a phone number anyone dials.
const PHONE_DIGITS = { min: 4, max: 15 };

const blockedCache = new WeakMap<IdentityOptions, ReadonlySet<string>>();

function blockedSet(options: IdentityOptions): ReadonlySet<string> {
  let set = blockedCache.get(options);
  if (!set) {
    set = new Set([...DEFAULT_BLOCKED, ...(options.blocked ?? [])].map((v) => v.trim().toLowerCase()));
    blockedCache.set(options, set);
  }
  return set;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/**
 * Normalises a phone number, best-effort E.164: with a leading `+` it becomes `+` and its digits;
 * without one, a configured calling code is applied (`00` = international prefix, a single leading
 * `0` = trunk prefix); with neither, the bare digits are kept (they match only the same bare digits).
 *
 * @example
 * normalizePhone(' +44 (0)20 7946-0018 '); // '+4402079460018' — the "(0)" is not interpreted
 * normalizePhone('020 7946 0018', '44'); // '+442079460018'
 * normalizePhone('n/a'); // null
 */
export function normalizePhone(raw: string, defaultCallingCode?: string): string | null {
  const text = raw.trim();
  const digits = text.replace(/\D/g, '');
  let phone: string;
  if (text.startsWith('+')) phone = `+${digits}`;
  else if (!defaultCallingCode) phone = digits;
  else if (digits.startsWith('00')) phone = `+${digits.slice(2)}`;
  else phone = `+${defaultCallingCode.replace('+', '')}${digits.startsWith('0') ? digits.slice(1) : digits}`;
  const count = phone.replace('+', '').length;
  return count >= PHONE_DIGITS.min && count <= PHONE_DIGITS.max ? phone : null;
}

/**
 * Normalises one raw value of `type`, or returns null when it is blocked or not a usable value:
 * trimmed; emails lower-cased and required to look like `local@domain`; phones as in
 * {@link normalizePhone}. Blocked values are compared trimmed and case-insensitively, both as sent
 * and as normalised.
 *
 * @example
 * normalizeIdentity('email', ' Ann@Example.COM ', {}); // { type: 'email', value: 'ann@example.com' }
 * normalizeIdentity('userId', 'undefined', {}); // null
 */
export function normalizeIdentity(type: IdentityType, raw: unknown, options: IdentityOptions): Identity | null {
  const text = asText(raw)?.trim();
  if (text === undefined) return null;
  const blocked = blockedSet(options);
  if (blocked.has(text.toLowerCase())) return null;
  let value: string | null = text;
  if (type === 'email') value = EMAIL.test(text) ? text.toLowerCase() : null;
  else if (type === 'phone') value = normalizePhone(text, options.defaultCallingCode);
  if (value === null || blocked.has(value.toLowerCase())) return null;
  return { type, value };
}

/** The Cairn type of one `context.externalIds` entry, or null when it is not a person's id. */
function externalType(entry: JsonObject): IdentityType | null {
  const type = asText(entry.type)?.trim().toLowerCase();
  if (!type) return null;
  // Segment's collection is "users" or "accounts"; an account id must never join two people.
  const collection = asText(entry.collection)?.trim().toLowerCase();
  if (collection && collection !== 'users') return null;
  const encoding = asText(entry.encoding)?.trim().toLowerCase();
  const plain = !encoding || encoding === 'none';
  const wellKnown = WELL_KNOWN[type];
  if (plain && wellKnown) return wellKnown;
  const custom = plain ? type : `${type}.${encoding}`;
  return CUSTOM_TYPE.test(custom) ? `x:${custom}` : null;
}

function externalIds(context: JsonObject | undefined): Array<[IdentityType, unknown]> {
  const list = context?.externalIds;
  if (!Array.isArray(list)) return [];
  const out: Array<[IdentityType, unknown]> = [];
  for (const entry of list) {
    if (!isObject(entry)) continue;
    const type = externalType(entry);
    if (type) out.push([type, entry.id]);
  }
  return out;
}

// identify's own traits describe the user and win; context.traits (cached by mobile SDKs) is the
// fallback. Only one email and one phone per event: a stale cached value must not link two addresses.
function firstUsable(type: IdentityType, sources: JsonObject[], options: IdentityOptions): Identity | null {
  for (const source of sources) {
    const id = normalizeIdentity(type, source[type], options);
    if (id) return id;
  }
  return null;
}

/**
 * The identities one validated event carries, normalised, deduplicated and in canonical order
 * ({@link compareIdentities}): `userId`, `anonymousId`, an alias's `previousId` (typed by
 * `options.aliasPreviousIdAs`, default `anonymousId`), `email` and `phone` (from `traits` on an
 * identify, else `context.traits`), and `context.externalIds` (users collection only). Blocked values
 * ({@link DEFAULT_BLOCKED} plus `options.blocked`) are dropped.
 *
 * @example
 * extractIdentities({
 *   type: 'identify', userId: 'u1', anonymousId: 'a1', traits: { email: 'Ann@Example.com' },
 *   context: { externalIds: [{ id: 'C-9', type: 'crm_id', collection: 'users', encoding: 'none' }] },
 * });
 * // [userId u1, email ann@example.com, x:crm_id C-9, anonymousId a1]
 */
export function extractIdentities(event: TrackingEvent, options: IdentityOptions = {}): Identity[] {
  const found = new Map<string, Identity>();
  const add = (id: Identity | null) => {
    if (id) found.set(`${id.type}:${id.value}`, id);
  };
  add(normalizeIdentity('userId', event.userId, options));
  add(normalizeIdentity('anonymousId', event.anonymousId, options));
  if (event.type === 'alias')
    add(normalizeIdentity(options.aliasPreviousIdAs ?? 'anonymousId', event.previousId, options));
  const contextTraits = isObject(event.context?.traits) ? event.context.traits : undefined;
  const sources = [event.type === 'identify' ? event.traits : undefined, contextTraits].filter(isObject);
  add(firstUsable('email', sources, options));
  add(firstUsable('phone', sources, options));
  for (const [type, raw] of externalIds(event.context)) add(normalizeIdentity(type, raw, options));
  return [...found.values()].sort(compareIdentities);
}
