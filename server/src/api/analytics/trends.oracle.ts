import type { EventFilter, TimeInterval, TrendBreakdown, TrendMeasure, TrendSeries } from '@cairn/core';
import { DateTime } from 'luxon';
import { expect } from 'vitest';
import type { GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

// An independent evaluator of POST /api/analytics/trends over the generated ground truth: buckets from the
// zone's offsets (luxon), people from `person`, traits from the identify events. It shares no code with
// the query builder (packages/core/src/analytics/trends.ts) or its fold.

type Interval = 'hour' | 'day' | 'week' | 'month';
type Measure = 'count' | 'people' | 'sum' | 'avg';
interface Range {
  from: string;
  to: string;
  timezone: string;
}
interface OracleSeries {
  /** What is sent as `events`. */
  events: object;
  /** The same filter, written by hand over the generated event. */
  match: (e: GeneratedEvent) => boolean;
  measure: Measure;
  property?: string;
}
interface OracleQuery {
  range: Range;
  interval: Interval;
  series: OracleSeries[];
  breakdown?: { property: string } | { trait: string };
  limit?: number;
  compare?: 'previous';
}

const HOUR = 3_600_000;
const ms = (iso: string) => Date.parse(iso);

function bucketStart(t: number, interval: Interval, zone: string): number {
  if (interval === 'hour') {
    // The local wall clock's minutes and seconds, taken off the instant (a repeated DST hour stays two buckets).
    const offsetMs = DateTime.fromMillis(t, { zone }).offset * 60_000;
    return t - ((((t + offsetMs) % HOUR) + HOUR) % HOUR);
  }
  return DateTime.fromMillis(t, { zone }).startOf(interval).toMillis();
}

function nextStart(b: number, interval: Interval, zone: string): number {
  if (interval === 'hour') return b + HOUR;
  return DateTime.fromMillis(b, { zone })
    .plus({ [interval]: 1 })
    .startOf(interval)
    .toMillis();
}

function oracleBuckets(range: Range, interval: Interval): number[] {
  const out: number[] = [];
  for (let b = bucketStart(ms(range.from), interval, range.timezone); b < ms(range.to); ) {
    out.push(b);
    b = nextStart(b, interval, range.timezone);
  }
  return out;
}

function oraclePrevious(range: Range, interval: Interval): Range {
  const from = ms(range.from);
  const to = ms(range.to);
  const zone = range.timezone;
  if (bucketStart(from, interval, zone) === from && bucketStart(to, interval, zone) === to) {
    const n = oracleBuckets(range, interval).length;
    let b = from;
    if (interval === 'hour') b = from - n * HOUR;
    else
      b = DateTime.fromMillis(from, { zone })
        .minus({ [interval]: n })
        .toMillis();
    return { from: new Date(b).toISOString(), to: new Date(from).toISOString(), timezone: zone };
  }
  return { from: new Date(from - (to - from)).toISOString(), to: new Date(from).toISOString(), timezone: zone };
}

const at = (obj: unknown, path: string): unknown =>
  path
    .split('.')
    .reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);

interface Acc {
  n: number;
  people: Set<string>;
  sum: number;
  nums: number;
}
const acc = (): Acc => ({ n: 0, people: new Set(), sum: 0, nums: 0 });
function add(a: Acc, e: GeneratedEvent, s: OracleSeries) {
  a.n++;
  a.people.add(e.person);
  const v = s.property ? at(e.body.properties, s.property) : undefined;
  if (typeof v === 'number') {
    a.sum += v;
    a.nums++;
  }
}
function measured(a: Acc | undefined, m: Measure): number | null {
  if (m === 'avg') return a?.nums ? a.sum / a.nums : null;
  if (!a) return 0;
  return m === 'count' ? a.n : m === 'people' ? a.people.size : a.sum;
}

const groupText = (v: unknown): string | null =>
  v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v);

interface Line {
  values: (number | null)[];
  total: number | null;
}

/** Per series: the overall line and the line of each raw group (before top-N). */
function evaluate(events: readonly GeneratedEvent[], q: OracleQuery, range: Range, traitOf: Map<string, unknown>) {
  const buckets = oracleBuckets(range, q.interval);
  const index = new Map(buckets.map((b, i) => [b, i]));
  return q.series.map((s) => {
    const all = { cells: new Map<number, Acc>(), total: acc() };
    const groups = new Map<string | null, { cells: Map<number, Acc>; total: Acc }>();
    for (const e of events) {
      const t = ms(e.body.timestamp);
      if (t < ms(range.from) || t >= ms(range.to) || !s.match(e)) continue;
      const i = index.get(bucketStart(t, q.interval, range.timezone))!;
      expect(i, `bucket of ${e.body.timestamp}`).toBeTypeOf('number');
      for (const line of [all, ...(q.breakdown ? [groupLine(groups, groupOf(e, q, traitOf))] : [])]) {
        add(line.cells.get(i) ?? line.cells.set(i, acc()).get(i)!, e, s);
        add(line.total, e, s);
      }
    }
    return { all, groups };
  });
}

function groupLine(groups: Map<string | null, { cells: Map<number, Acc>; total: Acc }>, g: string | null) {
  return groups.get(g) ?? groups.set(g, { cells: new Map(), total: acc() }).get(g)!;
}

function groupOf(e: GeneratedEvent, q: OracleQuery, traitOf: Map<string, unknown>): string | null {
  const b = q.breakdown!;
  return 'trait' in b ? groupText(traitOf.get(e.person)) : groupText(at(e.body.properties, b.property));
}

const lineOf = (l: { cells: Map<number, Acc>; total: Acc } | undefined, n: number, m: Measure): Line => ({
  values: Array.from({ length: n }, (_, i) => measured(l?.cells.get(i), m)),
  total: l ? measured(l.total, m) : measured(undefined, m),
});

function merged(lines: { cells: Map<number, Acc>; total: Acc }[]) {
  const out = { cells: new Map<number, Acc>(), total: acc() };
  const into = (a: Acc, b: Acc) => {
    a.n += b.n;
    for (const p of b.people) a.people.add(p);
    a.sum += b.sum;
    a.nums += b.nums;
  };
  for (const l of lines) {
    for (const [i, c] of l.cells) into(out.cells.get(i) ?? out.cells.set(i, acc()).get(i)!, c);
    into(out.total, l.total);
  }
  return out;
}

const change = (cur: number | null, prev: number | null) =>
  cur === null || prev === null || prev === 0 ? null : ((cur - prev) / Math.abs(prev)) * 100;

/** The answer the API must give to `q`, as the oracle computes it (floats rounded for comparison). */
export function expectedTrends(events: readonly GeneratedEvent[], q: OracleQuery) {
  const traitOf = new Map<string, unknown>();
  for (const e of events) if (e.body.type === 'identify' && e.body.traits) traitOf.set(e.person, e.body.traits.plan);
  const cur = evaluate(events, q, q.range, traitOf);
  const n = oracleBuckets(q.range, q.interval).length;
  const prevRange = q.compare ? oraclePrevious(q.range, q.interval) : undefined;
  const prev = prevRange ? evaluate(events, q, prevRange, traitOf) : undefined;
  const pn = prevRange ? oracleBuckets(prevRange, q.interval).length : 0;
  const series = q.series.map((s, i) => {
    const line: Line & Record<string, unknown> = { ...lineOf(cur[i]!.all, n, s.measure) };
    if (prev) {
      const p = lineOf(prev[i]!.all, pn, s.measure);
      Object.assign(line, { previous: p, change: change(line.total, p.total) });
    }
    if (!q.breakdown) return line;
    const rank = (g: { total: Acc }) => (s.measure === 'avg' ? g.total.nums : (measured(g.total, s.measure) ?? 0));
    const ranked = [...cur[i]!.groups.entries()].sort(
      ([ka, a], [kb, b]) =>
        rank(b) - rank(a) || (ka === kb ? 0 : ka === null ? 1 : kb === null ? -1 : ka < kb ? -1 : 1),
    );
    const top = ranked.slice(0, q.limit ?? 10);
    const rest = ranked.slice(q.limit ?? 10);
    const keys = top.map(([k]) => k);
    const groups: (Line & Record<string, unknown>)[] = top.map(([group, l]) => ({
      group,
      ...lineOf(l, n, s.measure),
    }));
    if (rest.length) groups.push({ group: '$other', ...lineOf(merged(rest.map(([, l]) => l)), n, s.measure) });
    if (prev) {
      const prevGroups = prev[i]!.groups;
      const prevRest = [...prevGroups.entries()].filter(([k]) => !keys.includes(k));
      if (prevRest.length && !rest.length) groups.push({ group: '$other', ...lineOf(undefined, n, s.measure) });
      for (const g of groups) {
        const p =
          g.group === '$other'
            ? prevRest.length
              ? lineOf(merged(prevRest.map(([, l]) => l)), pn, s.measure)
              : lineOf(undefined, pn, s.measure)
            : lineOf(prevGroups.get(g.group as string | null), pn, s.measure);
        Object.assign(g, { previous: p, change: change(g.total, p.total) });
      }
    }
    return { ...line, groups };
  });
  return {
    buckets: oracleBuckets(q.range, q.interval).map((b) => new Date(b).toISOString()),
    ...(prevRange
      ? {
          previous: {
            range: prevRange,
            buckets: oracleBuckets(prevRange, q.interval).map((b) => new Date(b).toISOString()),
          },
        }
      : {}),
    series: round(series),
  };
}

function round<T>(x: T): T {
  if (typeof x === 'number') return (Math.round(x * 1e6) / 1e6) as T;
  if (Array.isArray(x)) return x.map(round) as T;
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, round(v)])) as T;
  return x;
}

const named = (n: string | string[]) => (e: GeneratedEvent) =>
  e.body.type === 'track' && (Array.isArray(n) ? n.includes(e.body.event!) : e.body.event === n);

/** The queries {@link checkTrends} asks: zones, DST days, ranges cutting days, each measure, breakdowns, compare. */
export const TREND_CHECKS: OracleQuery[] = [
  {
    // Berlin's spring-forward day at hour buckets (23 of them that day), cut mid-day at both ends.
    range: { from: '2026-03-28T13:17:00+01:00', to: '2026-03-30T09:45:00+02:00', timezone: 'Europe/Berlin' },
    interval: 'hour',
    series: [
      { events: {}, match: () => true, measure: 'count' },
      { events: { event: 'Product Viewed' }, match: named('Product Viewed'), measure: 'people' },
    ],
  },
  {
    // New York's fall-back day (25 hours) at hour buckets: the repeated 01:00 is two buckets.
    range: { from: '2026-10-31T20:00:00-04:00', to: '2026-11-02T03:30:00-05:00', timezone: 'America/New_York' },
    interval: 'hour',
    series: [
      { events: { type: 'page' }, match: (e) => e.body.type === 'page', measure: 'count' },
      { events: { event: 'Order Completed' }, match: named('Order Completed'), measure: 'sum', property: 'total' },
    ],
  },
  {
    // Days across both US DST changes in New York, with a breakdown by category and the previous period.
    range: { from: '2026-03-01T00:00:00-05:00', to: '2026-03-15T00:00:00-04:00', timezone: 'America/New_York' },
    interval: 'day',
    series: [
      { events: { event: 'Product Viewed' }, match: named('Product Viewed'), measure: 'count' },
      { events: { event: 'Product Viewed' }, match: named('Product Viewed'), measure: 'people' },
    ],
    breakdown: { property: 'category' },
    compare: 'previous',
  },
  {
    // Berlin days around the autumn change, by the person's current plan, cut mid-day; avg and people.
    range: { from: '2026-10-20T06:00:00+02:00', to: '2026-10-29T18:00:00+01:00', timezone: 'Europe/Berlin' },
    interval: 'day',
    series: [
      { events: { event: 'Order Completed' }, match: named('Order Completed'), measure: 'avg', property: 'total' },
      {
        events: { event: ['Product Added', 'Checkout Started'] },
        match: named(['Product Added', 'Checkout Started']),
        measure: 'people',
      },
    ],
    breakdown: { trait: 'plan' },
    compare: 'previous',
  },
  {
    // Weeks in Berlin over the spring, top 2 categories (the rest $other), a where condition.
    range: { from: '2026-03-02T00:00:00+01:00', to: '2026-05-04T00:00:00+02:00', timezone: 'Europe/Berlin' },
    interval: 'week',
    series: [
      {
        events: { event: 'Order Completed', where: [{ property: 'coupon', cmp: '=', value: true }] },
        match: (e) => named('Order Completed')(e) && e.body.properties?.coupon === true,
        measure: 'count',
      },
      { events: {}, match: () => true, measure: 'people' },
    ],
    breakdown: { property: 'category' },
    limit: 2,
  },
  {
    // Months in UTC over the whole span, people, sum and a count (from the rollup, the previous months too),
    // compared with the months before.
    range: { from: '2026-05-01T00:00:00Z', to: '2026-11-01T00:00:00Z', timezone: 'UTC' },
    interval: 'month',
    series: [
      { events: {}, match: () => true, measure: 'people' },
      { events: { event: 'Search' }, match: named('Search'), measure: 'count' },
      { events: { event: 'Order Completed' }, match: named('Order Completed'), measure: 'sum', property: 'total' },
    ],
    compare: 'previous',
  },
  {
    // A half-hour zone (India, +05:30) at hours: buckets start at :30 UTC.
    range: { from: '2026-06-29T10:00:00Z', to: '2026-07-01T02:00:00Z', timezone: 'Asia/Kolkata' },
    interval: 'hour',
    series: [{ events: {}, match: () => true, measure: 'count' }],
  },
];

/**
 * The body of POST /analytics/trends for a query of a test (its series may carry more, e.g. the oracle's
 * `match`): only the options the query sets.
 *
 * @example
 * await h.post('/analytics/trends', trendBody({ range, interval: 'day', series: [{ events: {}, measure: 'people' }] }));
 */
export const trendBody = (q: {
  range: Range;
  interval: TimeInterval;
  series: readonly { events: EventFilter; measure: TrendMeasure; property?: string }[];
  breakdown?: TrendBreakdown;
  limit?: number;
  compare?: 'previous';
}) => ({
  range: q.range,
  interval: q.interval,
  series: q.series.map(
    (s): TrendSeries => ({
      events: s.events,
      measure: s.measure,
      ...(s.property ? { property: s.property } : {}),
    }),
  ),
  ...(q.breakdown ? { breakdown: q.breakdown } : {}),
  ...(q.limit ? { limit: q.limit } : {}),
  ...(q.compare ? { compare: q.compare } : {}),
});

/**
 * Runs {@link TREND_CHECKS} through the API and holds each answer to the oracle over `ctx.events`. Call it once
 * the `measure` queue has settled too (`settle(sql, { queues: ['measure'] })`): count tiles read the hourly
 * rollup, which the pipeline keeps a job after each attach.
 *
 * @example
 * await checkTrends({ post: h.post, events });
 */
export async function checkTrends(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  for (const q of TREND_CHECKS) {
    const res = await ctx.post('/analytics/trends', trendBody(q));
    expect(res.status, res.text).toBe(200);
    const expected = expectedTrends(ctx.events, q);
    const got = {
      buckets: res.body.buckets,
      ...(res.body.previous ? { previous: res.body.previous } : {}),
      series: round(res.body.series.map(({ name: _n, measure: _m, ...s }: Record<string, unknown>) => s)),
    };
    expect(got, JSON.stringify(q.range)).toEqual(expected);
    // Something was counted: a query that matched nothing would prove little.
    expect(expected.series[0]!.total, JSON.stringify(q.range)).not.toBe(0);
  }
}
