import type { JsonObject } from '@cairn/core';

/**
 * A sensitive value as callers without `pii:read` see it: an email keeps its first character and
 * domain (`a***@example.com`), anything else its last four characters (a phone keeps its `+`:
 * `+*******4567`); short values and objects (an address) are hidden whole.
 *
 * @example
 * maskValue('ann@example.com'); // 'a***@example.com'
 * maskValue('+4915112344567'); // '+*********4567'
 */
export function maskValue(value: unknown): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value !== 'string' && typeof value !== 'number') return '***';
  const text = String(value);
  const at = text.indexOf('@');
  if (at > 0) return `${text[0]}***${text.slice(at)}`;
  const plus = text.startsWith('+') ? '+' : '';
  const rest = text.slice(plus.length);
  if (rest.length <= 4) return `${plus}****`;
  return `${plus}${'*'.repeat(rest.length - 4)}${rest.slice(-4)}`;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function maskTraits(obj: unknown, sensitive: (key: string) => boolean, ops: boolean): unknown {
  if (!isObject(obj)) return obj;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] =
      ops && (k === '$set' || k === '$set_once') ? maskTraits(v, sensitive, false) : sensitive(k) ? maskValue(v) : v;
  }
  return out;
}

/**
 * A copy of an (opened) event payload with its sensitive fields masked: traits, context.traits,
 * properties and context.externalIds — the same places sealing covers.
 *
 * @example
 * maskPayload(payload, (k) => k === 'email');
 */
export function maskPayload(payload: JsonObject, sensitive: (key: string) => boolean): JsonObject {
  const out: JsonObject = { ...payload };
  if ('traits' in payload) out.traits = maskTraits(payload.traits, sensitive, true);
  if ('properties' in payload) out.properties = maskTraits(payload.properties, sensitive, false);
  if (isObject(payload.context)) {
    const ctx: JsonObject = { ...payload.context };
    if ('traits' in ctx) ctx.traits = maskTraits(ctx.traits, sensitive, true);
    if (Array.isArray(ctx.externalIds)) {
      ctx.externalIds = ctx.externalIds.map((e) =>
        isObject(e) && typeof e.type === 'string' && sensitive(e.type.trim().toLowerCase())
          ? { ...e, id: maskValue(e.id) }
          : e,
      );
    }
    out.context = ctx;
  }
  return out;
}
