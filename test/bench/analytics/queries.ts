import { bucketStarts } from '@cairn/core';
import { FUNNEL } from './data.ts';

// The queries bench:analytics sends: the tiles of a typical dashboard over 90 days, a 5-step funnel,
// retention tables, active users and paths. Bodies follow the routes' request schemas
// (server/src/api/analytics/*.ts); ranges end at the end of the generated history.

/** What a budget is checked against: the 95th percentile of the runs, or the slowest run. */
export type BudgetOn = 'p95' | 'max';

/** One query of the benchmark. */
export interface BenchQuery {
  /** trends, funnels, retention, active or paths. */
  route: string;
  name: string;
  body: unknown;
  /** Timed runs after one warm-up. */
  runs: number;
  budget?: { ms: number; on: BudgetOn; label: string };
}

/** The time zone the dashboard is cut in (DST included). */
export const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** The budgets (issue 19). */
export const BUDGETS = {
  tile: { ms: 300, on: 'p95' as const, label: 'trend tile p95 < 300 ms' },
  funnel: { ms: 3000, on: 'max' as const, label: '5-step funnel, 30 days, 7-day window < 3 s' },
  retention: { ms: 3000, on: 'max' as const, label: 'retention, 12 weekly cohorts < 3 s' },
};

/**
 * The queries, for a history ending at `end`; `runs` sets the tiles' runs and `slowRuns` the others'.
 *
 * @example
 * const qs = benchQueries(new Date(ds.end), { runs: 20, slowRuns: 5 });
 */
export function benchQueries(end: Date, o: { runs: number; slowRuns: number }): BenchQuery[] {
  const to = end.getTime();
  // "Last 90 days": from local midnight 89 days before the last (partial) day, to the end of the history.
  const days = bucketStarts({ from: iso(to - 100 * DAY), to: iso(to), timezone: ZONE }, 'day');
  const last90 = { from: days.at(-90)!, to: iso(to), timezone: ZONE };
  const last30 = { from: days.at(-30)!, to: iso(to), timezone: ZONE };
  const order = { event: 'Order Completed' };
  const tile = (name: string, body: object): BenchQuery => ({
    route: 'trends',
    name,
    body: { range: last90, ...body },
    runs: o.runs,
    budget: BUDGETS.tile,
  });
  // 12 weekly cohorts: the 12 whole ISO weeks (local Mondays) before the week of the end.
  const weeks = bucketStarts({ from: iso(to - 100 * DAY), to: iso(to), timezone: ZONE }, 'week');
  const twelveWeeks = { from: weeks.at(-13)!, to: weeks.at(-1)!, timezone: ZONE };
  return [
    tile('orders per day', { interval: 'day', series: [{ events: order, measure: 'count' }] }),
    tile('people per day (any event)', { interval: 'day', series: [{ events: {}, measure: 'people' }] }),
    tile('revenue per week (sum of total)', {
      interval: 'week',
      series: [{ events: order, measure: 'sum', property: 'total' }],
    }),
    tile('orders per day by category', {
      interval: 'day',
      series: [{ events: order, measure: 'count' }],
      breakdown: { property: 'category' },
    }),
    tile('orders per day vs the previous 90 days', {
      interval: 'day',
      series: [{ events: order, measure: 'count' }],
      compare: 'previous',
    }),
    tile('page views per day', { interval: 'day', series: [{ events: { type: 'page' }, measure: 'count' }] }),
    tile('buyers per week, funnel entries per week', {
      interval: 'week',
      series: [
        { events: order, measure: 'people' },
        { events: { event: FUNNEL[0].name }, measure: 'people' },
      ],
    }),
    tile('average order by plan (trait) per week', {
      interval: 'week',
      series: [{ events: order, measure: 'avg', property: 'total' }],
      breakdown: { trait: 'plan' },
    }),
    {
      route: 'funnels',
      name: '5 steps, 30 days, 7-day window',
      body: {
        range: last30,
        steps: FUNNEL.map((s) => ({ events: { event: s.name } })),
        window: { value: 7, unit: 'days' },
      },
      runs: o.slowRuns,
      budget: BUDGETS.funnel,
    },
    {
      route: 'funnels',
      name: '5 steps, 30 days, 7-day window, by category',
      body: {
        range: last30,
        steps: FUNNEL.map((s) => ({ events: { event: s.name } })),
        window: { value: 7, unit: 'days' },
        breakdown: { property: 'category' },
      },
      runs: o.slowRuns,
    },
    {
      route: 'retention',
      name: '12 weekly cohorts, first event → any event',
      body: {
        range: twelveWeeks,
        cohort: 'week',
        start: {},
        return: {},
        mode: 'first_time',
        periods: 11,
        bounded: true,
      },
      runs: o.slowRuns,
      budget: BUDGETS.retention,
    },
    {
      route: 'retention',
      name: '12 weekly cohorts, Product Viewed → Order Completed (recurring)',
      body: {
        range: twelveWeeks,
        cohort: 'week',
        start: { event: FUNNEL[0].name },
        return: order,
        mode: 'recurring',
        periods: 11,
        bounded: true,
      },
      runs: o.slowRuns,
      budget: BUDGETS.retention,
    },
    {
      route: 'funnels',
      name: '5 steps, 30 days, 7-day window, conversion per day',
      body: {
        range: last30,
        steps: FUNNEL.map((s) => ({ events: { event: s.name } })),
        window: { value: 7, unit: 'days' },
        interval: 'day',
      },
      runs: o.slowRuns,
    },
    {
      route: 'active',
      name: 'DAU / WAU / MAU, stickiness, lifecycle by week, 90 days',
      body: { range: last90, interval: 'week' },
      runs: o.slowRuns,
    },
    {
      route: 'paths',
      name: '5 steps after Product Viewed, 30 days',
      body: { range: last30, anchor: { event: FUNNEL[0].name }, direction: 'after', steps: 5 },
      runs: o.slowRuns,
    },
    {
      route: 'paths',
      name: '5 steps before Order Completed, 30 days',
      body: { range: last30, anchor: order, direction: 'before', steps: 5 },
      runs: o.slowRuns,
    },
  ];
}
