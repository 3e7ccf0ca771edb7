import {
  bucketStarts,
  foldTrends,
  type TimeInterval,
  type TrendBreakdown,
  type TrendRow,
  type TrendSeries,
  type TrendSeriesResult,
  trendsQuery,
} from '@cairn/core';
import { expect } from 'vitest';
import type { Tx } from '../../db/index.ts';
import { type GeneratedEvent, sendGenerated } from '../../testing/analytics-data.ts';
import type { DbMode } from '../../testing/db.ts';
import { settle } from '../../testing/events.ts';
import { type FlowHarness, flowHarness } from '../../testing/flows.ts';

// The setup the tests of trends read from rollups share (trends-rollups, trends-period-people,
// trends-traits): a server with the rollups kept before the generated history arrives, the answer of the
// scan to compare with, and the profile changes every rollup must follow (late events, a merge and its
// undo, erasures).

/** A trend's time range as the route takes it. */
export type Range = { from: string; to: string; timezone: string };

export { trendBody } from './trends.oracle.ts';

/**
 * A harness on `mode` for the test file `name`: `keep` registers the rollups (kept by the pipeline from
 * then on), then the generated history is sent and counted.
 *
 * @example
 * h = await rollupHarness('trends-traits.test.ts', mode, events, (h) => h.post('/analytics/rollups/traits', entry, 'PUT'));
 */
export async function rollupHarness(
  name: string,
  mode: DbMode,
  events: readonly GeneratedEvent[],
  keep: (h: FlowHarness) => Promise<unknown>,
): Promise<FlowHarness> {
  const h = await flowHarness(name, mode);
  await keep(h);
  await sendGenerated(h.cairn, events);
  return h;
}

/**
 * Waits until the measure queue has counted everything sent (the rollups are kept by its jobs).
 *
 * @example
 * await h.send(event);
 * await settleMeasure(h);
 */
export const settleMeasure = (h: FlowHarness) => settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });

/**
 * A trend from events only: the builder and fold the route uses, without any rollup.
 *
 * @example
 * const raw = await scanTrend(h.cairn.sql, { range, interval: 'day', series });
 */
export async function scanTrend(
  sql: Tx,
  q: { range: Range; interval: string; series: TrendSeries[]; breakdown?: TrendBreakdown; limit?: number },
): Promise<TrendSeriesResult[]> {
  const starts = bucketStarts(q.range, q.interval as TimeInterval);
  const { text, values } = trendsQuery({ ...q, starts, now: new Date() }).render();
  const rows = (await sql.unsafe(text, values as never[])) as unknown as TrendRow[];
  return foldTrends(rows, { series: q.series, buckets: starts.length, breakdown: !!q.breakdown });
}

/**
 * An Order Completed of `total` from a device, to add to the generated history.
 *
 * @example
 * await h.send({ ...order('late-1', '2026-10-05T12:00:00Z', 31.5), userId });
 */
export const order = (anonymousId: string, timestamp: string, total: number) => ({
  type: 'track',
  event: 'Order Completed',
  anonymousId,
  timestamp,
  properties: { total },
});

/**
 * Sends events that arrive late (or change a profile), waits for the measure jobs, and returns the
 * ground truth with them.
 *
 * @example
 * events = await sendLate(h, events, [{ person: 'late-2', body: order('late-2', '2026-10-25T00:30:00Z', 12.25) }]);
 */
export async function sendLate(
  h: FlowHarness,
  events: readonly GeneratedEvent[],
  late: readonly { person: string; body: object }[],
): Promise<GeneratedEvent[]> {
  await h.send(...late.map((e) => e.body));
  await settleMeasure(h);
  return [...events, ...(late as GeneratedEvent[])];
}

/**
 * Each device signs in as `userId` on `day`, an hour apart from 08:00 UTC: identify merges their profiles.
 *
 * @example
 * await signIn(h, 'tr-user', ['tr-a', 'tr-b'], '2026-11-03');
 */
export const signIn = (h: FlowHarness, userId: string, devices: readonly string[], day: string) =>
  h.send(
    ...devices.map((anonymousId, i) => ({
      type: 'identify',
      anonymousId,
      userId,
      timestamp: `${day}T${String(8 + i).padStart(2, '0')}:00:00Z`,
    })),
  );

/**
 * Undoes the merge in `userId`'s profile history; returns that profile (the merge's survivor).
 *
 * @example
 * const survivor = await undoMerge(h, 'tr-user');
 */
export async function undoMerge(h: FlowHarness, userId: string): Promise<string> {
  const survivor = await h.profileOf(userId);
  const merges = await h.api(`/profiles/${survivor}/merges`);
  const merge = merges.body.data.find((m: { kind: string }) => m.kind === 'merge');
  expect(merge, merges.text).toBeDefined();
  const undo = await h.post(`/profiles/${survivor}/unmerge`, { mergeId: merge.id });
  expect(undo.status, undo.text).toBe(200);
  return survivor;
}

/**
 * Erases profiles through the API (their events go with them).
 *
 * @example
 * await erase(h, [survivor, await h.profileOf(erased)]);
 */
export async function erase(h: FlowHarness, profiles: readonly string[]): Promise<void> {
  for (const p of profiles) {
    const res = await h.api(`/profiles/${p}`, { method: 'DELETE' });
    expect(res.status, res.text).toBe(200);
  }
}
