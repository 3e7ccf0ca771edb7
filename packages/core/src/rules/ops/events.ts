import type { AggregateRule, EventMatch, OccurrenceRule, PerformedRule, TimeRef, Window } from '../ast.ts';
import { normalizeDate } from '../schema.ts';
import { col, type Fragment, join, sql } from '../sql.ts';
import { comparisonSql, describeComparison, numericSql } from './compare.ts';
import type { Operator } from './types.ts';

const UNIT_MS = { minutes: 60_000, hours: 3_600_000, days: 86_400_000 } as const;
const iso = (ms: number) => new Date(ms).toISOString();

// Fixed dates go as `::text::timestamptz`: see `ordered` in compare.ts.
export function windowSql(w: Window | undefined, nowMs: number): Fragment {
  if (!w) return sql``;
  if ('last' in w)
    return sql` AND e.timestamp > ${iso(nowMs - w.last * UNIT_MS[w.unit])}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz`;
  return sql` AND e.timestamp >= ${normalizeDate(w.from)}::text::timestamptz AND e.timestamp < ${normalizeDate(w.to)}::text::timestamptz`;
}

export function propertyPath(path: string): string[] {
  return ['properties', ...path.split('.')];
}

export function filtersSql(m: EventMatch, nowMs: number): Fragment {
  if (!m.where?.length) return sql``;
  return sql` AND ${join(
    m.where.map(
      (f) => sql`coalesce(${comparisonSql(sql`(e.payload #> ${propertyPath(f.property)}::text[])`, f, nowMs)}, false)`,
    ),
    sql` AND `,
  )}`;
}

// The profile's events of one name, filtered, in a window, aggregated by `select` per profile.
function eventRelation(m: EventMatch, select: Fragment, w: Window | undefined, nowMs: number): Fragment {
  return sql`
      SELECT e.profile_id AS id, ${select} AS v
      FROM events e
      JOIN scope s ON s.id = e.profile_id
      WHERE e.event = ${m.event}::text${m.type ? sql` AND e.type = ${m.type}::text` : sql``}${windowSql(w, nowMs)}${filtersSql(m, nowMs)}
      GROUP BY e.profile_id`;
}

// A relative window's truth changes when events leave it (timestamp passes now - N) or enter it
// (an event dated ahead of its arrival reaches now): profiles with such events between since and now.
export function windowEdges(m: EventMatch, w: Window | undefined, sinceMs: number, nowMs: number): Fragment | null {
  if (!w || !('last' in w)) return null;
  const span = w.last * UNIT_MS[w.unit];
  return sql`SELECT e.profile_id AS id FROM events e
    WHERE e.event = ${m.event}::text AND e.profile_id IS NOT NULL
      AND ((e.timestamp >= ${iso(sinceMs - span)}::timestamptz AND e.timestamp <= ${iso(nowMs - span)}::timestamptz)
        OR (e.timestamp >= ${iso(sinceMs)}::timestamptz AND e.timestamp <= ${iso(nowMs)}::timestamptz
          -- only events dated ahead of their arrival enter a window by time; the others came with their own batch
          AND e.timestamp > e.received_at))`;
}

export function describeMatch(m: EventMatch): string {
  const where = m.where?.length
    ? ` where ${m.where.map((f) => `${f.property} ${describeComparison(f)}`).join(' and ')}`
    : '';
  return `${m.type && m.type !== 'track' ? `${m.type} ` : ''}"${m.event}"${where}`;
}

export function describeWindow(w: Window | undefined): string {
  if (!w) return '';
  if ('last' in w) return ` in the last ${w.last} ${w.last === 1 ? w.unit.replace(/s$/, '') : w.unit}`;
  return ` between ${w.from} and ${w.to}`;
}

function addEvent(m: EventMatch, w: Window | undefined, deps: { events: Set<string>; timeBound: boolean }) {
  deps.events.add(m.event);
  if (w && 'last' in w) deps.timeBound = true;
}

/**
 * The least count `performed` accepts: `min`, else 1 — or 0 when only `max` is given, so that
 * `max: 0` is "never" and `max: 3` is "at most 3 times" (as described), not a rule nobody can match.
 */
const minOf = (r: PerformedRule) => r.min ?? (r.max === undefined ? 1 : 0);

/** Performed an event between min and max times in a window. */
export const performed: Operator<PerformedRule> = {
  compile(r, ctx) {
    const a = ctx.relation(eventRelation(r, sql`count(*)`, r.within, ctx.nowMs));
    const n = sql`coalesce(${col(a, 'v')}, 0)`;
    const min = minOf(r);
    const truth = r.max === undefined ? sql`${n} >= ${min}::int` : sql`(${n} >= ${min}::int AND ${n} <= ${r.max}::int)`;
    return { truth, value: n };
  },
  dependencies: (r, deps) => addEvent(r, r.within, deps),
  edges: (r, since, now) => windowEdges(r, r.within, since, now),
  describe(r) {
    const min = minOf(r);
    const times =
      r.max === 0
        ? 'never'
        : r.max === undefined
          ? min === 1
            ? ''
            : ` at least ${min} times`
          : min === r.max
            ? ` exactly ${min} times`
            : min === 0
              ? ` at most ${r.max} times`
              : ` between ${min} and ${r.max} times`;
    return r.max === 0
      ? `never performed ${describeMatch(r)}${describeWindow(r.within)}`
      : `performed ${describeMatch(r)}${times}${describeWindow(r.within)}`;
  },
};

/** count / sum / avg / min / max of an event property in a window, compared to a number. */
export const aggregate: Operator<AggregateRule> = {
  compile(r, ctx) {
    const prop = r.property ? sql`cairn_num(e.payload #> ${propertyPath(r.property)}::text[])` : sql`NULL`;
    const select =
      r.fn === 'count'
        ? sql`count(*)`
        : r.fn === 'sum'
          ? sql`sum(${prop})`
          : r.fn === 'avg'
            ? sql`avg(${prop})`
            : r.fn === 'min'
              ? sql`min(${prop})`
              : sql`max(${prop})`;
    const a = ctx.relation(eventRelation(r, select, r.within, ctx.nowMs));
    const value = r.fn === 'count' || r.fn === 'sum' ? sql`coalesce(${col(a, 'v')}, 0)` : col(a, 'v');
    return { truth: sql`coalesce(${numericSql(value, r)}, false)`, value };
  },
  dependencies: (r, deps) => addEvent(r, r.within, deps),
  edges: (r, since, now) => windowEdges(r, r.within, since, now),
  describe: (r) =>
    `${r.fn}${r.property ? ` of ${r.property}` : ''} over ${describeMatch(r)}${describeWindow(r.within)} ${describeComparison(r)}`,
};

function refSql(ref: TimeRef, nowMs: number): Fragment {
  return 'daysAgo' in ref
    ? sql`${iso(nowMs - ref.daysAgo * UNIT_MS.days)}::timestamptz`
    : sql`${normalizeDate(ref.date)}::text::timestamptz`;
}

/** The first or last occurrence of an event before and/or after a time. */
export const occurrence: Operator<OccurrenceRule> = {
  compile(r, ctx) {
    const a = ctx.relation(
      eventRelation(r, r.which === 'first' ? sql`min(e.timestamp)` : sql`max(e.timestamp)`, undefined, ctx.nowMs),
    );
    const t = col(a, 'v');
    const parts: Fragment[] = [sql`${t} IS NOT NULL`];
    if (r.before) parts.push(sql`${t} < ${refSql(r.before, ctx.nowMs)}`);
    if (r.after) parts.push(sql`${t} >= ${refSql(r.after, ctx.nowMs)}`);
    return { truth: sql`coalesce(${join(parts, sql` AND `)}, false)`, value: t };
  },
  dependencies(r, deps) {
    deps.events.add(r.event);
    if ((r.before && 'daysAgo' in r.before) || (r.after && 'daysAgo' in r.after)) deps.timeBound = true;
  },
  edges(r, since, now) {
    const spans = [r.before, r.after].flatMap((x) => (x && 'daysAgo' in x ? [x.daysAgo * UNIT_MS.days] : []));
    if (!spans.length) return null;
    return sql`SELECT e.profile_id AS id FROM events e
      WHERE e.event = ${r.event}::text AND e.profile_id IS NOT NULL AND (${join(
        spans.map(
          (span) =>
            sql`(e.timestamp >= ${iso(since - span)}::timestamptz AND e.timestamp <= ${iso(now - span)}::timestamptz)`,
        ),
        sql` OR `,
      )})`;
  },
  describe(r) {
    const ref = (x: TimeRef) => ('daysAgo' in x ? `${x.daysAgo} days ago` : x.date);
    const parts = [r.before ? `before ${ref(r.before)}` : '', r.after ? `on or after ${ref(r.after)}` : ''].filter(
      Boolean,
    );
    return `the ${r.which} ${describeMatch(r)} was ${parts.join(' and ')}`;
  },
};
