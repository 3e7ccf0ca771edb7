/**
 * The value forms of the rules README ("Value forms"), in memory, exactly as the SQL functions of
 * the server's migrations read jsonb (`cairn_num`, `cairn_text`, `cairn_ts`): the in-memory evaluator
 * (evaluate.ts) must agree with the SQL compiler on every value, so numbers are exact decimals (as
 * Postgres' numeric), not doubles, and times are microseconds (as timestamptz), not milliseconds.
 */

/** An exact decimal: n / 10^s. */
export interface Decimal {
  n: bigint;
  s: number;
}

const NUMBER_TEXT = /^-?[0-9]+(\.[0-9]+)?$/;
const JSON_NUMBER = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i;

function decimalOf(text: string): Decimal {
  const m = JSON_NUMBER.exec(text);
  if (!m) throw new Error(`not a decimal: ${text}`);
  let digits = m[2]! + (m[3] ?? '');
  let s = (m[3] ?? '').length - Number(m[4] ?? 0);
  if (s < 0) {
    digits += '0'.repeat(-s);
    s = 0;
  }
  return { n: BigInt(m[1] + digits), s };
}

/** A decimal as Postgres prints a numeric (plain digits, its own scale): `1e21` is `1000000000000000000000`. */
function decimalText(d: Decimal): string {
  const digits = (d.n < 0n ? -d.n : d.n).toString().padStart(d.s + 1, '0');
  const sign = d.n < 0n ? '-' : '';
  return d.s ? `${sign}${digits.slice(0, -d.s)}.${digits.slice(-d.s)}` : `${sign}${digits}`;
}

/**
 * -1, 0 or 1: a against b.
 *
 * @example
 * compareDecimals(numberOf('0.30000000000000001')!, numberOf(0.3)!); // 1
 */
export function compareDecimals(a: Decimal, b: Decimal): number {
  const s = Math.max(a.s, b.s);
  const x = a.n * 10n ** BigInt(s - a.s);
  const y = b.n * 10n ** BigInt(s - b.s);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * number(v) (`cairn_num`): a JSON number, or a string of plain decimal digits; otherwise undefined.
 * A JavaScript number is read through its JSON text, as Postgres reads the stored event.
 *
 * @example
 * numberOf('42'); // { n: 42n, s: 0 }
 */
export function numberOf(v: unknown): Decimal | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? decimalOf(JSON.stringify(v)) : undefined;
  if (typeof v === 'string' && NUMBER_TEXT.test(v)) return decimalOf(v);
  return undefined;
}

/**
 * text(v) (`cairn_text`): a string as is, a number as Postgres prints it, a boolean as `true`/`false`.
 *
 * @example
 * textOf(1e21); // '1000000000000000000000'
 */
export function textOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  const n = numberOf(v);
  return typeof v === 'number' && n ? decimalText(n) : undefined;
}

const DATE_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

// Postgres reads a fraction of a second as a double and rounds it to microseconds with rint():
// half to even.
function microsOfFraction(digits: string): bigint {
  if (!digits) return 0n;
  const x = Number(`0.${digits}`) * 1_000_000;
  const floor = Math.floor(x);
  const rest = x - floor;
  const rounded = rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  return BigInt(rounded);
}

/**
 * date(v) (`cairn_ts`), in microseconds since the epoch: `YYYY-MM-DD`, optionally `T` or a space and
 * `HH:MM[:SS[.fraction]]` and a zone (hours up to 15); a date alone is midnight UTC, a time without
 * zone UTC; impossible dates are undefined.
 *
 * @example
 * dateOf('2026-02-18 15:01:00+0100'); // BigInt(Date.UTC(2026, 1, 18, 14, 1)) * 1000n
 */
export function dateOf(v: unknown): bigint | undefined {
  if (typeof v !== 'string') return undefined;
  const m = DATE_TEXT.exec(v);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [h, mi, s] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const daysInMonth = new Date(Date.UTC(2000, mo, 0)).getUTCDate() - (mo === 2 && !isLeap(y) ? 1 : 0);
  if (y === 0 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) return undefined;
  let offsetMs = 0;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = zone.length > 3 ? Number(zone.slice(-2)) : 0;
    if (zh > 15 || zm > 59) return undefined;
    offsetMs = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm) * 60_000;
  }
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  return BigInt(date.getTime() - offsetMs) * 1000n + microsOfFraction(m[7] ?? '');
}

/**
 * Postgres' `lower()` for the text it compares. JavaScript's lower-casing; the two agree on every
 * character but a few special cases (`İ`), which the SQL side decides by the database's locale.
 *
 * @example
 * lower('VIP'); // 'vip'
 */
export function lower(s: string): string {
  return s.toLowerCase();
}

/**
 * -1, 0 or 1: binary (code point) order, as `COLLATE "C"` compares UTF-8 text — not JavaScript's
 * UTF-16 order, which puts characters beyond U+FFFF before U+E000..U+FFFF.
 *
 * @example
 * compareText('a', 'b'); // -1
 */
export function compareText(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return Math.sign(d);
  }
  return Math.sign(x.length - y.length);
}

const ARRAY_INDEX = /^\s*[+-]?\d+$/;

/**
 * The value at a dot path as jsonb's `#>` reads it: object keys exactly, array elements by index
 * (negative from the end); undefined when any step is missing.
 *
 * @example
 * valueAt({ items: [{ sku: 'a' }] }, ['items', '0', 'sku']); // 'a'
 */
export function valueAt(root: unknown, path: readonly string[]): unknown {
  let v: unknown = root;
  for (const step of path) {
    if (Array.isArray(v)) {
      if (!ARRAY_INDEX.test(step)) return undefined;
      const i = Number.parseInt(step, 10);
      v = v[i < 0 ? v.length + i : i];
    } else if (typeof v === 'object' && v !== null) {
      v = Object.hasOwn(v, step) ? (v as Record<string, unknown>)[step] : undefined;
    } else return undefined;
  }
  return v;
}
