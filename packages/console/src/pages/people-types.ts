// What the people pages read from the admin API (GET /api/profiles…), as the API describes it.

/** GET /api/profiles/recent's item. */
export interface ProfileSummary {
  id: string;
  createdAt: string;
  updatedAt: string;
  identities: { type: string; value: string; createdAt?: string }[];
}

/** GET /api/profiles/{id} (sensitive values already masked by the server for roles without pii:read). */
export interface Profile extends ProfileSummary {
  identities: { type: string; value: string; createdAt: string }[];
  traits: Record<string, { value: unknown; updatedAt: string; source: string; eventId: string }>;
  accounts: { id: string; traits: Record<string, unknown>; firstSeenAt: string; lastSeenAt: string }[];
  consent: Record<string, { granted: boolean; at: string; source: string; actor: string | null }>;
  mergedFrom: string[];
}

const PREFERRED = ['email', 'userId', 'phone', 'anonymousId'];

/**
 * A person's name for lists and titles: their name trait, else an identity (email first), else the id.
 *
 * @example
 * labelOf(profile); // 'Ada Lovelace' or 'ada@example.com' or '3f2c…'
 */
export function labelOf(p: ProfileSummary & { traits?: Profile['traits'] }): string {
  const name = p.traits?.name?.value;
  if (typeof name === 'string' && name.trim()) return name;
  for (const type of PREFERRED) {
    const hit = p.identities.find((i) => i.type === type);
    if (hit) return hit.value;
  }
  return p.id;
}

/**
 * A value for a table cell: strings as they are, the rest as JSON.
 *
 * @example
 * show(['a', 1]); // '["a",1]'
 */
export function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}
