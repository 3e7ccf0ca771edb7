import { z } from 'zod';

/**
 * The kinds of identity a profile can hold. Custom ids from `context.externalIds` are `x:<type>`,
 * where `<type>` is lower-case `[a-z0-9_.-]` (never a colon, so `identityKey` is unambiguous).
 */
export type IdentityType = 'userId' | 'email' | 'phone' | 'anonymousId' | `x:${string}`;

/** One identity: a normalised value of one type. */
export interface Identity {
  readonly type: IdentityType;
  readonly value: string;
}

/** Settings shared by {@link extractIdentities} and {@link resolveIdentities}. All optional. */
export interface IdentityOptions {
  /** Values that never identify anyone, added to {@link DEFAULT_BLOCKED} (case-insensitive, trimmed). */
  readonly blocked?: readonly string[];
  /** Calling code for phone numbers written without `+` (e.g. `'44'`); unset = keep them as bare digits. */
  readonly defaultCallingCode?: string;
  /** The type an alias event's `previousId` gets (default `'anonymousId'`, see the identity README). */
  readonly aliasPreviousIdAs?: 'anonymousId' | 'userId';
  /** Most identities of one type a profile may hold, by type (e.g. `{ email: 3, 'x:crm_id': 1 }`). */
  readonly limits?: Readonly<Record<string, number>>;
  /** Limit for every type not named in `limits` except `userId` (default {@link DEFAULT_IDENTITY_LIMIT}). */
  readonly defaultLimit?: number;
}

/**
 * Values that are never identities, whatever their type: SDK placeholders and common junk.
 *
 * @example
 * DEFAULT_BLOCKED.includes('undefined'); // true
 */
export const DEFAULT_BLOCKED: readonly string[] = Object.freeze(['', 'null', 'undefined', 'anonymous', '0', '-1']);

/**
 * Default most userIds per profile: one person, one account id (this is what keeps shared devices apart).
 *
 * @example
 * limitOf('userId') === DEFAULT_USER_ID_LIMIT; // true
 */
export const DEFAULT_USER_ID_LIMIT = 1;

/**
 * Default most identities of any other type per profile.
 *
 * @example
 * limitOf('email') === DEFAULT_IDENTITY_LIMIT; // true
 */
export const DEFAULT_IDENTITY_LIMIT = 5;

const limit = z.number().int().min(1);

/**
 * The zod schema of {@link IdentityOptions}, for the server's config module.
 *
 * @example
 * const options = identityOptionsSchema.parse({ limits: { email: 3 }, blocked: ['test@example.com'] });
 */
export const identityOptionsSchema = z.strictObject({
  blocked: z.array(z.string()).optional(),
  defaultCallingCode: z
    .string()
    .regex(/^\+?[1-9]\d{0,2}$/, { error: 'must be a calling code such as "44" or "+1"' })
    .optional(),
  aliasPreviousIdAs: z.enum(['anonymousId', 'userId']).optional(),
  limits: z.record(z.string(), limit).optional(),
  defaultLimit: limit.optional(),
});

/**
 * Parses and validates identity options (limits are integers >= 1, calling codes look like one).
 *
 * @example
 * parseIdentityOptions({ limits: { userId: 2 } }); // { limits: { userId: 2 } }
 * parseIdentityOptions({ limits: { email: 0 } }); // throws a ZodError
 */
export function parseIdentityOptions(input: unknown): IdentityOptions {
  return identityOptionsSchema.parse(input);
}

/**
 * The string that names one identity in maps and in a partition: `type:value`.
 *
 * @example
 * identityKey({ type: 'email', value: 'ann@example.com' }); // 'email:ann@example.com'
 */
export function identityKey(id: Identity): string {
  return `${id.type}:${id.value}`;
}

// A link's first identity (in this order) decides which profile the link's new identities join:
// an account id names a person, an email or phone usually does, a device id only names a device.
const RANK: Readonly<Record<string, number>> = { userId: 0, email: 1, phone: 2, anonymousId: 4 };

function rankOf(type: IdentityType): number {
  return RANK[type] ?? 3;
}

/**
 * Canonical order of identities: userId, email, phone, custom ids, anonymousId; then type, then value
 * (code-unit order, never locale order, so every machine sorts the same way).
 *
 * @example
 * ids.sort(compareIdentities); // the userId first, anonymousIds last
 */
export function compareIdentities(a: Identity, b: Identity): number {
  return rankOf(a.type) - rankOf(b.type) || compareStrings(a.type, b.type) || compareStrings(a.value, b.value);
}

/**
 * Code-unit string comparison (deterministic across locales).
 *
 * @example
 * ['b', 'a'].sort(compareStrings); // ['a', 'b']
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The most identities of `type` one profile may hold under `options`.
 *
 * @example
 * limitOf('userId', {}); // 1
 * limitOf('email', { limits: { email: 2 } }); // 2
 */
export function limitOf(type: IdentityType, options: IdentityOptions = {}): number {
  const configured = options.limits?.[type];
  if (configured !== undefined) return configured;
  return type === 'userId' ? DEFAULT_USER_ID_LIMIT : (options.defaultLimit ?? DEFAULT_IDENTITY_LIMIT);
}
