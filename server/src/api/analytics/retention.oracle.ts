import { DateTime } from 'luxon';
import { expect } from 'vitest';
import type { GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

type Body = GeneratedEvent['body'];
type Unit = 'day' | 'week' | 'month';

/** A retention query and the same event matches as plain predicates (the oracle's own reading of them). */
interface Case {
  name: string;
  body: {
    range: { from: string; to: string; timezone: string };
    cohort: Unit;
    start: object;
    return: object;
    mode: 'first_time' | 'recurring';
    periods: number;
    bounded: boolean;
  };
  start: (e: Body) => boolean;
  back: (e: Body) => boolean;
}

const named =
  (...names: string[]) =>
  (e: Body) =>
    e.type === 'track' && names.includes(e.event!);

/** The retention queries the oracle checks (also read both ways in retention.test.ts). */
export const CASES: Case[] = [
  {
    name: 'weekly first-time cohorts in Berlin across the spring DST week',
    body: {
      range: { from: '2026-03-16T00:00:00+01:00', to: '2026-05-04T00:00:00+02:00', timezone: 'Europe/Berlin' },
      cohort: 'week',
      start: { event: 'Product Viewed' },
      return: { event: 'Order Completed' },
      mode: 'first_time',
      periods: 4,
      bounded: true,
    },
    start: named('Product Viewed'),
    back: named('Order Completed'),
  },
  {
    name: 'daily recurring cohorts in New York, any event, unbounded, a range cut inside days',
    body: {
      range: { from: '2026-03-05T12:00:00-05:00', to: '2026-03-12T09:30:00-04:00', timezone: 'America/New_York' },
      cohort: 'day',
      start: {},
      return: {},
      mode: 'recurring',
      periods: 5,
      bounded: false,
    },
    start: () => true,
    back: () => true,
  },
  {
    name: 'monthly first-ever cohorts in Berlin up to the data’s end (incomplete periods)',
    body: {
      range: { from: '2026-09-01T00:00:00+02:00', to: '2026-11-16T00:00:00+01:00', timezone: 'Europe/Berlin' },
      cohort: 'month',
      start: { type: ['track', 'page'] },
      return: { event: ['Product Added', 'Order Completed'] },
      mode: 'first_time',
      periods: 3,
      bounded: true,
    },
    start: (e) => e.type === 'track' || e.type === 'page',
    back: named('Product Added', 'Order Completed'),
  },
  {
    name: 'weekly recurring cohorts in New York around the autumn DST day, unbounded',
    body: {
      range: { from: '2026-10-19T00:00:00-04:00', to: '2026-11-16T00:00:00-05:00', timezone: 'America/New_York' },
      cohort: 'week',
      start: { event: 'Product Viewed' },
      return: { event: 'Product Viewed' },
      mode: 'recurring',
      periods: 6,
      bounded: false,
    },
    start: named('Product Viewed'),
    back: named('Product Viewed'),
  },
  {
    name: 'weekly first-time cohorts in UTC, big orders (a property condition), back to any funnel step',
    body: {
      range: { from: '2026-06-01T00:00:00Z', to: '2026-08-03T00:00:00Z', timezone: 'UTC' },
      cohort: 'week',
      start: { event: 'Order Completed', where: [{ property: 'total', cmp: '>=', value: 100 }] },
      return: { event: ['Product Viewed', 'Product Added'] },
      mode: 'first_time',
      periods: 3,
      bounded: true,
    },
    start: (e) => named('Order Completed')(e) && (e.properties?.total as number) >= 100,
    back: named('Product Viewed', 'Product Added'),
  },
];

/**
 * Runs retention queries through the API and holds each answer to an evaluator written here over the
 * generated events (luxon buckets, `person` as the person), independent of the core builders.
 *
 * @example
 * await checkRetention({ post: h.post, events });
 */
export async function checkRetention(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  const people = byPerson(ctx.events);
  let retained = 0;
  for (const c of CASES) {
    const res = await ctx.post('/analytics/retention', c.body);
    expect(res.status, `${c.name}: ${res.text}`).toBe(200);
    const expected = evaluate(c, people, Date.now());
    expect(res.body.cohorts, c.name).toEqual(expected);
    expect(res.body.meta.source).toBe('primary');
    for (const row of expected) retained += row.periods.slice(1).reduce((n, p) => n + p.people, 0);
  }
  // The cases are worth something only if people come back in them.
  expect(retained).toBeGreaterThan(0);
}

function byPerson(events: readonly GeneratedEvent[]): Map<string, { at: number; body: Body }[]> {
  const out = new Map<string, { at: number; body: Body }[]>();
  for (const e of events) {
    const list = out.get(e.person) ?? out.set(e.person, []).get(e.person)!;
    list.push({ at: Date.parse(e.body.timestamp), body: e.body });
  }
  for (const list of out.values()) list.sort((a, b) => a.at - b.at);
  return out;
}

function evaluate(c: Case, people: Map<string, { at: number; body: Body }[]>, now: number) {
  const { range, cohort: unit, periods, bounded } = c.body;
  const zone = range.timezone;
  const from = Date.parse(range.from);
  const to = Date.parse(range.to);
  const bucket = (ms: number) => DateTime.fromMillis(ms, { zone }).startOf(unit);
  const cohorts: DateTime[] = [];
  for (let b = DateTime.fromMillis(from, { zone }).startOf(unit); +b < to; b = b.plus({ [unit]: 1 })) cohorts.push(b);
  const size = new Map<number, number>();
  const retained = new Map<number, number[]>();
  for (const b of cohorts) {
    size.set(+b, 0);
    retained.set(+b, Array(periods + 1).fill(0));
  }

  for (const events of people.values()) {
    const starts = events.filter((e) => c.start(e.body));
    const entries: { cohort: DateTime; at: number }[] = [];
    if (c.body.mode === 'first_time') {
      const first = starts[0];
      if (first && first.at >= from && first.at < to) entries.push({ cohort: bucket(first.at), at: first.at });
    } else {
      const seen = new Set<number>();
      for (const s of starts) {
        if (s.at < from || s.at >= to) continue;
        const b = bucket(s.at);
        if (seen.has(+b)) continue;
        seen.add(+b);
        entries.push({ cohort: b, at: s.at });
      }
    }
    const backs = events.filter((e) => c.back(e.body)).map((e) => e.at);
    for (const entry of entries) {
      const came = Array.from({ length: periods + 1 }, (_, k) => {
        const lo = +entry.cohort.plus({ [unit]: k });
        const hi = +entry.cohort.plus({ [unit]: k + 1 });
        return backs.some((t) => t >= lo && t < hi && (k > 0 || t > entry.at));
      });
      size.set(+entry.cohort, size.get(+entry.cohort)! + 1);
      const counts = retained.get(+entry.cohort)!;
      for (let k = 0; k <= periods; k++) if (bounded ? came[k] : came.slice(k).some(Boolean)) counts[k]!++;
    }
  }

  return cohorts.map((b) => {
    const n = size.get(+b)!;
    return {
      cohort: b.toUTC().toISO(),
      size: n,
      periods: retained.get(+b)!.map((people, period) => ({
        period,
        start: b
          .plus({ [unit]: period })
          .toUTC()
          .toISO(),
        people,
        percent: n ? Math.round((people / n) * 10_000) / 100 : null,
        complete: +b.plus({ [unit]: period + 1 }) <= now,
      })),
    };
  });
}
