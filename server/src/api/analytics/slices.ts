import { availableParallelism } from 'node:os';
import { type ProfileSlice, profileSlices, ruleSql as sql } from '@cairn/core';
import type { PinnedReader } from '../../pipeline/measure/index.ts';

/** The most slices one answer runs at once: the analytics pool's connections (reader.ts, 3 by default). */
export const MAX_SLICES = 3;

/**
 * How many slices a per-person pass is cut in: one per core of this machine, at most {@link MAX_SLICES}.
 * A statement runs on one core of Postgres (the per-person index ranges stay above the Gather: the
 * planner runs only the cohort's scan in parallel workers), so slices on several connections are how a
 * pass uses the others. With the database on another machine, its cores are not seen here.
 *
 * @example
 * const rows = await readSliced(profileSlices(analyticsSlices()), (slice, signal) => reader.rows(q(slice), signal), signal);
 */
export function analyticsSlices(): number {
  return Math.max(1, Math.min(MAX_SLICES, availableParallelism()));
}

/**
 * The quantiles of `profiles.id` that Postgres's statistics keep (`pg_stats.histogram_bounds`: up to
 * `default_statistics_target` ids, ascending, refreshed by ANALYZE), or none before the first ANALYZE.
 *
 * @example
 * await profileBounds(reader); // ['0003…', '0290…', …, 'ffd1…']
 */
export async function profileBounds(reader: PinnedReader, signal?: AbortSignal): Promise<string[]> {
  const [stats] = await reader.rows<{ bounds: string | null }>(
    sql`SELECT histogram_bounds::text AS bounds FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'profiles' AND attname = 'id'`,
    signal,
  );
  return stats?.bounds?.replace(/^\{|\}$/g, '').split(',') ?? [];
}

/**
 * `n` slices of the people holding about as many profiles each, cut at the quantiles of `profiles.id`
 * that Postgres's statistics keep (`pg_stats.histogram_bounds`, ~100 sample bounds). Cutting by the id's
 * first byte ({@link profileSlices}) is even only for random ids: bulk-imported profiles have
 * time-ordered (v7) ids that all share their first bytes, so they would all fall in one slice. Without
 * statistics yet (a new database), the first-byte cut. Any cut is exact: each person is in one slice.
 *
 * @example
 * await balancedSlices(reader, 2); // [{ to: '01938…' }, { from: '01938…' }]
 */
export async function balancedSlices(reader: PinnedReader, n: number, signal?: AbortSignal): Promise<ProfileSlice[]> {
  if (n <= 1) return [{}];
  const bounds = await profileBounds(reader, signal);
  if (bounds.length < 2 * n) return profileSlices(n);
  const cuts = [
    ...new Set(Array.from({ length: n - 1 }, (_, k) => bounds[Math.round(((k + 1) * (bounds.length - 1)) / n)]!)),
  ];
  return Array.from({ length: cuts.length + 1 }, (_, k) => ({
    ...(k > 0 ? { from: cuts[k - 1] } : {}),
    ...(k < cuts.length ? { to: cuts[k] } : {}),
  }));
}

/**
 * Runs `read` once per slice, all at once (each on its own connection of the pool), and puts their rows
 * together. The slices share one cancel: the request's signal going away cancels every slice, and the
 * first slice to fail (a statement timeout's 422, an error) cancels the others and is the answer's error.
 *
 * @example
 * const rows = await readSliced(profileSlices(2), (people, signal) => reader.rows(retentionPassSql(q, { now, people }), signal), c.req.raw.signal);
 */
export async function readSliced<T>(
  slices: readonly ProfileSlice[],
  read: (slice: ProfileSlice, signal: AbortSignal) => Promise<T[]>,
  signal?: AbortSignal,
): Promise<T[]> {
  signal?.throwIfAborted();
  const all = new AbortController();
  const stop = () => all.abort(signal?.reason);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const parts = await Promise.all(
      slices.map((slice) =>
        read(slice, all.signal).catch((err: unknown) => {
          all.abort(err);
          throw err;
        }),
      ),
    );
    return parts.flat();
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}
