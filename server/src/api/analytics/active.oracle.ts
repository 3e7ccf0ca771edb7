import { DateTime } from 'luxon';
import { expect } from 'vitest';
import type { GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

type Body = GeneratedEvent['body'];
type Unit = 'day' | 'week' | 'month';

/** An active-users query and its event match as a plain predicate (the oracle's own reading of it). */
interface Case {
  name: string;
  body: { range: { from: string; to: string; timezone: string }; events?: object; interval: Unit };
  active: (e: Body) => boolean;
}

const CASES: Case[] = [
  {
    name: 'Berlin, any event but identify, weekly lifecycle across the spring DST change',
    body: {
      range: { from: '2026-03-20T00:00:00+01:00', to: '2026-04-20T00:00:00+02:00', timezone: 'Europe/Berlin' },
      interval: 'week',
    },
    active: (e) => e.type !== 'identify',
  },
  {
    name: 'New York, orders and additions, daily lifecycle, a range cut inside days around the autumn DST day',
    body: {
      range: { from: '2026-10-25T15:00:00-04:00', to: '2026-11-08T06:00:00-05:00', timezone: 'America/New_York' },
      events: { event: ['Order Completed', 'Product Added'] },
      interval: 'day',
    },
    active: (e) => e.type === 'track' && ['Order Completed', 'Product Added'].includes(e.event!),
  },
  {
    name: 'UTC, page views, monthly lifecycle',
    body: {
      range: { from: '2026-05-01T00:00:00Z', to: '2026-09-01T00:00:00Z', timezone: 'UTC' },
      events: { type: 'page' },
      interval: 'month',
    },
    active: (e) => e.type === 'page',
  },
  {
    name: 'Berlin, books viewed (a property condition), weekly lifecycle around the autumn DST change',
    body: {
      range: { from: '2026-10-12T00:00:00+02:00', to: '2026-11-09T00:00:00+01:00', timezone: 'Europe/Berlin' },
      events: { event: 'Product Viewed', where: [{ property: 'category', cmp: '=', value: 'books' }] },
      interval: 'week',
    },
    active: (e) => e.type === 'track' && e.event === 'Product Viewed' && e.properties?.category === 'books',
  },
];

/**
 * Runs active-user queries through the API and holds each answer to an evaluator written here over the
 * generated events (luxon calendar days and buckets, `person` as the person), independent of the core
 * builders.
 *
 * @example
 * await checkActive({ post: h.post, events });
 */
export async function checkActive(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  for (const c of CASES) {
    const res = await ctx.post('/analytics/active', c.body);
    expect(res.status, `${c.name}: ${res.text}`).toBe(200);
    const expected = evaluate(c, ctx.events);
    expect(res.body.series, c.name).toEqual(expected.series);
    expect(res.body.stickiness, c.name).toEqual(expected.stickiness);
    expect(res.body.lifecycle, c.name).toEqual(expected.lifecycle);
    // Each case is worth something only if people were active in it.
    expect(Math.max(...expected.series.map((d) => d.dau)), c.name).toBeGreaterThan(0);
  }
}

function evaluate(c: Case, events: readonly GeneratedEvent[]) {
  const { range, interval } = c.body;
  const zone = range.timezone;
  const from = Date.parse(range.from);
  const to = Date.parse(range.to);
  // Per person: local dates active, buckets active, and the first active instant ever.
  const dates = new Map<string, Set<string>>();
  const buckets = new Map<string, Set<number>>();
  const firstAt = new Map<string, number>();
  for (const e of events) {
    if (!c.active(e.body)) continue;
    const t = DateTime.fromISO(e.body.timestamp, { zone });
    (dates.get(e.person) ?? dates.set(e.person, new Set()).get(e.person)!).add(t.toISODate()!);
    (buckets.get(e.person) ?? buckets.set(e.person, new Set()).get(e.person)!).add(+t.startOf(interval));
    if (!(firstAt.get(e.person)! <= +t)) firstAt.set(e.person, +t);
  }

  const series = [];
  let sum = 0;
  let n = 0;
  for (let d = DateTime.fromMillis(from, { zone }).startOf('day'); +d < to; d = d.plus({ days: 1 })) {
    const within = (days: number) => {
      const wanted = Array.from({ length: days }, (_, i) => d.minus({ days: i }).toISODate()!);
      let people = 0;
      for (const set of dates.values()) if (wanted.some((w) => set.has(w))) people++;
      return people;
    };
    const dau = within(1);
    const wau = within(7);
    const mau = within(30);
    const ratio = mau ? dau / mau : null;
    if (ratio !== null) {
      sum += ratio;
      n++;
    }
    series.push({
      day: d.toISODate(),
      start: d.toUTC().toISO(),
      dau,
      wau,
      mau,
      stickiness: ratio === null ? null : Math.round(ratio * 10_000) / 10_000,
    });
  }

  const lifecycle = [];
  for (let b = DateTime.fromMillis(from, { zone }).startOf(interval); +b < to; b = b.plus({ [interval]: 1 })) {
    const prev = +b.minus({ [interval]: 1 });
    const row = { start: b.toUTC().toISO(), new: 0, returning: 0, resurrecting: 0, dormant: 0 };
    for (const [person, set] of buckets) {
      const now = set.has(+b);
      const before = set.has(prev);
      if (now && +DateTime.fromMillis(firstAt.get(person)!, { zone }).startOf(interval) === +b) row.new++;
      else if (now && before) row.returning++;
      else if (now) row.resurrecting++;
      else if (before) row.dormant--;
    }
    lifecycle.push(row);
  }
  return {
    series,
    stickiness: n ? Math.round((sum / n) * 10_000) / 10_000 : null,
    lifecycle: { interval, buckets: lifecycle },
  };
}
