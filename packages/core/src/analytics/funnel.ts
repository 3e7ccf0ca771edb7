import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, join, sql } from '../rules/sql.ts';

/**
 * How a funnel's steps must follow each other: `sequential` in order with other events allowed
 * between; `strict` in order with no other event of the person between consecutive steps (identify
 * calls do not count as other events); `any`: the steps in any order.
 */
export type FunnelOrder = 'sequential' | 'strict' | 'any';
export const FUNNEL_ORDERS: readonly FunnelOrder[] = ['sequential', 'strict', 'any'];

/** Bounds of a funnel query: steps, exclusions, the conversion window. */
export const FUNNEL_LIMITS = { minSteps: 2, maxSteps: 20, maxExclusions: 10, maxWindowDays: 366 } as const;

/** A conversion window's units, as exact durations (a day is 24 hours, also across DST changes). */
export const WINDOW_UNITS = { minutes: 60_000, hours: 3_600_000, days: 86_400_000 } as const;
export type WindowUnit = keyof typeof WINDOW_UNITS;

/** What the per-person pass needs to know of a funnel (instants in ms since the epoch). */
export interface FunnelPass {
  /** How many steps (2..20). */
  steps: number;
  order: FunnelOrder;
  /** The conversion window from the entry event; a step exactly at its end still counts. */
  windowMs: number;
  /** Entries count from `from` (inclusive) to `to` (exclusive). */
  from: number;
  to: number;
  /** Nothing after this instant counts (the query's now). */
  until: number;
  /** Exclusion `b` (bit b of {@link FunnelEvent.exclusions}) spoils an attempt between its steps `between` (1-based). */
  exclusions: readonly { between: readonly [number, number] }[];
}

/** One event of a person as the pass reads it, in the person's (timestamp, id) order. */
export interface FunnelEvent {
  /** Its timestamp, ms. */
  t: number;
  /** Bit k set: the event matches step k + 1. */
  steps: number;
  /** Bit b set: the event matches exclusion b. */
  exclusions: number;
  /** An identify call (never an "other" event in strict order). */
  identify: boolean;
  /** The breakdown value when it is the entry (JSON text), or null. */
  group: string | null;
}

/** A person's best attempt: the furthest step reached, the earliest such attempt on ties. */
export interface FunnelAttempt {
  /** The entry instant, ms. */
  start: number;
  /** Steps reached (1..steps). */
  reached: number;
  /** When each step reached was reached, ms (length `reached`). */
  times: number[];
  /** The entry event's breakdown value (JSON text) or null. */
  group: string | null;
}

/**
 * Folds one person's events (ordered by timestamp, then id) into their best attempt, or null when
 * no attempt enters the funnel (no entry event in the range, or every attempt spoiled by an exclusion).
 * Every entry event in the range starts an attempt: `sequential` takes the earliest next step
 * after each step, `strict` only the very next event (identify calls skipped), `any` grows the set of
 * distinct steps matched (one event counts for one step) event by event; an attempt ends at the window.
 * An attempt with an excluded event strictly between its steps i and j (or, short of step j, after
 * step i up to the window's end) is discarded.
 *
 * @example
 * foldFunnel(
 *   { steps: 2, order: 'sequential', windowMs: 3_600_000, from: 0, to: 10_000, until: 1e13, exclusions: [] },
 *   [
 *     { t: 1_000, steps: 1, exclusions: 0, identify: false, group: null },
 *     { t: 5_000, steps: 2, exclusions: 0, identify: false, group: null },
 *   ],
 * ); // { start: 1000, reached: 2, times: [1000, 5000], group: null }
 */
export function foldFunnel(pass: FunnelPass, events: readonly FunnelEvent[]): FunnelAttempt | null {
  let best: FunnelAttempt | null = null;
  const entryMask = pass.order === 'any' ? (1 << pass.steps) - 1 : 1;
  // A person with many entries (a busy one) would make each walk scan the window again: sequential
  // walks jump through next-occurrence tables instead, and any-order walks are skipped when the steps
  // present in the window (counted with a sliding window) cannot beat the best attempt.
  const next = pass.order === 'sequential' ? nextTables(pass.steps, events) : null;
  const window = pass.order === 'any' ? slidingSteps(pass.steps, events) : null;
  for (let s = 0; s < events.length; s++) {
    const e = events[s]!;
    if (e.t < pass.from) continue;
    if (e.t >= pass.to || e.t > pass.until) break;
    if (!(e.steps & entryMask)) continue;
    const end = Math.min(e.t + pass.windowMs, pass.until);
    if (window && window.present(s, end) <= (best?.reached ?? 0)) continue;
    const levels = next
      ? walkNext(pass.steps, events, next, s, end)
      : pass.order === 'any'
        ? walkAny(pass.steps, events, s, end)
        : walkOrdered(pass, events, s, end);
    if (best && levels.length <= best.reached) continue;
    if (spoiled(pass, events, levels, end)) continue;
    best = { start: e.t, reached: levels.length, times: levels.map((i) => events[i]!.t), group: e.group };
    if (best.reached === pass.steps) break;
  }
  return best;
}

// next[k][i]: the first position at or after i whose event matches step k + 1 (-1: none).
function nextTables(steps: number, events: readonly FunnelEvent[]): Int32Array[] {
  const n = events.length;
  return Array.from({ length: steps }, (_, k) => {
    const next = new Int32Array(n + 1);
    next[n] = -1;
    for (let i = n - 1; i >= 0; i--) next[i] = events[i]!.steps & (1 << k) ? i : next[i + 1]!;
    return next;
  });
}

// Sequential: each next step is the earliest match after the step before, within the window.
function walkNext(
  steps: number,
  events: readonly FunnelEvent[],
  next: readonly Int32Array[],
  s: number,
  end: number,
): number[] {
  const levels = [s];
  for (let k = 1; k < steps; k++) {
    const j = next[k]![levels[k - 1]! + 1]!;
    if (j < 0 || events[j]!.t > end) break;
    levels.push(j);
  }
  return levels;
}

// How many distinct steps the events in [s, end] match at all (an upper bound of any-order reach).
// Starts are asked in increasing order, and so are their ends: both edges only move forward.
function slidingSteps(steps: number, events: readonly FunnelEvent[]) {
  const count = new Int32Array(steps);
  let lo = 0;
  let hi = 0;
  let present = 0;
  const add = (m: number, d: number) => {
    for (let b = 0; b < steps; b++) {
      if (!(m & (1 << b))) continue;
      const before = count[b]!;
      count[b] = before + d;
      if (before === 0 && d > 0) present++;
      if (before === 1 && d < 0) present--;
    }
  };
  return {
    present(s: number, end: number): number {
      for (; lo < s; lo++) if (lo < hi) add(events[lo]!.steps, -1);
      if (hi < s) hi = s;
      for (; hi < events.length && events[hi]!.t <= end; hi++) add(events[hi]!.steps, 1);
      return present;
    },
  };
}

// The positions of the steps reached, in order (sequential or strict).
function walkOrdered(pass: FunnelPass, events: readonly FunnelEvent[], s: number, end: number): number[] {
  const levels = [s];
  const strict = pass.order === 'strict';
  for (let i = s + 1; i < events.length && levels.length < pass.steps; i++) {
    const x = events[i]!;
    if (x.t > end) break;
    if (x.steps & (1 << levels.length)) levels.push(i);
    else if (strict && !x.identify) break;
  }
  return levels;
}

// Any order: the positions at which the number of distinct steps matched (a maximum matching of
// events to steps, grown by augmenting paths as each event arrives) reached 1, 2, ...
function walkAny(steps: number, events: readonly FunnelEvent[], s: number, end: number): number[] {
  const owner = new Array<number>(steps).fill(-1);
  const levels: number[] = [];
  let seen = 0;
  const augment = (i: number): boolean => {
    const m = events[i]!.steps;
    for (let b = 0; b < steps; b++) {
      if (!(m & (1 << b)) || seen & (1 << b)) continue;
      seen |= 1 << b;
      if (owner[b] === -1 || augment(owner[b]!)) {
        owner[b] = i;
        return true;
      }
    }
    return false;
  };
  for (let i = s; i < events.length && levels.length < steps; i++) {
    const x = events[i]!;
    if (x.t > end) break;
    if (!x.steps) continue;
    seen = 0;
    if (augment(i)) levels.push(i);
  }
  return levels;
}

function spoiled(pass: FunnelPass, events: readonly FunnelEvent[], levels: readonly number[], end: number): boolean {
  for (let b = 0; b < pass.exclusions.length; b++) {
    const [i, j] = pass.exclusions[b]!.between;
    if (levels.length < i) continue;
    const bit = 1 << b;
    const last = levels.length >= j ? levels[j - 1]! - 1 : events.length - 1;
    for (let p = levels[i - 1]! + 1; p <= last; p++) {
      const x = events[p]!;
      if (x.t > end) break;
      if (x.exclusions & bit) return true;
    }
  }
  return false;
}

/** One step of a funnel answer. */
export interface FunnelStepStats {
  step: number;
  /** People whose best attempt reached this step. */
  entered: number;
  /** % of the previous step's people (100 for step 1; null when nobody entered). */
  fromPrevious: number | null;
  /** % of step 1's people. */
  fromFirst: number | null;
  /** People who reached the previous step but not this one (0 for step 1). */
  dropOff: number;
  /** Median and average time from the previous step, seconds (null for step 1 or nobody). */
  medianSeconds: number | null;
  averageSeconds: number | null;
}

/** Counts of one set of people (everyone, a breakdown group, a time bucket). */
export interface FunnelCounts {
  /** `entered[k]`: people who reached step k + 1. */
  entered: number[];
  /** `durations[k]`: ms from step k to step k + 1, one per person who reached step k + 1 (k ≥ 1). */
  durations: number[][];
}

/**
 * Empty counts for a funnel of `steps` steps.
 *
 * @example
 * const all = funnelCounts(3);
 * addAttempt(all, attempt);
 */
export function funnelCounts(steps: number): FunnelCounts {
  return { entered: new Array(steps).fill(0), durations: Array.from({ length: steps }, () => []) };
}

/**
 * Counts one person's best attempt.
 *
 * @example
 * addAttempt(all, { start: 0, reached: 2, times: [0, 4_000], group: null });
 */
export function addAttempt(counts: FunnelCounts, attempt: FunnelAttempt): void {
  for (let k = 0; k < attempt.reached; k++) {
    counts.entered[k]!++;
    if (k) counts.durations[k]!.push(attempt.times[k]! - attempt.times[k - 1]!);
  }
}

/**
 * The per-step answer of a set of counts: people, conversion from the previous step and from the
 * first (%, two decimals), drop-off, median (middle two averaged) and average time to convert in
 * seconds (to the millisecond).
 *
 * @example
 * funnelStepStats(all)[1]; // { step: 2, entered: 1, fromPrevious: 100, fromFirst: 100, dropOff: 0, medianSeconds: 4, averageSeconds: 4 }
 */
export function funnelStepStats(counts: FunnelCounts): FunnelStepStats[] {
  const first = counts.entered[0]!;
  return counts.entered.map((entered, k) => {
    const previous = k ? counts.entered[k - 1]! : entered;
    const d = counts.durations[k]!;
    return {
      step: k + 1,
      entered,
      fromPrevious: percent(entered, previous),
      fromFirst: percent(entered, first),
      dropOff: previous - entered,
      medianSeconds: k && d.length ? Math.round(median(d)) / 1000 : null,
      averageSeconds: k && d.length ? Math.round(d.reduce((a, b) => a + b, 0) / d.length) / 1000 : null,
    };
  });
}

const percent = (a: number, b: number) => (b ? Math.round((a / b) * 10_000) / 100 : null);

function median(xs: number[]): number {
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** What the funnel statements are built from. */
export interface FunnelQuery {
  steps: readonly EventFilter[];
  exclusions: readonly EventFilter[];
  order: FunnelOrder;
  /** Entries in [from, to); ISO instants. */
  from: string;
  to: string;
  windowMs: number;
  now: Date;
  /** The entry event's property (a dot path below `properties`), or a trait of the person. */
  breakdown?: { property: string } | { trait: string };
  /** Only people whose profile id sorts after this one (paging). */
  after?: string;
}

// The step and exclusion bits of an events row `e`, the condition that a row may enter, and the bounds.
function parts(q: FunnelQuery) {
  const match = (f: EventFilter) => compileEventFilter(f, { now: q.now, alias: 'e' });
  const bits = (filters: readonly EventFilter[]) =>
    filters.length
      ? sql`(${join(
          filters.map((f, k) => sql`CASE WHEN ${match(f)} THEN ${1 << k}::int ELSE 0 END`),
          sql` | `,
        )})`
      : sql`0`;
  const entry = q.order === 'any' ? join(q.steps.map(match), sql` OR `) : match(q.steps[0]!);
  const any = join([...q.steps, ...q.exclusions].map(match), sql` OR `);
  // Strict order needs every other event of the person (identify calls aside) to see what lies between steps.
  const fetched = q.order === 'strict' ? sql`(e.type <> 'identify' OR ${any})` : sql`(${any})`;
  const until = new Date(Date.parse(q.to) + q.windowMs).toISOString();
  const now = q.now.toISOString();
  const after = q.after ? sql`AND e.profile_id > ${q.after}::uuid` : sql``;
  const group = !q.breakdown
    ? sql`NULL::text`
    : 'property' in q.breakdown
      ? sql`CASE WHEN (${entry}) THEN nullif(e.payload #> ${['properties', ...q.breakdown.property.split('.')]}::text[], 'null')::text END`
      : // Only entries need it (the pass reads an attempt's group from its entry event).
        sql`CASE WHEN (${entry}) THEN (SELECT nullif(pt.value, 'null')::text FROM profile_traits pt WHERE pt.profile_id = e.profile_id AND pt.key = ${q.breakdown.trait}::text) END`;
  const names = nameList([...q.steps, ...q.exclusions]);
  // Every filter names its events: one `event = ANY` lets the (event, timestamp) index serve the scan.
  const named = names && q.order !== 'strict' ? sql`AND e.event = ANY(${names}::text[])` : sql``;
  // The people with an entry in the range: the rows read are theirs only.
  const entered = sql`
    SELECT e.profile_id
    FROM events e
    WHERE e.profile_id IS NOT NULL
      AND e.timestamp >= ${q.from}::timestamptz
      AND e.timestamp < ${q.to}::timestamptz
      AND e.timestamp <= ${now}::timestamptz
      AND (${entry}) ${after}`;
  const rows = sql`
    SELECT e.profile_id, e.timestamp, e.id,
      ${bits(q.steps)} AS s,
      ${bits(q.exclusions)} AS x,
      e.type = 'identify' AS i,
      ${group} AS g
    FROM events e
    WHERE e.profile_id IN (${entered})
      AND e.timestamp >= ${q.from}::timestamptz
      AND e.timestamp < ${until}::timestamptz
      AND e.timestamp <= ${now}::timestamptz
      AND ${fetched}`;
  // The packed pass reads every person with a matching event in the window and leaves those with no
  // entry to the fold (it finds no attempt): a semi-join on the entrants cost more than it saved.
  const packed = (joined: Fragment) => sql`
    FROM events e ${joined}
    WHERE e.profile_id IS NOT NULL
      AND e.timestamp >= ${q.from}::timestamptz
      AND e.timestamp < ${until}::timestamptz
      AND e.timestamp <= ${now}::timestamptz
      AND ${fetched} ${named} ${after}`;
  return { rows, packed, bits };
}

// The event names every filter is limited to (null when one matches any name).
function nameList(filters: readonly EventFilter[]): string[] | null {
  const names = new Set<string>();
  for (const f of filters) {
    if (f.event === undefined) return null;
    for (const n of typeof f.event === 'string' ? [f.event] : f.event) names.add(n);
  }
  return [...names];
}

// A row's timestamp in whole ms, as float8 arithmetic (extract() is numeric, slower per row).
const ms = sql`round(date_part('epoch', r.timestamp) * 1000)`;

/**
 * The statement of the streamed pass: the events that match a step or an exclusion (in strict order
 * every event but identify calls) of the people with an entry in the range, from the range's start to
 * the window past its end (never past now), ordered by (profile, timestamp, id), one row per event:
 * `p` profile id, `t` ms, `s` step bits, `x` exclusion bits, `i` identify, `g` breakdown JSON text.
 * Read it with a cursor and fold each person's rows with {@link foldFunnel}.
 *
 * @example
 * const q = funnelEventsQuery({ steps: [{ event: 'Product Viewed' }, { event: 'Order Completed' }],
 *   exclusions: [], order: 'sequential', from, to, windowMs: 86_400_000, now: new Date() });
 */
export function funnelEventsQuery(q: FunnelQuery): Fragment {
  return sql`
    SELECT r.profile_id::text AS p, ${ms} AS t, r.s, r.x, r.i, r.g
    FROM (${parts(q).rows}) r
    ORDER BY r.profile_id, r.timestamp, r.id`;
}

/**
 * The same rows as {@link funnelEventsQuery}, gathered per person in SQL (array_agg in (timestamp, id)
 * order), one row per person ordered by profile id: `p`, and arrays `t`, `s`, `x`, `i`, `g`. The
 * alternative measured against the streamed rows (docs/analytics.md).
 *
 * @example
 * const q = funnelArraysQuery(query); // rows { p, t: number[], s: number[], x: number[], i: boolean[], g: (string|null)[] }
 */
export function funnelArraysQuery(q: FunnelQuery): Fragment {
  return sql`
    SELECT r.profile_id::text AS p,
      array_agg(${ms} ORDER BY r.timestamp, r.id) AS t,
      array_agg(r.s ORDER BY r.timestamp, r.id) AS s,
      array_agg(r.x ORDER BY r.timestamp, r.id) AS x,
      array_agg(r.i ORDER BY r.timestamp, r.id) AS i,
      -- As JSON: the driver reads a NULL inside a text[] as the string NULL.
      array_to_json(array_agg(r.g ORDER BY r.timestamp, r.id)) AS g
    FROM (${parts(q).rows}) r
    GROUP BY r.profile_id
    ORDER BY r.profile_id`;
}

/** How many groups {@link funnelPackedQuery} packs people in (by their id's first byte). */
export const FUNNEL_PACKS = 256;
// A packed event's code: step bits 0..19, exclusion bits 20..29 (at most 10), identify bit 30.
const EXCLUSION_SHIFT = 20;
const IDENTIFY_BIT = 1 << 30;

/**
 * The rows of {@link funnelEventsQuery} without a breakdown, packed: people are grouped by the first
 * byte of their id (at most {@link FUNNEL_PACKS} rows, in that byte's order, so in profile-id order
 * across rows) or, given `bounds` (ascending profile ids, e.g. the quantiles Postgres's statistics keep),
 * by the range between two bounds (`width_bucket`, bounds + 1 rows, also in profile-id order): the first
 * byte groups evenly only random ids, while bulk-imported profiles have time-ordered (v7) ids sharing
 * their first bytes, which would all land in one row. Each row is one text `ev` of the group's events as
 * `profile ms id code` joined by commas
 * (code: step bits, exclusion bits << 20, identify << 30). Rows cost the most when read one by one
 * (1M events: ~5 s through the driver on 2 busy cores); a few large texts are read in a fraction of
 * that, and no sort runs in Postgres (a hash aggregate of 256 groups; the fold sorts each person's few
 * events). Unpack a row with {@link unpackFunnelEvents}.
 *
 * @example
 * const q = funnelPackedQuery({ steps: [{ event: 'Product Viewed' }, { event: 'Order Completed' }],
 *   exclusions: [], order: 'sequential', from, to, windowMs: 86_400_000, now: new Date() });
 */
export function funnelPackedQuery(q: FunnelQuery, bounds: readonly string[] = []): Fragment {
  const { packed, bits } = parts(q);
  const pack = bounds.length
    ? sql`JOIN generate_series(0, ${bounds.length}::int) k(b) ON k.b = width_bucket(e.profile_id, ${bounds as string[]}::uuid[])`
    : sql`JOIN generate_series(0, ${FUNNEL_PACKS - 1}::int) k(b) ON k.b = get_byte(uuid_send(e.profile_id), 0)`;
  const code = sql`(${bits(q.steps)} | (${bits(q.exclusions)} << ${EXCLUSION_SHIFT}::int) | CASE WHEN e.type = 'identify' THEN ${IDENTIFY_BIT}::int ELSE 0 END)`;
  return sql`
    SELECT k.b,
      string_agg(concat_ws(' ', e.profile_id, round(date_part('epoch', e.timestamp) * 1000)::int8, e.id, ${code}), ',') AS ev
    ${packed(pack)}
    GROUP BY k.b
    ORDER BY k.b`;
}

/** One person's events as {@link unpackFunnelEvents} gives them. */
export interface PackedPerson {
  profile: string;
  /** In (timestamp, id) order. */
  events: FunnelEvent[];
}

/**
 * The people of one row of {@link funnelPackedQuery}, in profile-id order, each with their events in
 * (timestamp, id) order (no breakdown: `group` is null).
 *
 * @example
 * unpackFunnelEvents('6f1c… 1767225600000 42 1,6f1c… 1767225660000 43 2');
 * // [{ profile: '6f1c…', events: [{ t: 1767225600000, steps: 1, ... }, { t: 1767225660000, steps: 2, ... }] }]
 */
export function unpackFunnelEvents(packed: string): PackedPerson[] {
  const people = new Map<string, { t: number; id: string; code: number }[]>();
  for (const item of packed.split(',')) {
    const [profile, t, id, code] = item.split(' ') as [string, string, string, string];
    const list = people.get(profile);
    const e = { t: Number(t), id, code: Number(code) };
    if (list) list.push(e);
    else people.set(profile, [e]);
  }
  // uuid text sorts as Postgres sorts uuids (fixed-width lowercase hex); ids as numbers of any length.
  return [...people.keys()].sort().map((profile) => ({
    profile,
    events: people
      .get(profile)!
      .sort((a, b) => a.t - b.t || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((e) => ({
        t: e.t,
        steps: e.code & ((1 << EXCLUSION_SHIFT) - 1),
        exclusions: (e.code >> EXCLUSION_SHIFT) & ((1 << FUNNEL_LIMITS.maxExclusions) - 1),
        identify: (e.code & IDENTIFY_BIT) !== 0,
        group: null,
      })),
  }));
}
