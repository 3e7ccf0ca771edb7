import {
  ATTRIBUTION_LIMITS,
  bucketStarts,
  previousRange,
  type RolledProperty,
  rollupSource,
  rollupWindow,
  type TimeInterval,
  type TimeRange,
  type TrendBreakdown,
  type TrendSeries,
} from '@cairn/core';
import { DateTime } from 'luxon';
import type { Tx } from '../../db/index.ts';
import { apiError } from '../../http/errors.ts';
import { retentionHorizon } from '../../jobs/retention-queries.ts';
// Straight from the file: measure's index imports the reports, which import the trends route, which imports this.
import { type RolledPropertyRow, rolledProperties } from '../../pipeline/measure/rollup-values.ts';

// Issue 22: once event partitions are dropped (CAIRN_EVENT_RETENTION_DAYS), a query reading events before
// the retention horizon would silently count only the events that happen to be left there (late ones,
// imports). It is refused instead, with the horizon named, before any scan runs. The horizon is what
// was actually dropped (retentionHorizon: null until a first drop), not the setting: with the default
// (keep forever) nothing is ever refused.

/** The earliest instant a query reads events at, and which part of the query reads it (named in the 422). */
export interface EventRead {
  at: string | number | Date;
  what: string;
}

/** Refuses queries that read events before the retention horizon; built once per API from the primary. */
export interface HorizonGuard {
  /**
   * Throws 422 `before_retention` when one of `reads` starts before the horizon; does nothing while no
   * partition was ever dropped.
   */
  refuse(reads: EventRead | readonly EventRead[]): Promise<void>;
  /**
   * Throws 422 `before_retention` when a trend reads events before the horizon ({@link trendReads},
   * with the rolled-up properties as registered now).
   */
  refuseTrend(q: TrendReadQuery): Promise<void>;
}

/**
 * The guard of the analytics routes: reads the horizon from `event_partitions` on the primary (one row
 * per month; the replica drops the same partitions a moment later, so the primary's is the stricter).
 *
 * @example
 * const horizon = horizonGuard({ sql, eventDays: config.retention.eventDays });
 * await horizon.refuse({ at: body.range.from, what: 'range.from' });
 */
export function horizonGuard(deps: { sql: Tx; eventDays: number | null }): HorizonGuard {
  const check = (list: readonly EventRead[], horizon: Date) => {
    const first = list
      .map((r) => ({ ...r, ms: new Date(r.at).getTime() }))
      .filter((r) => Number.isFinite(r.ms))
      .sort((a, b) => a.ms - b.ms)[0];
    if (!first || first.ms >= horizon.getTime()) return;
    throw beforeRetention(first, horizon, deps.eventDays);
  };
  return {
    async refuse(reads) {
      const list = Array.isArray(reads) ? (reads as readonly EventRead[]) : [reads as EventRead];
      if (!list.length) return;
      const horizon = await retentionHorizon(deps.sql);
      if (horizon) check(list, horizon);
    },
    async refuseTrend(q) {
      const horizon = await retentionHorizon(deps.sql);
      if (horizon) check(trendReads(q, await rolledProperties(deps.sql)), horizon);
    },
  };
}

function beforeRetention(read: EventRead & { ms: number }, horizon: Date, eventDays: number | null) {
  const h = horizon.toISOString();
  const setting =
    eventDays === null
      ? 'CAIRN_EVENT_RETENTION_DAYS is unset now, but partitions were dropped while it was set'
      : `CAIRN_EVENT_RETENTION_DAYS=${eventDays}`;
  return apiError(
    422,
    'before_retention',
    `${read.what} reads events from ${new Date(read.ms).toISOString()}, before the retention horizon ${h} ` +
      `(${setting}): older events were dropped with their partitions, so the answer would be incomplete. ` +
      `Start the query at or after ${h}`,
    { horizon: h, retentionDays: eventDays, reads: read.what, readsFrom: new Date(read.ms).toISOString() },
  );
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** The trends query as {@link trendReads} needs it. */
export interface TrendReadQuery {
  range: { from: string; to: string; timezone: string };
  interval: string;
  series: readonly TrendSeries[];
  breakdown?: TrendBreakdown;
  compare?: 'previous';
}

/**
 * Where a trend reads events: a series an hourly rollup answers (rollupSource: counts by name and type,
 * sums, means and breakdowns of a rolled-up property; whole UTC-hour buckets) reads events only for the
 * partial hours at the range's edges, since retention drops event partitions and never these rollups'
 * rows (the hours before the horizon are frozen as they were); any other series, and people (see
 * {@link PEOPLE_BEFORE_HORIZON}), reads events over the whole range. A rolled-up property's rows are complete only from its fill
 * (`createdAt`): hours before it were counted from the events kept then, so they count as a read of
 * events. The previous period of `compare` likewise. A range whose buckets cannot be cut reads nothing
 * here: the route answers its 400.
 *
 * @example
 * await horizon.refuse(trendReads(body, rolled)); // [] for counts over whole hours: the rollup answers
 */
export function trendReads(
  q: TrendReadQuery,
  rolled: readonly (RolledProperty & Partial<Pick<RolledPropertyRow, 'createdAt'>>)[] = [],
): EventRead[] {
  const reads: EventRead[] = [];
  const one = (range: TimeRange, what: string) => {
    let starts: string[];
    try {
      starts = bucketStarts(range, q.interval as TimeInterval);
    } catch {
      return;
    }
    const window = rollupWindow(range, starts);
    for (const [i, s] of q.series.entries()) {
      const part = `${what} (series[${i}])`;
      const source = window ? rollupSource(s, q.breakdown, rolled) : null;
      if (!window || !source) {
        reads.push({ at: range.from, what: `${part}, a ${s.measure} series not answered by the hourly rollups` });
        continue;
      }
      if (source === 'people') {
        reads.push({ at: range.from, what: `${part}, a people series: ${PEOPLE_BEFORE_HORIZON}` });
        continue;
      }
      const filled = source === 'values' ? filledSince(s, q.breakdown, rolled) : null;
      if (filled && Date.parse(window.from) < filled.ms) {
        reads.push({ at: range.from, what: `${part}: ${filled.what}` });
        continue;
      }
      // Only the edges' partial hours come from events: before the window, and after it.
      if (Date.parse(range.from) < Date.parse(window.from))
        reads.push({ at: range.from, what: `${part}: the partial hour before ${window.from}` });
      else if (Date.parse(window.to) < Date.parse(range.to))
        reads.push({ at: window.to, what: `${part}: the partial hour after ${window.to}` });
    }
  };
  const range = q.range as TimeRange;
  one(range, 'range.from');
  if (q.compare === 'previous') {
    try {
      one(previousRange(range, q.interval as TimeInterval), 'the previous period of compare');
    } catch {
      // A previous period that cannot be cut is the route's 400.
    }
  }
  return reads;
}

/**
 * Why people tiles stay refused before the horizon although analytics_hourly_people keeps its rows: a
 * merge re-points person-hours by reading the merged profiles' events (rollup-people.ts movesOf), so
 * after a drop the hours of dropped events keep the merged-away person, who would count twice; and the
 * per-day people rollup forgets its days before the horizon when partitions are dropped.
 */
export const PEOPLE_BEFORE_HORIZON =
  'people before the horizon no longer follow identity merges (their events are gone)';

// The latest fill of the rolled-up property a 'values' series reads, over the events it names.
function filledSince(
  s: TrendSeries,
  bd: TrendBreakdown | undefined,
  rolled: readonly (RolledProperty & { createdAt?: Date })[],
): { ms: number; what: string } | null {
  const property = bd && 'property' in bd ? bd.property : s.property;
  const names = [s.events.event ?? []].flat();
  let last: { ms: number; what: string } | null = null;
  for (const r of rolled) {
    if (r.property !== property || !names.includes(r.event) || !r.createdAt) continue;
    const ms = new Date(r.createdAt).getTime();
    if (!last || ms > last.ms)
      last = {
        ms,
        what:
          `the rollup of ${r.event}: ${r.property} was filled at ${new Date(ms).toISOString()} from the events ` +
          'kept then, so its earlier hours may miss dropped events',
      };
  }
  return last;
}

/**
 * Where paths read events: from the range, or (direction `before`) up to `steps × sessionGap` minutes
 * before it, as pathsQuery reads.
 *
 * @example
 * await horizon.refuse(pathReads(body));
 */
export function pathReads(q: {
  range: { from: string };
  direction: 'after' | 'before';
  steps: number;
  sessionGap: number;
}): EventRead {
  return q.direction === 'before'
    ? {
        at: Date.parse(q.range.from) - q.steps * q.sessionGap * MINUTE_MS,
        what: `range.from minus steps × sessionGap (${q.steps * q.sessionGap} minutes, direction before)`,
      }
    : { at: q.range.from, what: 'range.from' };
}

/**
 * Where active-people queries read events: from the start of the local day 29 days before the range's
 * first day (the MAU window), and the lifecycle's bucket before the first one.
 *
 * @example
 * await horizon.refuse(activeReads(body));
 */
export function activeReads(q: {
  range: { from: string; to: string; timezone: string };
  interval: string;
}): EventRead[] {
  const range = q.range as TimeRange;
  const zone = range.timezone;
  try {
    const day = DateTime.fromISO(bucketStarts(range, 'day')[0]!, { zone });
    const bucket = DateTime.fromISO(bucketStarts(range, q.interval as TimeInterval)[0]!, { zone });
    return [
      { at: day.minus({ days: 29 }).toMillis(), what: 'range.from minus the 30-day MAU window' },
      {
        at: bucket.minus({ [`${q.interval}s`]: 1 }).toMillis(),
        what: `the lifecycle's ${q.interval} before the range`,
      },
    ];
  } catch {
    // A range that cannot be cut is the route's 400.
    return [];
  }
}

/**
 * Where attribution reads events: touches up to the lookback (and one session gap, to tell a direct
 * visit) before the range, as attributionSql reads.
 *
 * @example
 * await horizon.refuse(attributionReads(body.range.from, body.lookback.value));
 */
export function attributionReads(from: string, lookbackDays: number): EventRead {
  const gap = ATTRIBUTION_LIMITS.sessionGapMinutes;
  return {
    at: Date.parse(from) - lookbackDays * DAY_MS - gap * MINUTE_MS,
    what: `range.from minus the lookback (${lookbackDays} days) and one session gap (${gap} minutes)`,
  };
}

/** The 422 of a route refusing reads before the horizon, as the OpenAPI description says it. */
export const BEFORE_RETENTION =
  'before_retention: it reads events before the retention horizon (CAIRN_EVENT_RETENTION_DAYS dropped them; the message names the horizon)';
