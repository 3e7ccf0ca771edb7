/**
 * Per-trait normalisation steps (data quality): trimming, case, dates to ISO-8601, country names to
 * ISO 3166-1 alpha-2 codes, phone numbers to E.164. Each step is pure and idempotent on its own
 * output, so a stored value fails a rule exactly when the rule fails on it again (the quality report
 * relies on that).
 */
import countries from 'i18n-iso-countries';
import { DateTime } from 'luxon';
import { normalizePhone } from '../identity/extract.ts';

/** One step of a trait's normalisation rule. */
export type NormalizeStep =
  | { op: 'trim' }
  | { op: 'lower' }
  | { op: 'upper' }
  /** To `YYYY-MM-DD` (a date without time) or a UTC ISO-8601 timestamp; `dayFirst` reads `01/02/2020` as 1 February. */
  | { op: 'date'; dayFirst?: boolean; formats?: readonly string[] }
  /** Names (any of `languages`, accents and case ignored), alpha-2, alpha-3 or numeric codes to alpha-2. */
  | { op: 'country'; languages?: readonly string[] }
  /** To E.164; numbers without `+` need `defaultCallingCode` (the server's is used when absent). */
  | { op: 'phone'; defaultCallingCode?: string };

export type NormalizeOp = NormalizeStep['op'];

/** The outcome of normalising one value: the new value, or a failure with the reason. */
export type Normalized = { ok: true; value: unknown } | { ok: false; reason: string };

/** Languages country names are read in when a rule names none. */
export const DEFAULT_COUNTRY_LANGUAGES: readonly string[] = Object.freeze(['en']);

// Date-only layouts tried after ISO-8601, RFC 2822, HTTP and SQL (luxon tokens); the day-first or
// month-first slash forms depend on the rule.
const DATE_FORMATS = [
  'd.M.yyyy',
  'd MMMM yyyy',
  'd MMM yyyy',
  'MMMM d, yyyy',
  'MMM d, yyyy',
  'MMMM d yyyy',
  'yyyyMMdd',
];
const DAY_FIRST = ['d/M/yyyy', 'd-M-yyyy'];
const MONTH_FIRST = ['M/d/yyyy', 'M-d-yyyy'];
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HAS_TIME = /\d{1,2}:\d{2}/;

const fail = (reason: string): Normalized => ({ ok: false, reason });
const text = (value: unknown, step: string): Normalized =>
  typeof value === 'string' ? { ok: true, value } : fail(`${step}: not text (${describeType(value)})`);

/**
 * The JSON type of a value as the quality report counts it: string, number, boolean, object, array, null.
 *
 * @example
 * describeType([1]); // 'array'
 */
export function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'object' ? 'object' : typeof value;
}

/**
 * A date (text in ISO-8601, RFC 2822, HTTP, SQL or common day/month layouts; or epoch milliseconds)
 * as ISO-8601: `YYYY-MM-DD` when it had no time of day, else a UTC timestamp. Times without an
 * offset are read as UTC.
 *
 * @example
 * normalizeDateValue('31.12.1990'); // { ok: true, value: '1990-12-31' }
 * normalizeDateValue('Tue, 01 Jan 2030 10:00:00 +0100'); // { ok: true, value: '2030-01-01T09:00:00.000Z' }
 */
export function normalizeDateValue(
  value: unknown,
  step: { dayFirst?: boolean; formats?: readonly string[] } = {},
): Normalized {
  if (typeof value === 'number') {
    const d = DateTime.fromMillis(value, { zone: 'utc' });
    return Number.isFinite(value) && d.isValid ? { ok: true, value: d.toISO() } : fail('date: not a time');
  }
  if (typeof value !== 'string') return fail(`date: not text or epoch milliseconds (${describeType(value)})`);
  const raw = value.trim();
  // Fast paths for what this rule writes (the report checks every stored value again).
  if (DATE_ONLY.test(raw)) {
    const d = new Date(`${raw}T00:00:00.000Z`);
    return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(raw)
      ? { ok: true, value: raw }
      : fail('date: no such day');
  }
  if (ISO_UTC.test(raw)) {
    const d = new Date(raw);
    if (!Number.isNaN(d.getTime()) && d.toISOString() === raw) return { ok: true, value: raw };
  }
  const opts = { zone: 'utc', setZone: false } as const;
  for (const parse of [DateTime.fromISO, DateTime.fromRFC2822, DateTime.fromHTTP, DateTime.fromSQL]) {
    const d = parse(raw, opts);
    if (d.isValid) return { ok: true, value: HAS_TIME.test(raw) ? d.toUTC().toISO()! : d.toISODate()! };
  }
  const layouts = [...(step.formats ?? []), ...DATE_FORMATS, ...(step.dayFirst === false ? MONTH_FIRST : DAY_FIRST)];
  for (const layout of layouts) {
    const d = DateTime.fromFormat(raw, layout, { zone: 'utc', locale: 'en-US' });
    if (d.isValid) return { ok: true, value: HAS_TIME.test(layout) ? d.toUTC().toISO()! : d.toISODate()! };
  }
  return fail('date: not a date in a known layout');
}

/**
 * A country (name in one of `languages`, or an alpha-2, alpha-3 or numeric ISO 3166-1 code) as its
 * alpha-2 code, with i18n-iso-countries (names compared without case and accents).
 *
 * @example
 * normalizeCountry('Deutschland', ['en', 'de']); // { ok: true, value: 'DE' }
 * normalizeCountry('usa'); // { ok: true, value: 'US' }
 */
export function normalizeCountry(value: unknown, languages: readonly string[] = DEFAULT_COUNTRY_LANGUAGES): Normalized {
  const t = text(value, 'country');
  if (!t.ok) return t;
  const raw = (t.value as string).trim();
  if (!raw) return fail('country: empty');
  if (/^(\d{1,3}|[A-Za-z]{2,3})$/.test(raw) && countries.isValid(raw.toUpperCase())) {
    const code = countries.toAlpha2(raw.toUpperCase());
    if (code) return { ok: true, value: code };
  }
  const name = simpleName(raw);
  for (const lang of languages) {
    const code = countryIndex(lang).get(name);
    if (code) return { ok: true, value: code };
  }
  return fail(`country: "${raw.slice(0, 40)}" is no country name (${languages.join(', ')}) or ISO code`);
}

// Names compared as getSimpleAlpha2Code compares them (case and accents ignored), through an index
// built once per language: the library's lookup scans every name per call (~100 µs; the quality
// report runs the rule on every stored value).
const simpleName = (name: string) =>
  name
    .normalize('NFD')
    .replace(/\p{Diacritic}/gu, '')
    .toLowerCase();
const indexes = new Map<string, Map<string, string>>();
function countryIndex(lang: string): Map<string, string> {
  let index = indexes.get(lang);
  if (index) return index;
  index = new Map();
  for (const [code, names] of Object.entries(countries.getNames(lang, { select: 'all' }))) {
    for (const n of names) if (!index.has(simpleName(n))) index.set(simpleName(n), code);
  }
  indexes.set(lang, index);
  return index;
}

/**
 * Whether i18n-iso-countries knows country names in a language (ISO 639-1).
 *
 * @example
 * isCountryLanguage('de'); // true
 */
export function isCountryLanguage(lang: string): boolean {
  return countries.langs().includes(lang);
}

/**
 * One step applied to a value.
 *
 * @example
 * applyStep({ op: 'upper' }, 'de'); // { ok: true, value: 'DE' }
 */
export function applyStep(step: NormalizeStep, value: unknown, defaultCallingCode?: string): Normalized {
  switch (step.op) {
    case 'trim': {
      const t = text(value, 'trim');
      return t.ok ? { ok: true, value: (t.value as string).trim() } : t;
    }
    case 'lower': {
      const t = text(value, 'lower');
      return t.ok ? { ok: true, value: (t.value as string).toLowerCase() } : t;
    }
    case 'upper': {
      const t = text(value, 'upper');
      return t.ok ? { ok: true, value: (t.value as string).toUpperCase() } : t;
    }
    case 'date':
      return normalizeDateValue(value, step);
    case 'country':
      return normalizeCountry(value, step.languages);
    case 'phone': {
      if (typeof value !== 'string' && typeof value !== 'number')
        return fail(`phone: not text (${describeType(value)})`);
      const e164 = normalizePhone(String(value).trim(), step.defaultCallingCode ?? defaultCallingCode);
      // Bare digits (no `+`, no calling code configured) are no E.164 number: the country is unknown.
      return e164?.startsWith('+')
        ? { ok: true, value: e164 }
        : fail('phone: not a phone number with a known country code');
    }
  }
}

/**
 * Steps applied in order; the first failure stops them (the caller keeps the value as received).
 *
 * @example
 * normalizeValue([{ op: 'trim' }, { op: 'country' }], ' Germany '); // { ok: true, value: 'DE' }
 */
export function normalizeValue(
  steps: readonly NormalizeStep[],
  value: unknown,
  defaultCallingCode?: string,
): Normalized {
  let out: Normalized = { ok: true, value };
  for (const step of steps) {
    out = applyStep(step, out.value, defaultCallingCode);
    if (!out.ok) return out;
  }
  return out;
}
