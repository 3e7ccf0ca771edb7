import { expect } from 'vitest';
import type { GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

type Body = GeneratedEvent['body'];
type Model = 'first_touch' | 'last_touch' | 'last_non_direct' | 'linear' | 'position_based' | 'time_decay';
const ALL: Model[] = ['first_touch', 'last_touch', 'last_non_direct', 'linear', 'position_based', 'time_decay'];

/** An attribution query and the oracle's own reading of it. */
interface Case {
  name: string;
  body: Record<string, unknown> & { range: { from: string; to: string; timezone: string } };
  converts: (e: Body) => boolean;
  revenue: (e: Body) => number;
  lookbackDays: number;
  halfLifeDays: number;
  models: Model[];
  kinds: ('utm' | 'direct')[];
  channel: (campaign: { name?: string; source?: string; medium?: string }) => string;
}

const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const isOrder = (e: Body) => e.type === 'track' && e.event === 'Order Completed';

const CASES: Case[] = [
  {
    name: 'Berlin range across the spring DST change, orders, every model, by campaign, 30-day lookback',
    body: {
      range: { from: '2026-03-20T00:00:00+01:00', to: '2026-04-20T00:00:00+02:00', timezone: 'Europe/Berlin' },
      conversion: { event: 'Order Completed' },
    },
    converts: isOrder,
    revenue: (e) => num(e.properties?.revenue) ?? num(e.properties?.total) ?? 0,
    lookbackDays: 30,
    halfLifeDays: 7,
    models: ALL,
    kinds: ['utm', 'direct'],
    channel: (c) => c.name ?? '(not set)',
  },
  {
    name: 'New York range cut inside days around the autumn DST day, 7-day lookback, by source / medium, half-life 3',
    body: {
      range: { from: '2026-10-25T15:00:00-04:00', to: '2026-11-08T06:00:00-05:00', timezone: 'America/New_York' },
      conversion: { event: 'Order Completed' },
      lookback: { value: 7, unit: 'days' },
      channelOf: 'source_medium',
      models: ['time_decay', 'position_based', 'last_non_direct'],
      halfLifeDays: 3,
    },
    converts: isOrder,
    revenue: (e) => num(e.properties?.revenue) ?? num(e.properties?.total) ?? 0,
    lookbackDays: 7,
    halfLifeDays: 3,
    models: ['time_decay', 'position_based', 'last_non_direct'],
    kinds: ['utm', 'direct'],
    channel: (c) => `${c.source ?? '(not set)'} / ${c.medium ?? '(not set)'}`,
  },
  {
    name: 'UTC, orders with a coupon (a property condition), revenue from total, UTM touches only, 90-day lookback',
    body: {
      range: { from: '2026-06-01T00:00:00Z', to: '2026-09-01T00:00:00Z', timezone: 'UTC' },
      conversion: { event: 'Order Completed', where: [{ property: 'coupon', cmp: '=', value: true }] },
      revenueProperty: 'total',
      lookback: { value: 90, unit: 'days' },
      touchpoints: ['utm'],
      models: ['first_touch', 'linear'],
    },
    converts: (e) => isOrder(e) && e.properties?.coupon === true,
    revenue: (e) => num(e.properties?.total) ?? 0,
    lookbackDays: 90,
    halfLifeDays: 7,
    models: ['first_touch', 'linear'],
    kinds: ['utm'],
    channel: (c) => c.name ?? '(not set)',
  },
  {
    name: 'Berlin range across the autumn DST change, products added (no revenue), by flow (UTM touches are one channel)',
    body: {
      range: { from: '2026-10-19T00:00:00+02:00', to: '2026-11-02T00:00:00+01:00', timezone: 'Europe/Berlin' },
      conversion: { event: 'Product Added' },
      channelOf: 'flow',
      models: ['last_touch', 'linear', 'time_decay'],
    },
    converts: (e) => e.type === 'track' && e.event === 'Product Added',
    revenue: () => 0,
    lookbackDays: 30,
    halfLifeDays: 7,
    models: ['last_touch', 'linear', 'time_decay'],
    kinds: ['utm', 'direct'],
    channel: () => '(utm)',
  },
];

type Credit = Record<string, { conversions: number; revenue: number }>;
interface Expected {
  channels: Map<string, Credit>;
  totals: { conversions: number; revenue: number; attributed: number[]; unattributed: number[] };
}

const GAP = 30 * 60_000;
const DAY = 86_400_000;

/** The oracle: per person (ground truth), visits in time order, touches, and each conversion's shares. */
function evaluate(c: Case, events: readonly GeneratedEvent[]): Expected {
  const from = Date.parse(c.body.range.from);
  const to = Date.parse(c.body.range.to);
  const byPerson = new Map<string, Body[]>();
  for (const g of events) {
    if (g.body.type === 'identify') continue; // not a visit, never a conversion here
    const list = byPerson.get(g.person) ?? [];
    if (!list.length) byPerson.set(g.person, list);
    list.push(g.body);
  }
  const channels = new Map<string, Credit>();
  const totals = { conversions: 0, revenue: 0, attributed: [0, 0], unattributed: [0, 0] };
  const give = (channel: string, model: Model, share: number, revenue: number) => {
    let row = channels.get(channel);
    if (!row) {
      row = Object.fromEntries(c.models.map((m) => [m, { conversions: 0, revenue: 0 }]));
      channels.set(channel, row);
    }
    row[model]!.conversions += share;
    row[model]!.revenue += share * revenue;
  };
  for (const list of byPerson.values()) {
    const visits = list.map((b) => ({ at: Date.parse(b.timestamp), b })).sort((x, y) => x.at - y.at);
    const touches: { at: number; channel: string; direct: boolean }[] = [];
    let prev: { at: number; b: Body } | undefined;
    for (const v of visits) {
      const camp = (v.b.context?.campaign ?? {}) as { name?: string; source?: string; medium?: string };
      const hasCamp = !!(camp.name || camp.source || camp.medium);
      if (c.converts(v.b) && v.at >= from && v.at < to) {
        const revenue = c.revenue(v.b);
        const seen = touches.filter((t) => t.at >= v.at - c.lookbackDays * DAY);
        totals.conversions++;
        totals.revenue += revenue;
        const side = seen.length ? totals.attributed : totals.unattributed;
        side[0]!++;
        side[1]! += revenue;
        const n = seen.length;
        for (const model of seen.length ? c.models : []) {
          let shares: number[];
          if (model === 'first_touch') shares = seen.map((_, i) => (i === 0 ? 1 : 0));
          else if (model === 'last_touch') shares = seen.map((_, i) => (i === n - 1 ? 1 : 0));
          else if (model === 'last_non_direct') {
            const idx = seen.map((t) => !t.direct).lastIndexOf(true);
            shares = seen.map((_, i) => (i === (idx === -1 ? n - 1 : idx) ? 1 : 0));
          } else if (model === 'linear') shares = seen.map(() => 1 / n);
          else if (model === 'position_based')
            shares = seen.map((_, i) => (n === 1 ? 1 : n === 2 ? 0.5 : i === 0 || i === n - 1 ? 0.4 : 0.2 / (n - 2)));
          else {
            const w = seen.map((t) => 0.5 ** ((v.at - t.at) / DAY / c.halfLifeDays));
            const sum = w.reduce((a, b) => a + b, 0);
            shares = w.map((x) => x / sum);
          }
          seen.forEach((t, i) => {
            if (shares[i]! > 0) give(t.channel, model, shares[i]!, revenue);
          });
        }
      }
      // The event as a touch for later conversions.
      const close = prev !== undefined && v.at - prev.at <= GAP;
      const prevCamp = (prev?.b.context?.campaign ?? {}) as { name?: string; source?: string; medium?: string };
      const same =
        (camp.name ?? null) === (prevCamp.name ?? null) &&
        (camp.source ?? null) === (prevCamp.source ?? null) &&
        (camp.medium ?? null) === (prevCamp.medium ?? null);
      if (hasCamp && !(close && same)) {
        if (c.kinds.includes('utm')) touches.push({ at: v.at, channel: c.channel(camp), direct: false });
      } else if (!hasCamp && !close && c.kinds.includes('direct'))
        touches.push({ at: v.at, channel: '(direct)', direct: true });
      prev = v;
    }
  }
  return { channels, totals };
}

/**
 * Runs attribution queries through the API (zones, DST, a property condition, every model, the three
 * lookbacks) and holds each answer to an evaluator written here over the generated events (`person` as
 * the person), independent of the core builders and the fold.
 *
 * @example
 * await checkAttribution({ post: h.post, events });
 */
export async function checkAttribution(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  for (const c of CASES) {
    const res = await ctx.post('/analytics/attribution', c.body);
    expect(res.status, `${c.name}: ${res.text}`).toBe(200);
    const want = evaluate(c, ctx.events);
    const t = res.body.totals;
    expect(t.conversions, c.name).toBe(want.totals.conversions);
    expect(t.revenue, c.name).toBeCloseTo(want.totals.revenue, 3);
    expect(t.attributed.conversions, c.name).toBe(want.totals.attributed[0]);
    expect(t.attributed.revenue, c.name).toBeCloseTo(want.totals.attributed[1]!, 3);
    expect(t.unattributed.conversions, c.name).toBe(want.totals.unattributed[0]);
    expect(t.unattributed.revenue, c.name).toBeCloseTo(want.totals.unattributed[1]!, 3);
    expect(want.totals.attributed[0], c.name).toBeGreaterThan(0);
    const got = new Map<string, Credit>(
      (res.body.channels as { channel: string; models: Credit }[]).map((x) => [x.channel, x.models]),
    );
    expect([...got.keys()].sort(), c.name).toEqual([...want.channels.keys()].sort());
    for (const [channel, models] of want.channels)
      for (const m of c.models) {
        expect(got.get(channel)![m]!.conversions, `${c.name}: ${channel} ${m}`).toBeCloseTo(models[m]!.conversions, 4);
        expect(got.get(channel)![m]!.revenue, `${c.name}: ${channel} ${m}`).toBeCloseTo(models[m]!.revenue, 3);
      }
  }
}
