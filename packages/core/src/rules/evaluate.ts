import type { Comparison, EventCondition, EventFilter, Scalar } from './ast.ts';
import { isDateOperand } from './schema.ts';
import { compareDecimals, compareText, dateOf, lower, numberOf, textOf, valueAt } from './values.ts';

const DAY_US = 86_400_000_000n;

/** -1/0/1 of v against an ordering operand (README "Comparisons"); undefined when v has no such form. */
function order(v: unknown, operand: Scalar): number | undefined {
  if (typeof operand === 'number') {
    const n = numberOf(v);
    return n && compareDecimals(n, numberOf(operand)!);
  }
  if (typeof operand === 'string' && isDateOperand(operand)) {
    const a = dateOf(v);
    const b = dateOf(operand);
    return a === undefined || b === undefined ? undefined : a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof operand === 'string') {
    const t = textOf(v);
    return t === undefined ? undefined : compareText(t, operand);
  }
  // Booleans cannot be ordered: validation refuses them, and SQL would compare nothing.
  return undefined;
}

/** Whether v equals the operand as `=` reads it; undefined when v has no such form (then `!=` is false too). */
function equals(v: unknown, operand: Scalar): boolean | undefined {
  if (typeof operand === 'number') {
    const n = numberOf(v);
    return n && compareDecimals(n, numberOf(operand)!) === 0;
  }
  const t = textOf(v);
  if (t === undefined) return undefined;
  return lower(t) === (typeof operand === 'boolean' ? String(operand) : lower(operand));
}

// Days from `today` to the next anniversary of `d` (UTC dates; 29 February is 28 February in other
// years), as cairn_days_to_anniversary; undefined when d is after today.
function daysToAnniversary(dUs: bigint, nowMs: number): number | undefined {
  const day = (ms: number) => Math.floor(ms / 86_400_000);
  const born = new Date(Number(dUs / 1000n) - (dUs % 1000n < 0n ? 1 : 0));
  const today = day(nowMs);
  if (day(born.getTime()) > today) return undefined;
  const on = (y: number) => {
    const feb29 = born.getUTCMonth() === 1 && born.getUTCDate() === 29 && !isLeap(y);
    const at = new Date(0);
    at.setUTCFullYear(y, born.getUTCMonth(), feb29 ? 28 : born.getUTCDate());
    return day(at.getTime());
  };
  const year = new Date(nowMs).getUTCFullYear();
  const next = on(year) >= today ? on(year) : on(year + 1);
  return next - today;
}

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

const isEmpty = (v: unknown) =>
  v === undefined ||
  v === null ||
  v === '' ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/**
 * Whether a value (undefined when absent) satisfies a comparison at `nowMs`, exactly as the SQL
 * compiler's `comparisonSql` decides it (README "Comparisons"): a missing or unreadable value is
 * false, never an error.
 *
 * @example
 * compareValue('42', { cmp: '>=', value: 18 }, Date.now()); // true
 */
export function compareValue(v: unknown, c: Comparison, nowMs: number): boolean {
  const now = BigInt(nowMs) * 1000n;
  switch (c.cmp) {
    case '=':
      return equals(v, c.value) === true;
    case '!=':
      return equals(v, c.value) === false;
    case '<':
      return (order(v, c.value) ?? 0) < 0;
    case '<=':
      return (order(v, c.value) ?? 1) <= 0;
    case '>':
      return (order(v, c.value) ?? 0) > 0;
    case '>=':
      return (order(v, c.value) ?? -1) >= 0;
    case 'between':
      return (order(v, c.value[0]) ?? -1) >= 0 && (order(v, c.value[1]) ?? 1) <= 0;
    case 'in': {
      // As the compiler: numbers numerically, everything else by its lower-cased text.
      const n = numberOf(v);
      const t = textOf(v);
      return c.value.some((x) =>
        typeof x === 'number'
          ? n !== undefined && compareDecimals(n, numberOf(x)!) === 0
          : t !== undefined && lower(t) === String(x).toLowerCase(),
      );
    }
    case 'contains': {
      const s = lower(c.value);
      if (Array.isArray(v)) return v.some((e) => textOf(e) !== undefined && lower(textOf(e)!) === s);
      const t = textOf(v);
      return t !== undefined && lower(t).includes(s);
    }
    case 'starts_with': {
      const t = textOf(v);
      return t !== undefined && lower(t).startsWith(lower(c.value));
    }
    case 'regex': {
      const t = textOf(v);
      // POSIX `~`: `.` and negated brackets match a newline too, hence `s`.
      return t !== undefined && new RegExp(c.value, 's').test(t);
    }
    case 'exists':
      return v !== undefined && v !== null;
    case 'is_empty':
      return isEmpty(v);
    case 'within_last': {
      const d = dateOf(v);
      return d !== undefined && now - BigInt(c.days) * DAY_US < d && d <= now;
    }
    case 'within_next': {
      const d = dateOf(v);
      return d !== undefined && now <= d && d < now + BigInt(c.days) * DAY_US;
    }
    case 'older_than': {
      const d = dateOf(v);
      return d !== undefined && d <= now - BigInt(c.days) * DAY_US;
    }
    case 'anniversary_within': {
      const d = dateOf(v);
      if (d === undefined || d > now) return false;
      const days = daysToAnniversary(d, nowMs);
      return days !== undefined && days <= c.days;
    }
  }
}

/**
 * The path a condition reads, from the event's root: a property lives under `properties`.
 *
 * @example
 * conditionPath({ property: 'total', cmp: 'exists' }); // ['properties', 'total']
 */
export function conditionPath(c: Exclude<EventCondition, { not: unknown }>): string[] {
  return 'property' in c ? ['properties', ...c.property.split('.')] : c.field.split('.');
}

/**
 * The event's name as the events table keeps it (`events.event`): a track event's `event`, a page's
 * or screen's `name`; none for the other types.
 *
 * @example
 * eventName({ type: 'page', name: 'Pricing' }); // 'Pricing'
 */
export function eventName(event: Record<string, unknown>): string | undefined {
  const name =
    event.type === 'track' ? event.event : event.type === 'page' || event.type === 'screen' ? event.name : undefined;
  return typeof name === 'string' ? name : undefined;
}

const listOf = <T>(x: T | T[] | undefined): T[] | undefined =>
  x === undefined ? undefined : Array.isArray(x) ? x : [x];

/**
 * Whether one event (as stored: the Segment fields, `properties`, `context`, ...) matches an event
 * filter of the rule language, decided in memory exactly as the SQL compiler (`compileEventFilter`)
 * decides it over the events table. `nowMs` is the instant relative dates compare against
 * (`within_last`, ...): the caller's clock.
 *
 * @example
 * matchEvent(
 *   { event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 100 }] },
 *   { type: 'track', event: 'Order Completed', properties: { total: 120 } },
 *   Date.now(),
 * ); // true
 */
export function matchEvent(filter: EventFilter, event: Record<string, unknown>, nowMs: number): boolean {
  const types = listOf(filter.type);
  if (types && !types.includes(event.type as never)) return false;
  const names = listOf(filter.event);
  if (names) {
    const name = eventName(event);
    if (name === undefined || !names.includes(name)) return false;
  }
  for (const c of filter.where ?? []) {
    const holds = 'not' in c ? !holdsOn(event, c.not, nowMs) : holdsOn(event, c, nowMs);
    if (!holds) return false;
  }
  return true;
}

function holdsOn(event: Record<string, unknown>, c: Exclude<EventCondition, { not: unknown }>, nowMs: number) {
  return compareValue(valueAt(event, conditionPath(c)), c, nowMs);
}
