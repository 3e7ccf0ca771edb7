import type { JsonObject } from '../event.ts';

/** The consent purposes Cairn knows by default (configurable per server). */
export const DEFAULT_PURPOSES: readonly string[] = Object.freeze([
  'necessary',
  'analytics',
  'marketing',
  'advertising',
  'personalization',
  'functional',
]);

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The consent choices an event carries in Segment's consent format,
 * `context.consent.categoryPreferences` (`{ Analytics: true, Advertising: false }`): purpose names are
 * trimmed and lower-cased; non-boolean values are ignored; with a `purposes` list, other names are too.
 *
 * @example
 * consentFromEvent({ context: { consent: { categoryPreferences: { Marketing: false } } } });
 * // [['marketing', false]]
 */
export function consentFromEvent(
  payload: JsonObject,
  purposes: readonly string[] | null = null,
): Array<[purpose: string, granted: boolean]> {
  const context = isObject(payload.context) ? payload.context : undefined;
  const consent = isObject(context?.consent) ? context.consent : undefined;
  const prefs = isObject(consent?.categoryPreferences) ? consent.categoryPreferences : undefined;
  if (!prefs) return [];
  const out = new Map<string, boolean>();
  for (const [name, granted] of Object.entries(prefs)) {
    const purpose = name.trim().toLowerCase();
    if (typeof granted !== 'boolean' || !purpose || purpose.length > 100) continue;
    if (purposes && !purposes.includes(purpose)) continue;
    out.set(purpose, granted);
  }
  return [...out];
}
