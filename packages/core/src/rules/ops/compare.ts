import type { Comparison, NumericComparison, Scalar } from '../ast.ts';
import { isDateOperand, normalizeDate } from '../schema.ts';
import { type Fragment, join, sql } from '../sql.ts';

const DAY_MS = 86_400_000;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

// One operand, typed as the README says: numbers numerically, date strings as dates, other strings as text.
function ordered(v: Fragment, op: string, operand: Scalar): Fragment {
  const symbol = OPERATOR_SQL[op];
  if (!symbol) throw new Error(`not an ordering operator: ${op}`);
  if (typeof operand === 'number') return sql`cairn_num(${v}) ${symbol} ${operand}::numeric`;
  // `::text` first: a timestamptz parameter is converted by the driver through JavaScript's Date,
  // which refuses zones such as `+01` (an error) and drops digits beyond the millisecond; Postgres
  // reads the text as cairn_ts reads values.
  if (typeof operand === 'string' && isDateOperand(operand))
    return sql`cairn_ts(${v}) ${symbol} ${normalizeDate(operand)}::text::timestamptz`;
  return sql`cairn_text(${v}) COLLATE "C" ${symbol} ${String(operand)}::text COLLATE "C"`;
}

const OPERATOR_SQL: Record<string, Fragment> = {
  '<': sql`<`,
  '<=': sql`<=`,
  '>': sql`>`,
  '>=': sql`>=`,
};

function equals(v: Fragment, operand: Scalar): Fragment {
  if (typeof operand === 'number') return sql`cairn_num(${v}) = ${operand}::numeric`;
  if (typeof operand === 'boolean') return sql`lower(cairn_text(${v})) = ${String(operand)}::text`;
  return sql`lower(cairn_text(${v})) = lower(${operand}::text)`;
}

function differs(v: Fragment, operand: Scalar): Fragment {
  if (typeof operand === 'number') return sql`cairn_num(${v}) <> ${operand}::numeric`;
  if (typeof operand === 'boolean') return sql`lower(cairn_text(${v})) <> ${String(operand)}::text`;
  return sql`lower(cairn_text(${v})) <> lower(${operand}::text)`;
}

/**
 * A comparison of the jsonb value `v` (NULL when absent) as SQL; NULL results count as false where used.
 *
 * @example
 * comparisonSql(sql`t.value`, { cmp: '>=', value: 18 }, Date.now());
 */
export function comparisonSql(v: Fragment, c: Comparison, nowMs: number): Fragment {
  switch (c.cmp) {
    case '=':
      return equals(v, c.value);
    case '!=':
      return differs(v, c.value);
    case '<':
    case '<=':
    case '>':
    case '>=':
      return ordered(v, c.cmp, c.value);
    case 'between':
      return sql`(${ordered(v, '>=', c.value[0])} AND ${ordered(v, '<=', c.value[1])})`;
    case 'in': {
      const numbers = c.value.filter((x): x is number => typeof x === 'number');
      const texts = c.value.filter((x) => typeof x !== 'number').map((x) => String(x).toLowerCase());
      const parts: Fragment[] = [];
      if (numbers.length) parts.push(sql`cairn_num(${v}) = ANY(${numbers}::numeric[])`);
      if (texts.length) parts.push(sql`lower(cairn_text(${v})) = ANY(${texts}::text[])`);
      return sql`(${join(parts, sql` OR `)})`;
    }
    case 'contains':
      return sql`(CASE WHEN jsonb_typeof(${v}) = 'array'
        THEN EXISTS (SELECT 1 FROM jsonb_array_elements(${v}) el WHERE lower(cairn_text(el)) = lower(${c.value}::text))
        ELSE strpos(lower(cairn_text(${v})), lower(${c.value}::text)) > 0 END)`;
    case 'starts_with':
      return sql`starts_with(lower(cairn_text(${v})), lower(${c.value}::text))`;
    case 'regex':
      return sql`cairn_text(${v}) ~ ${c.value}::text`;
    case 'exists':
      return sql`(${v} IS NOT NULL AND jsonb_typeof(${v}) <> 'null')`;
    case 'is_empty':
      return sql`(${v} IS NULL OR ${v} IN ('null'::jsonb, '""'::jsonb, '[]'::jsonb, '{}'::jsonb))`;
    case 'within_last':
      return sql`(cairn_ts(${v}) > ${iso(nowMs - c.days * DAY_MS)}::timestamptz AND cairn_ts(${v}) <= ${iso(nowMs)}::timestamptz)`;
    case 'within_next':
      return sql`(cairn_ts(${v}) >= ${iso(nowMs)}::timestamptz AND cairn_ts(${v}) < ${iso(nowMs + c.days * DAY_MS)}::timestamptz)`;
    case 'older_than':
      return sql`cairn_ts(${v}) <= ${iso(nowMs - c.days * DAY_MS)}::timestamptz`;
    case 'anniversary_within':
      return sql`(cairn_ts(${v}) <= ${iso(nowMs)}::timestamptz AND cairn_days_to_anniversary(cairn_ts(${v}), ${iso(nowMs).slice(0, 10)}::date) <= ${c.days}::int)`;
  }
}

/**
 * A numeric comparison of the SQL number `n` (an aggregate).
 *
 * @example
 * numericSql(sql`coalesce(r1.v, 0)`, { cmp: '>=', value: 1000 });
 */
export function numericSql(n: Fragment, c: NumericComparison): Fragment {
  if (c.cmp === 'between') return sql`(${n} >= ${c.value[0]}::numeric AND ${n} <= ${c.value[1]}::numeric)`;
  const symbol = c.cmp === '=' ? sql`=` : c.cmp === '!=' ? sql`<>` : OPERATOR_SQL[c.cmp]!;
  return sql`${n} ${symbol} ${c.value}::numeric`;
}

/**
 * Candidate SQL (a `SELECT <profile id> AS id`) for date comparisons whose truth changes with time:
 * values whose boundary fell between `since` and `now` (closed ranges: a superset is harmless). `rows` selects `(id, v)` pairs to look at.
 *
 * @example
 * dateEdges(sql`SELECT profile_id AS id, value AS v FROM profile_traits WHERE key = 'signed_up'`, c, a, b);
 */
export function dateEdges(rows: Fragment, c: Comparison, sinceMs: number, nowMs: number): Fragment | null {
  const ranges: [number, number][] = [];
  if (c.cmp === 'within_last') ranges.push([sinceMs - c.days * DAY_MS, nowMs - c.days * DAY_MS], [sinceMs, nowMs]);
  else if (c.cmp === 'within_next') ranges.push([sinceMs + c.days * DAY_MS, nowMs + c.days * DAY_MS], [sinceMs, nowMs]);
  else if (c.cmp === 'older_than') ranges.push([sinceMs - c.days * DAY_MS, nowMs - c.days * DAY_MS]);
  else if (c.cmp === 'anniversary_within') {
    // The answer changes only when the UTC date changes (or when a date passes now, today).
    if (iso(sinceMs).slice(0, 10) === iso(nowMs).slice(0, 10)) {
      ranges.push([sinceMs, nowMs]);
    } else {
      return sql`SELECT x.id FROM (${rows}) x WHERE cairn_ts(x.v) IS NOT NULL`;
    }
  } else return null;
  const conditions = ranges.map(
    ([a, b]) => sql`(cairn_ts(x.v) >= ${iso(a)}::timestamptz AND cairn_ts(x.v) <= ${iso(b)}::timestamptz)`,
  );
  return sql`SELECT x.id FROM (${rows}) x WHERE ${join(conditions, sql` OR `)}`;
}

/**
 * A comparison in words.
 *
 * @example
 * describeComparison({ cmp: 'in', value: ['a', 'b'] }); // 'is one of "a", "b"'
 */
export function describeComparison(c: Comparison | NumericComparison): string {
  const q = (x: Scalar) => JSON.stringify(x);
  switch (c.cmp) {
    case '=':
      return `is ${q(c.value)}`;
    case '!=':
      return `is not ${q(c.value)}`;
    case '<':
      return `is less than ${q(c.value)}`;
    case '<=':
      return `is at most ${q(c.value)}`;
    case '>':
      return `is more than ${q(c.value)}`;
    case '>=':
      return `is at least ${q(c.value)}`;
    case 'between':
      return `is between ${q(c.value[0])} and ${q(c.value[1])}`;
    case 'in':
      return `is one of ${c.value.map(q).join(', ')}`;
    case 'contains':
      return `contains ${q(c.value)}`;
    case 'starts_with':
      return `starts with ${q(c.value)}`;
    case 'regex':
      return `matches /${c.value}/`;
    case 'exists':
      return 'is set';
    case 'is_empty':
      return 'is empty or not set';
    case 'within_last':
      return `is within the last ${c.days} days`;
    case 'within_next':
      return `is within the next ${c.days} days`;
    case 'older_than':
      return `is more than ${c.days} days ago`;
    case 'anniversary_within':
      return `has its anniversary within ${c.days} days`;
  }
}
