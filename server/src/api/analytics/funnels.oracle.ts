import { DateTime } from 'luxon';
import { expect } from 'vitest';
import { FUNNEL, type GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

// An independent evaluator of POST /api/analytics/funnels over the generated ground truth: every person
// (`person`), every candidate entry, each attempt walked by hand from the definitions in docs/analytics.md
// ("Funnels"); buckets with luxon, traits from the identify events. It shares no code with the query
// builder or the pass (packages/core/src/analytics/funnel.ts).

type Order = 'sequential' | 'strict' | 'any';
type Interval = 'hour' | 'day' | 'week' | 'month';
interface Range {
  from: string;
  to: string;
  timezone: string;
}
interface OracleStep {
  /** What is sent as `events`. */
  events: object;
  /** The same filter, by hand. */
  match: (e: GeneratedEvent) => boolean;
  name: string;
}
interface OracleFunnel {
  range: Range;
  steps: OracleStep[];
  window: { value: number; unit: 'minutes' | 'hours' | 'days' };
  order: Order;
  exclusions: { events: object; match: (e: GeneratedEvent) => boolean; between: [number, number] }[];
  breakdown?: { property: string } | { trait: string };
  interval?: Interval;
}
interface Attempt {
  start: number;
  times: number[];
  entry: GeneratedEvent;
}

const UNIT_MS = { minutes: 60_000, hours: 3_600_000, days: 86_400_000 };
const ms = (e: GeneratedEvent) => Date.parse(e.body.timestamp);
const named = (name: string) => (e: GeneratedEvent) => e.body.type === 'track' && e.body.event === name;
const step = (name: string, extra?: Partial<OracleStep>): OracleStep => ({
  events: { event: name },
  match: named(name),
  name,
  ...extra,
});

// The times at which 1, 2, ... distinct steps were matched from `s` on (any order): the sets of steps
// reachable by giving each event one of its steps, kept as bitmasks, event by event.
function anyOrder(events: GeneratedEvent[], s: number, end: number, steps: OracleStep[]): number[] {
  let sets = new Set<number>([0]);
  let best = 0;
  const times: number[] = [];
  for (let i = s; i < events.length && ms(events[i]!) <= end; i++) {
    const next = new Set(sets);
    for (const set of sets)
      steps.forEach((st, k) => {
        if (!(set & (1 << k)) && st.match(events[i]!)) next.add(set | (1 << k));
      });
    sets = next;
    const size = Math.max(...[...sets].map((x) => x.toString(2).replace(/0/g, '').length));
    if (size > best) {
      best = size;
      times.push(i);
    }
  }
  return times;
}

function attemptsOf(q: OracleFunnel, events: GeneratedEvent[], now: number): Attempt[] {
  const w = q.window.value * UNIT_MS[q.window.unit];
  const from = Date.parse(q.range.from);
  const to = Date.parse(q.range.to);
  const out: Attempt[] = [];
  events.forEach((entry, s) => {
    const t0 = ms(entry);
    const enters = q.order === 'any' ? q.steps.some((st) => st.match(entry)) : q.steps[0]!.match(entry);
    if (!enters || t0 < from || t0 >= to || t0 > now) return;
    const end = Math.min(t0 + w, now);
    let at: number[] = [s];
    if (q.order === 'any') at = anyOrder(events, s, end, q.steps);
    else
      for (let k = 1; k < q.steps.length; k++) {
        let found = -1;
        for (let i = at[k - 1]! + 1; i < events.length && ms(events[i]!) <= end; i++) {
          if (q.steps[k]!.match(events[i]!)) {
            found = i;
            break;
          }
          if (q.order === 'strict' && events[i]!.body.type !== 'identify') break;
        }
        if (found < 0) break;
        at.push(found);
      }
    for (const x of q.exclusions) {
      const [i, j] = x.between;
      if (at.length < i) continue;
      const stop = at.length >= j ? at[j - 1]! : events.length;
      for (let p = at[i - 1]! + 1; p < stop && ms(events[p]!) <= end; p++) if (x.match(events[p]!)) return;
    }
    out.push({ start: t0, times: at.map((i) => ms(events[i]!)), entry });
  });
  return out;
}

function stepsOf(q: OracleFunnel, best: Attempt[]) {
  const reached = (k: number) => best.filter((a) => a.times.length > k);
  const first = reached(0).length;
  const pct = (a: number, b: number) => (b ? Math.round((a / b) * 10_000) / 100 : null);
  return q.steps.map((st, k) => {
    const here = reached(k);
    const before = k ? reached(k - 1).length : here.length;
    const d = k ? here.map((a) => a.times[k]! - a.times[k - 1]!).sort((a, b) => a - b) : [];
    const mid = Math.floor(d.length / 2);
    const median = d.length ? (d.length % 2 ? d[mid]! : (d[mid - 1]! + d[mid]!) / 2) : null;
    return {
      step: k + 1,
      name: st.name,
      entered: here.length,
      fromPrevious: pct(here.length, before),
      fromFirst: pct(here.length, first),
      dropOff: before - here.length,
      medianSeconds: median === null ? null : Math.round(median) / 1000,
      averageSeconds: d.length ? Math.round(d.reduce((a, b) => a + b, 0) / d.length) / 1000 : null,
    };
  });
}

function bucketOfStart(t: number, interval: Interval, zone: string): number {
  if (interval === 'hour') {
    const off = DateTime.fromMillis(t, { zone }).offset * 60_000;
    return t - ((((t + off) % 3_600_000) + 3_600_000) % 3_600_000);
  }
  return DateTime.fromMillis(t, { zone }).startOf(interval).toMillis();
}

/**
 * The answer to a funnel query (without `meta`), worked out from the generated events by brute force.
 *
 * @example
 * expect(strip(answer)).toEqual(evaluateFunnel(events, query, Date.now()));
 */
export function evaluateFunnel(all: readonly GeneratedEvent[], q: OracleFunnel, now: number) {
  const byPerson = new Map<string, GeneratedEvent[]>();
  for (const e of all) (byPerson.get(e.person) ?? byPerson.set(e.person, []).get(e.person)!).push(e);
  const best: { person: string; a: Attempt }[] = [];
  for (const [person, events] of byPerson) {
    events.sort((a, b) => ms(a) - ms(b));
    let b: Attempt | undefined;
    for (const a of attemptsOf(q, events, now)) if (!b || a.times.length > b.times.length) b = a;
    if (b) best.push({ person, a: b });
  }
  const plan = new Map<string, unknown>();
  for (const e of all) if (e.body.type === 'identify' && e.body.traits) plan.set(e.person, e.body.traits.plan);
  const out: Record<string, unknown> = {
    steps: stepsOf(
      q,
      best.map((b) => b.a),
    ),
  };
  if (q.breakdown) {
    const bd = q.breakdown;
    const groups = new Map<string, Attempt[]>();
    for (const { person, a } of best) {
      const v =
        'trait' in bd
          ? plan.get(person)
          : bd.property
              .split('.')
              .reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], a.entry.body.properties);
      const key = JSON.stringify(v ?? null);
      (groups.get(key) ?? groups.set(key, []).get(key)!).push(a);
    }
    out.breakdown = [...groups]
      .map(([key, as]) => ({ value: JSON.parse(key), steps: stepsOf(q, as) }))
      .sort((a, b) => JSON.stringify(a.value).localeCompare(JSON.stringify(b.value)));
  }
  if (q.interval) {
    const zone = q.range.timezone;
    const buckets: number[] = [];
    for (let b = bucketOfStart(Date.parse(q.range.from), q.interval, zone); b < Date.parse(q.range.to); ) {
      buckets.push(b);
      b =
        q.interval === 'hour'
          ? b + 3_600_000
          : DateTime.fromMillis(b, { zone })
              .plus({ [q.interval]: 1 })
              .startOf(q.interval)
              .toMillis();
    }
    out.overTime = buckets.map((b) => {
      const here = best.filter(({ a }) => bucketOfStart(a.start, q.interval!, zone) === b);
      const converted = here.filter(({ a }) => a.times.length === q.steps.length).length;
      return {
        bucket: new Date(b).toISOString(),
        entered: here.length,
        converted,
        conversionRate: here.length ? Math.round((converted / here.length) * 10_000) / 100 : null,
      };
    });
  }
  return out;
}

const wire = (q: OracleFunnel) => ({
  range: q.range,
  steps: q.steps.map((s) => ({ events: s.events, name: s.name })),
  window: q.window,
  order: q.order,
  exclusions: q.exclusions.map((x) => ({ events: x.events, between: x.between })),
  ...(q.breakdown ? { breakdown: q.breakdown } : {}),
  ...(q.interval ? { interval: q.interval } : {}),
});

/** The oracle's queries: zones, ranges cutting DST days and sessions, every order, exclusions, breakdowns. */
export function oracleFunnels(): OracleFunnel[] {
  const [viewed, added, checkout, payment, order] = FUNNEL.map((n) => step(n!));
  const bigOrder = step('Order Completed', {
    events: { event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 50 }] },
    match: (e) => named('Order Completed')(e) && Number(e.body.properties?.total) >= 50,
    name: 'Big order',
  });
  return [
    {
      range: { from: '2026-03-01T00:00:00+01:00', to: '2026-04-15T00:00:00+02:00', timezone: 'Europe/Berlin' },
      steps: [viewed!, added!, checkout!],
      window: { value: 1, unit: 'days' },
      order: 'sequential',
      exclusions: [],
      breakdown: { property: 'category' },
      interval: 'day',
    },
    {
      range: { from: '2026-10-20T00:00:00-04:00', to: '2026-11-10T00:00:00-05:00', timezone: 'America/New_York' },
      steps: [viewed!, added!, checkout!],
      window: { value: 2, unit: 'hours' },
      order: 'strict',
      exclusions: [],
      interval: 'week',
    },
    {
      range: { from: '2026-02-16T00:00:00Z', to: '2026-11-16T00:00:00Z', timezone: 'Europe/Berlin' },
      steps: [order!, viewed!, added!],
      window: { value: 7, unit: 'days' },
      order: 'any',
      exclusions: [],
      breakdown: { trait: 'plan' },
      interval: 'month',
    },
    {
      // Edges inside the DST days of Europe, mid-session.
      range: { from: '2026-03-29T01:30:00+01:00', to: '2026-10-25T02:30:00+01:00', timezone: 'UTC' },
      steps: [viewed!, added!, checkout!, payment!, bigOrder],
      window: { value: 3, unit: 'days' },
      order: 'sequential',
      exclusions: [{ events: { event: 'Search' }, match: named('Search'), between: [1, 3] }],
    },
    {
      // A one-day range that cuts sessions at both ends, a window shorter than some steps' gaps.
      range: { from: '2026-06-30T12:00:00Z', to: '2026-07-01T12:00:00Z', timezone: 'America/New_York' },
      steps: [viewed!, added!],
      window: { value: 5, unit: 'minutes' },
      order: 'sequential',
      exclusions: [],
      interval: 'hour',
    },
  ];
}

/**
 * Runs the oracle's funnel queries through the HTTP API and checks each answer against
 * {@link evaluateFunnel}; checks the people of a step page by page.
 *
 * @example
 * await checkFunnels({ post: h.post, events });
 */
export async function checkFunnels(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  const queries = oracleFunnels();
  for (const q of queries) {
    const answer = await ctx.post('/analytics/funnels', wire(q));
    expect(answer.status, answer.text).toBe(200);
    const expected = evaluateFunnel(ctx.events, q, Date.now());
    const { meta, ...got } = answer.body;
    expect(meta.source).toBe('primary');
    if (got.breakdown)
      got.breakdown.sort((a: { value: unknown }, b: { value: unknown }) =>
        JSON.stringify(a.value).localeCompare(JSON.stringify(b.value)),
      );
    expect(got, JSON.stringify(wire(q))).toEqual(expected);
    expect((expected.steps as { entered: number }[])[0]!.entered).toBeGreaterThan(0);
  }
  // The people of a step, paged: as many as the answer counts, each once.
  const q = queries[0]!;
  const steps = evaluateFunnel(ctx.events, q, Date.now()).steps as { entered: number; dropOff: number }[];
  for (const [stepNo, status, n] of [
    [2, 'dropped', steps[1]!.dropOff],
    [3, 'converted', steps[2]!.entered],
  ] as const) {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      // About five pages whatever the size of the dataset.
      const limit = Math.min(1_000, Math.max(10, Math.ceil(n / 5)));
      const page = await ctx.post('/analytics/funnels/people', { ...wire(q), step: stepNo, status, limit, cursor });
      expect(page.status, page.text).toBe(200);
      ids.push(...page.body.data);
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(n);
  }
}
