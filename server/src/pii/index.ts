import {
  type Identity,
  type IdentityOptions,
  type IdentityType,
  type JsonObject,
  normalizeIdentity,
} from '@cairn/core';
import { blindIndex, createKeyring, isSealed, type Keyring, open, openBytes, seal, sealBytes } from './crypto.ts';

export { isSealed, PiiDecryptError } from './crypto.ts';
export { maskPayload, maskValue } from './mask.ts';

// Opened scalar values kept per process (see openOne in createPii).
const OPENED_CACHE_SIZE = 10_000;

/** Sensitive traits when `CAIRN_PII_TRAITS` is not set. */
export const DEFAULT_PII_TRAITS: readonly string[] = Object.freeze(['email', 'phone', 'id_number', 'address']);

/**
 * PII protection at rest: which traits are sensitive, sealing and opening them (AES-256-GCM, key id
 * in every value), and the blind index that lookups and joins use instead of clear values. One is
 * made at start from the config and passed down; nothing here touches the database.
 */
export interface Pii {
  readonly traits: ReadonlySet<string>;
  readonly ring: Keyring;
  /** Whether a trait (or property) key is sensitive. */
  isSensitive(key: string): boolean;
  /** The value to store for `key`: sealed when the key is sensitive (null/undefined stay as they are). */
  sealValue(key: string, value: unknown): unknown;
  /** The clear value of a stored one (values that are not sealed are returned as they are). */
  openValue(value: unknown): unknown;
  /** A copy of an event payload with its sensitive fields sealed (see docs/design/pii.md for which). */
  sealPayload(payload: JsonObject): JsonObject;
  /** A copy of a stored payload with every sealed field opened. */
  openPayload(payload: JsonObject): JsonObject;
  /** Seals raw bytes (a request body that could not be parsed). */
  sealBytes(bytes: Uint8Array): string;
  /** Opens what {@link Pii.sealBytes} made. */
  openBytes(sealed: string): Buffer;
  /** Whether an identity of this type is stored by its blind index. */
  blinds(type: string): boolean;
  /** The stored key of a normalised identity: `type:<blind index>` for sensitive types, else `type:value`. */
  identityKey(id: Identity): string;
  /** The stored `identities.value`: sealed for sensitive types, else the value. */
  identityValue(id: Identity): string;
  /** The stored key of an identity given as sent (normalised first), or null when it is not usable. */
  lookupKey(type: IdentityType, raw: string): string | null;
  /** A subscription contact point (`email:<address>`, `phone:<number>`, ...) as stored. */
  contactKey(contact: string): string;
  /**
   * The blind index stored beside a sensitive trait's value (`profile_traits.blind`), or null (not
   * sensitive, not text): email and phone normalised as identities (so `email:<index>` is the email's
   * identity key), other traits trimmed and lower-cased (rules compare text case-insensitively).
   */
  traitIndex(key: string, value: unknown): string | null;
}

/** What {@link createPii} needs. */
export interface PiiOptions {
  secret: string;
  /** Secrets used before the current one (newest first): their sealed values still open. */
  oldSecrets?: readonly string[];
  traits?: readonly string[];
  /** Identity options (calling code, blocked values): lookups normalise values the way events are. */
  identity?: IdentityOptions;
}

// A blind index: 32 bytes of HMAC in base64url. No email (has @) or phone (<= 16 chars) looks like one.
const BLIND = /^[A-Za-z0-9_-]{43}$/;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Creates the PII protector.
 *
 * @example
 * const pii = createPii({ secret, traits: ['email', 'phone'] });
 * const stored = pii.sealPayload({ type: 'identify', traits: { email: 'ann@example.com' } });
 */
export function createPii(options: PiiOptions): Pii {
  const ring = createKeyring(options.secret, options.oldSecrets ?? []);
  const traits = new Set((options.traits ?? DEFAULT_PII_TRAITS).map((t) => t.trim()).filter(Boolean));
  const identityOptions = options.identity ?? {};
  const sensitive = (key: string) => traits.has(key);
  // Nothing to hide in an empty value, and left as is it keeps rules' `is_empty` exact.
  const empty = (v: unknown) =>
    v === null || v === undefined || v === '' || (typeof v === 'object' && Object.keys(v as object).length === 0);
  const sealOne = (key: string, v: unknown) => (sensitive(key) && !empty(v) && !isSealed(v) ? seal(ring, v) : v);
  // Senders open the same profiles' values again and again (each destination, each batch): opened
  // scalars are kept by their sealed text, a bounded few thousand (objects are opened afresh each time,
  // so no caller can change another's copy). Only this process's memory ever holds them.
  const opened = new Map<string, unknown>();
  const openOne = (v: unknown) => {
    if (!isSealed(v)) return v;
    if (opened.has(v)) return opened.get(v);
    const clear = open(ring, v);
    if (clear === null || typeof clear !== 'object') {
      if (opened.size >= OPENED_CACHE_SIZE) opened.delete(opened.keys().next().value as string);
      opened.set(v, clear);
    }
    return clear;
  };

  // Copy-on-write over the keys of one traits-like object (and its $set / $set_once groups).
  const mapTraits = (obj: unknown, f: (key: string, v: unknown) => unknown, ops: boolean): unknown => {
    if (!isObject(obj)) return obj;
    let out: JsonObject | undefined;
    for (const [k, v] of Object.entries(obj)) {
      const next = ops && (k === '$set' || k === '$set_once') ? mapTraits(v, f, false) : f(k, v);
      if (next !== v) {
        out ??= { ...obj };
        out[k] = next;
      }
    }
    return out ?? obj;
  };
  const mapExternalIds = (list: unknown, f: (key: string, v: unknown) => unknown): unknown => {
    if (!Array.isArray(list)) return list;
    let changed = false;
    const out = list.map((entry) => {
      if (!isObject(entry) || typeof entry.type !== 'string') return entry;
      const next = f(entry.type.trim().toLowerCase(), entry.id);
      if (next === entry.id) return entry;
      changed = true;
      return { ...entry, id: next };
    });
    return changed ? out : list;
  };
  const mapPayload = (payload: JsonObject, f: (key: string, v: unknown) => unknown): JsonObject => {
    let out: JsonObject | undefined;
    const set = (target: JsonObject, k: string, v: unknown) => {
      if (target[k] === v) return;
      out ??= { ...payload };
      out[k] = v;
    };
    set(payload, 'traits', mapTraits(payload.traits, f, true));
    set(payload, 'properties', mapTraits(payload.properties, f, false));
    if (isObject(payload.context)) {
      const ctx = payload.context;
      const traitsNext = mapTraits(ctx.traits, f, true);
      const idsNext = mapExternalIds(ctx.externalIds, f);
      if (traitsNext !== ctx.traits || idsNext !== ctx.externalIds) {
        const next: JsonObject = { ...ctx };
        if (traitsNext !== ctx.traits) next.traits = traitsNext;
        if (idsNext !== ctx.externalIds) next.externalIds = idsNext;
        set(payload, 'context', next);
      }
    }
    return out ?? payload;
  };

  const blinds = (type: string) => sensitive(type.startsWith('x:') ? type.slice(2) : type);
  const identityKey = (id: Identity) =>
    blinds(id.type) ? `${id.type}:${blindIndex(ring, id.type, id.value)}` : `${id.type}:${id.value}`;

  return Object.freeze({
    traits,
    ring,
    isSensitive: sensitive,
    sealValue: sealOne,
    openValue: openOne,
    sealPayload: (p: JsonObject) => mapPayload(p, sealOne),
    openPayload: (p: JsonObject) => mapPayload(p, (_k, v) => openOne(v)),
    sealBytes: (b: Uint8Array) => sealBytes(ring, b),
    openBytes: (s: string) => openBytes(ring, s),
    blinds,
    identityKey,
    identityValue: (id: Identity) => (blinds(id.type) ? seal(ring, id.value) : id.value),
    lookupKey(type: IdentityType, raw: string) {
      const id = normalizeIdentity(type, raw, identityOptions);
      return id ? identityKey(id) : null;
    },
    traitIndex(key: string, value: unknown) {
      if (!sensitive(key) || (typeof value !== 'string' && typeof value !== 'number')) return null;
      const text = String(value).trim();
      if (key === 'email' || key === 'phone') {
        const id = normalizeIdentity(key, text, identityOptions);
        return blindIndex(ring, key, id ? id.value : text.toLowerCase());
      }
      return blindIndex(ring, key, text.toLowerCase());
    },
    contactKey(contact: string) {
      const colon = contact.indexOf(':');
      const type = contact.slice(0, colon);
      if (colon <= 0 || (type !== 'email' && type !== 'phone') || !blinds(type)) return contact;
      if (BLIND.test(contact.slice(colon + 1))) return contact; // already stored form
      const id = normalizeIdentity(type, contact.slice(colon + 1), identityOptions);
      return id ? identityKey(id) : contact;
    },
  });
}
