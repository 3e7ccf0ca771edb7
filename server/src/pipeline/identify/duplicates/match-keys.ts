// The matching keys duplicate detection blocks on: one small entry per kind of evidence
// (`MATCHERS[kind] = { weight, describe, values }`), each turning what a profile holds into the
// normalised values two records of one person share. Only their keyed hashes are stored (scan.ts).

/** What a profile holds that matching reads: clear values, opened from their sealed form. */
export interface MatchInput {
  emails: readonly string[];
  phones: readonly string[];
  names: readonly string[];
}

/** One kind of evidence. */
export interface Matcher {
  /** How strong the evidence is alone, 0..1 (pairs sharing several kinds combine as 1 - Π(1 - w)). */
  weight: number;
  describe: string;
  values(input: MatchInput): string[];
}

// Mailbox providers that ignore dots in the local part (Gmail documents it; googlemail.com is Gmail).
const DOTLESS = new Set(['gmail.com']);
const DOMAIN_ALIASES: Readonly<Record<string, string>> = { 'googlemail.com': 'gmail.com' };
// Fewer digits than a subscriber number: too short to tell people apart.
const MIN_PHONE_DIGITS = 7;
// The national significant number is at most this long in most plans: comparing the last 9 digits
// makes `+44 20 7946 0018`, `020 7946 0018` and `0044 20 7946 0018` the same number.
const PHONE_SUFFIX = 9;

/**
 * The mailbox an address delivers to: trimmed and lower-cased, `+tag` removed (sub-addressing,
 * RFC 5233: Gmail, Outlook, iCloud, Fastmail), dots removed for Gmail, googlemail.com as gmail.com.
 * Null when it is no address.
 *
 * @example
 * canonicalEmail(' John.Smith+shop@GoogleMail.com '); // 'johnsmith@gmail.com'
 */
export function canonicalEmail(raw: string): string | null {
  const text = raw.trim().toLowerCase();
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1 || /\s/.test(text)) return null;
  let local = text.slice(0, at);
  const domain = DOMAIN_ALIASES[text.slice(at + 1)] ?? text.slice(at + 1);
  const plus = local.indexOf('+');
  if (plus > 0) local = local.slice(0, plus);
  if (DOTLESS.has(domain)) local = local.replaceAll('.', '');
  return local ? `${local}@${domain}` : null;
}

/**
 * A person's name for matching: accents and case folded, punctuation as spaces, words sorted (so
 * `Smith, John` is `John Smith`). Null when no letters are left.
 *
 * @example
 * normalizeName(' María-José  GARCÍA '); // 'garcia jose maria'
 */
export function normalizeName(raw: string): string | null {
  const words = raw
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
    .split(' ')
    .filter(Boolean);
  return words.length ? words.sort().join(' ') : null;
}

/**
 * The digits a phone number is matched by: its last 9 digits (country and trunk prefixes differ
 * between how people type one number). Null when it has fewer than 7 digits.
 *
 * @example
 * phoneDigits('+44 20 7946 0018'); // '079460018', as for '020 7946 0018'
 */
export function phoneDigits(raw: string): string | null {
  const digits = raw.replace(/\D/g, '');
  return digits.length >= MIN_PHONE_DIGITS ? digits.slice(-PHONE_SUFFIX) : null;
}

const unique = (values: (string | null)[]) => [...new Set(values.filter((v): v is string => !!v))];

/**
 * The kinds of evidence. A name alone or a phone alone is not listed: families share a phone and
 * many people share a name; together, or one mailbox, they are one person far more often than not.
 */
export const MATCHERS: Readonly<Record<string, Matcher>> = Object.freeze({
  email: {
    weight: 0.9,
    describe: 'the same mailbox (email variants: case, spaces, Gmail dots and +tags, googlemail.com)',
    values: (input) => unique(input.emails.map(canonicalEmail)),
  },
  name_phone: {
    weight: 0.85,
    describe: 'the same normalised name and phone number',
    values(input) {
      const names = unique(input.names.map(normalizeName));
      const phones = unique(input.phones.map(phoneDigits));
      return names.flatMap((n) => phones.map((p) => `${n}|${p}`));
    },
  },
});

/**
 * The score (0..100) of a pair sharing these kinds of evidence.
 *
 * @example
 * scoreOf(['email', 'name_phone']); // 99
 */
export function scoreOf(kinds: readonly string[]): number {
  const miss = kinds.reduce((p, k) => p * (1 - (MATCHERS[k]?.weight ?? 0)), 1);
  return Math.round(100 * (1 - miss));
}
