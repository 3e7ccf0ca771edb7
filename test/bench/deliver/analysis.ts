import { percentile } from '../ingest/load.ts';
import type { Arrivals } from './receiver.ts';

// What the receivers saw, checked against what was sent: every event at every destination, counted
// by idempotency key (`<messageId>:<destination id>`), duplicates reported; rates from the first to the
// last arrival; latency from the client's send time to the arrival.

/** One destination's part of a phase. */
export interface DestinationCount {
  name: string;
  expected: number;
  /** Distinct expected keys that arrived. */
  arrived: number;
  missing: number;
  /** Keys that arrived more than once (each counted once). */
  duplicates: number;
  /** Arrivals of keys this phase did not send. */
  unexpected: number;
  requests: number;
  badSignatures: number;
  /** Wall-clock ms of the first and last arrival of an expected key. */
  first: number;
  last: number;
  eventsPerSec: number;
  /** Most connections the sender held open to the receiver at the same time. */
  connections: number;
}

/** Latency percentiles (ms) of one set of deliveries (Infinity: had not arrived when the benchmark stopped waiting). */
export interface Percentiles {
  label: string;
  /** Deliveries that arrived. */
  count: number;
  /** Deliveries that had not arrived when the benchmark stopped waiting. */
  missing: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Percentiles of a sample (ms).
 *
 * @example
 * const p = percentiles('all', [12, 40, 33]);
 */
export function percentiles(label: string, values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const missing = sorted.filter((x) => x === Number.POSITIVE_INFINITY).length;
  return {
    label,
    count: sorted.length - missing,
    missing,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

/**
 * Counts a destination's arrivals against the message ids sent: arrived, missing, duplicated,
 * unexpected, and events/s from its first to its last arrival.
 *
 * @example
 * const c = countArrivals('signed', dest.id, arrivals, messageIds);
 */
export function countArrivals(
  name: string,
  destinationId: string,
  a: Arrivals,
  messageIds: ReadonlySet<string>,
): DestinationCount {
  const suffix = `:${destinationId}`;
  const seen = new Map<string, number>();
  let unexpected = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  a.keys.forEach((key, i) => {
    const messageId = key.endsWith(suffix) ? key.slice(0, -suffix.length) : '';
    if (!messageIds.has(messageId)) {
      unexpected++;
      return;
    }
    seen.set(messageId, (seen.get(messageId) ?? 0) + 1);
    const at = a.at[i]!;
    if (at < first) first = at;
    if (at > last) last = at;
  });
  const duplicates = [...seen.values()].filter((n) => n > 1).length;
  return {
    name,
    expected: messageIds.size,
    arrived: seen.size,
    missing: messageIds.size - seen.size,
    duplicates,
    unexpected,
    requests: a.requests,
    badSignatures: a.badSignatures,
    first,
    last,
    eventsPerSec: seen.size / ((last - first) / 1000),
    connections: a.connections,
  };
}

/**
 * Latency (ms) of each event sent, by its first arrival: arrival − the client's send time; an event
 * that never arrived (the benchmark stopped waiting) counts as Infinity, so percentiles cannot hide it.
 *
 * @example
 * const samples = latencies(dest.id, arrivals, sentAt);
 */
export function latencies(
  destinationId: string,
  a: Arrivals,
  sentAt: ReadonlyMap<string, number>,
): { sentAt: number; ms: number }[] {
  const suffix = `:${destinationId}`;
  const firstArrival = new Map<string, number>();
  a.keys.forEach((key, i) => {
    if (!key.endsWith(suffix)) return;
    const messageId = key.slice(0, -suffix.length);
    if (!sentAt.has(messageId) || firstArrival.has(messageId)) return;
    firstArrival.set(messageId, a.at[i]!);
  });
  return [...sentAt].map(([m, sent]) => {
    const at = firstArrival.get(m);
    return { sentAt: sent, ms: at === undefined ? Number.POSITIVE_INFINITY : at - sent };
  });
}

/**
 * The p50 of the events sent in each third of the phase: a queue that grows shows as a rise.
 *
 * @example
 * const [a, b, c] = p50ByThird(samples);
 */
export function p50ByThird(samples: readonly { sentAt: number; ms: number }[]): number[] {
  if (!samples.length) return [Number.NaN, Number.NaN, Number.NaN];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const s of samples) {
    lo = Math.min(lo, s.sentAt);
    hi = Math.max(hi, s.sentAt);
  }
  const span = hi - lo || 1;
  return [0, 1, 2].map(
    (k) =>
      percentiles(
        '',
        samples.filter((s) => Math.min(2, Math.floor(((s.sentAt - lo) / span) * 3)) === k).map((s) => s.ms),
      ).p50,
  );
}

/**
 * p50 and p95 of the events sent in each `sliceMs` of the phase, in order: where a start-up transient
 * or a queue that grows shows.
 *
 * @example
 * const slices = bySlice(samples, 5000); // [{ p50, p95 }, ...]
 */
export function bySlice(
  samples: readonly { sentAt: number; ms: number }[],
  sliceMs: number,
): { p50: number; p95: number }[] {
  if (!samples.length) return [];
  let lo = Number.POSITIVE_INFINITY;
  for (const s of samples) lo = Math.min(lo, s.sentAt);
  const slices: number[][] = [];
  for (const s of samples) {
    const k = Math.floor((s.sentAt - lo) / sliceMs);
    slices[k] ??= [];
    slices[k].push(s.ms);
  }
  return slices.map((ms) => {
    const p = percentiles('', ms ?? []);
    return { p50: p.p50, p95: p.p95 };
  });
}

/**
 * A timeline as text, `p50/p95` per slice, with a bar after the warm-up's slices.
 *
 * @example
 * timelineText([{ p50: 480, p95: 711 }, { p50: 193, p95: 304 }], 1); // '480/711 | 193/304'
 */
export function timelineText(slices: readonly { p50: number; p95: number }[], warmSlices: number): string {
  const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '∞');
  const bar = Math.ceil(warmSlices);
  return slices.map((x, i) => `${i === bar && i > 0 ? ' | ' : i ? ', ' : ''}${ms(x.p50)}/${ms(x.p95)}`).join('');
}
