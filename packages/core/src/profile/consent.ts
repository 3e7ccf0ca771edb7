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

/**
 * What to assume for purposes a profile never chose: a default and per-purpose exceptions.
 * Cairn's default (per source, configurable): deny, except analytics, necessary and functional.
 */
export interface ConsentPolicy {
  readonly default: 'allow' | 'deny';
  readonly purposes?: Readonly<Record<string, 'allow' | 'deny'>>;
}

/**
 * The default policy for profiles with no recorded choice: marketing (and anything not named) denied;
 * analytics, necessary and functional allowed.
 *
 * @example
 * consentDecision(['marketing'], new Map(), DEFAULT_CONSENT_POLICY); // { allowed: false, missing: ['marketing'] }
 */
export const DEFAULT_CONSENT_POLICY: ConsentPolicy = Object.freeze({
  default: 'deny',
  purposes: Object.freeze({ analytics: 'allow', necessary: 'allow', functional: 'allow' }),
});

/**
 * Whether every required purpose is granted: a recorded choice decides; without one, the policy does.
 * `missing` lists the purposes that block, in the order required.
 *
 * @example
 * consentDecision(['analytics', 'marketing'], new Map([['marketing', true]]), DEFAULT_CONSENT_POLICY);
 * // { allowed: true, missing: [] }
 */
export function consentDecision(
  required: readonly string[],
  recorded: ReadonlyMap<string, boolean>,
  policy: ConsentPolicy = DEFAULT_CONSENT_POLICY,
): { allowed: boolean; missing: string[] } {
  const missing = required.filter((purpose) => {
    const choice = recorded.get(purpose);
    if (choice !== undefined) return !choice;
    return (policy.purposes?.[purpose] ?? policy.default) !== 'allow';
  });
  return { allowed: missing.length === 0, missing };
}
