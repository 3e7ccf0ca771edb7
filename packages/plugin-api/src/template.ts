// `{{variable}}` templates for message plugins (email-smtp, slack, sms-http share them).
import type { DeliveryItem } from './types.ts';

/** Makes a variable's text safe for where it lands (HTML, Slack mrkdwn, a header line). */
export type Escape = (text: string) => string;

/** The values a template can name: its first path segment picks one; other names are traits. */
export type Scope = Record<string, unknown>;

// `{{ path }}` or `{{ path | fallback }}`; a path is dot-separated names or array indexes.
const PLACEHOLDER = /\{\{\s*([\w$-]+(?:\.[\w$-]+)*)\s*(?:\|([^}]*))?\}\}/g;

/**
 * Renders `{{path}}` placeholders from `scope`. A path whose first name is not in the scope is
 * looked up in `scope.traits`, so `{{first_name}}` and `{{traits.first_name}}` are the same. A
 * missing value renders as the fallback after `|` (template text, not escaped) or as nothing.
 * Values are escaped with `escapeValue`; the template's own text is the author's and is left alone.
 *
 * @example
 * render('<p>Hi {{first_name | there}}</p>', { traits: { first_name: '<b>' } }, escapeHtml); // '<p>Hi &lt;b&gt;</p>'
 * render('{{event.properties.plan}}', { event: { properties: { plan: 'pro' } } }); // 'pro'
 */
export function render(template: string, scope: Scope, escapeValue: Escape = (text) => text): string {
  return template.replace(PLACEHOLDER, (_, path: string, fallback: string | undefined) => {
    const text = format(lookup(scope, path));
    return text === '' ? (fallback?.trim() ?? '') : escapeValue(text);
  });
}

/**
 * The value at a dot path, or undefined. Only own properties are followed, so a template cannot
 * reach `constructor`, `__proto__` or other inherited members.
 *
 * @example
 * lookup({ traits: { plan: 'pro' } }, 'plan'); // 'pro'
 */
export function lookup(scope: Scope, path: string): unknown {
  const names = path.split('.');
  let at: unknown = Object.hasOwn(scope, names[0]!) ? scope : scope.traits;
  for (const name of names) {
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, name)) return undefined;
    at = (at as Record<string, unknown>)[name];
  }
  return at;
}

// Text for a value: lists read as "a, b"; objects as JSON, so nothing renders as "[object Object]".
function format(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return value.map(format).join(', ');
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}

/**
 * The variables every message template has: `event` (the whole stored event), `profile`, `traits`
 * (alias `trait`; profile traits over the event's own), `email`, `phone`, `user_id`, `message` (a flow's
 * rendered subject and body, when the item is one), plus `extra`.
 *
 * @example
 * render('Hi {{first_name}}', itemScope(item, { unsubscribe_url: url }));
 */
export function itemScope(item: DeliveryItem, extra: Scope = {}): Scope {
  const { event, profile } = item;
  const context = event.context as { traits?: unknown } | undefined;
  const eventTraits = asObject(event.traits) ?? asObject(context?.traits) ?? {};
  // The profile's traits are the folded, current ones; the event's fill in for a profile-less event.
  const traits = { ...eventTraits, ...(profile?.traits ?? {}) };
  return {
    event,
    profile,
    traits,
    trait: traits,
    email: profile?.email ?? null,
    phone: profile?.phone ?? null,
    user_id: profile?.userId ?? event.userId ?? null,
    // A flow's rendered message: a plugin's own templates can send `{{message.body}}`.
    ...(item.message ? { message: item.message } : {}),
    ...extra,
  };
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}
