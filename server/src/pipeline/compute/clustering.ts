import { clusterPoints } from '@cairn/core';
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { type HandOff, handOffIds } from '../../jobs/handoff.ts';
import { ensureQueue } from '../../jobs/queues.ts';
import type { Logger } from '../../log.ts';
import {
  type Clustering,
  getClustering,
  getRun,
  insertRun,
  lastClusters,
  listClusterings,
  readFeatures,
  setRun,
  writeClusterTrait,
} from './clustering-queries.ts';
import { rulesReading } from './queries.ts';
import { recordTraitChanges, watchedComputedTraits } from './trait-changes.ts';

// Clustering runs as a background job on its own queue (one run at a time per worker: a run holds the
// features of every profile in memory, 8 bytes a value). The queue is created here rather than in
// jobs/queues.ts's table: it is stage 3's own, and nothing hands off to it but the commands below.

/** The clustering queue: a job is `{ runId }` (on demand) or `{ clusteringId }` (from the schedule). */
export const CLUSTERING_QUEUE = {
  name: 'clustering',
  retryLimit: 2,
  retryDelay: 30,
  expireInSeconds: 3600,
  heartbeatSeconds: 30,
} as const;

/** What a clustering run needs. */
export interface ClusteringDeps {
  sql: Sql;
  boss: PgBoss;
  handOff: HandOff;
  log: Logger;
  now: () => Date;
  /** The embedded database (PGlite) has no COPY over the wire: a run then pages and inserts arrays. */
  dbKind?: 'postgres' | 'embedded';
}

/**
 * Queues a run of a clustering; returns its id (readable at once, `queued`).
 *
 * @example
 * const runId = await requestClusteringRun({ sql, boss }, clusteringId, 'api:key:k1');
 */
export async function requestClusteringRun(
  deps: Pick<ClusteringDeps, 'sql' | 'boss'>,
  clusteringId: string,
  by: string,
): Promise<string> {
  const runId = await insertRun(deps.sql, clusteringId, by);
  await ensureQueue(deps.boss, CLUSTERING_QUEUE);
  await deps.boss.send(CLUSTERING_QUEUE.name, { runId });
  return runId;
}

/**
 * Keeps pg-boss's schedule of a clustering in line with its `schedule` (a cron, UTC; null: none).
 *
 * @example
 * await syncClusteringSchedule(boss, clustering);
 */
export async function syncClusteringSchedule(
  boss: PgBoss,
  c: Pick<Clustering, 'id' | 'schedule'> | { id: string; schedule: null },
): Promise<void> {
  await ensureQueue(boss, CLUSTERING_QUEUE);
  if (c.schedule) await boss.schedule(CLUSTERING_QUEUE.name, c.schedule, { clusteringId: c.id }, { key: c.id });
  else await boss.unschedule(CLUSTERING_QUEUE.name, c.id);
}

/**
 * Runs one queued run: reads the features of every live profile, clusters (k given or chosen by
 * silhouette), keeps ids stable against the last successful run, writes the trait, and asks for the
 * rules reading it to be recomputed. Progress and the outcome are on the run's row.
 *
 * @example
 * await executeClusteringRun(deps, runId);
 */
export async function executeClusteringRun(deps: ClusteringDeps, runId: string): Promise<void> {
  const { sql } = deps;
  const run = await getRun(sql, runId);
  if (!run || run.status === 'succeeded') return;
  const c = await getClustering(sql, run.clusteringId);
  if (!c) return;
  const step = (s: string, progress: number) => setRun(sql, runId, { step: s, progress });
  await setRun(sql, runId, { status: 'running', step: 'reading features', progress: 0, startedAt: deps.now() });
  const copy = deps.dbKind !== 'embedded';
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = Math.round(now - t) / 1000;
    t = now;
  };
  try {
    const d = c.features.length;
    const { ids, data, skipped } = await readFeatures(sql, c.features, { copy });
    lap('read');
    if (ids.length < 2) throw new Error(`${ids.length} profiles have every feature: at least 2 are needed`);
    await step('clustering', 0.3);
    const previous = await lastClusters(sql, c.id);
    const result = clusterPoints({ data, n: ids.length, d }, c.features.map(featureName), {
      k: c.k ?? undefined,
      kRange: c.kRange ?? undefined,
      seed: c.seed,
      previous: previous ?? undefined,
    });
    lap('cluster');
    await step('writing', 0.8);
    const at = deps.now();
    const written = await sql.begin(async (tx) => {
      // Only what changed goes downstream, in the transaction that changed it, as stage 3 does
      // (apply.ts): a live flow waiting for the trait's changes gets a `trait.changed` event per changed
      // value; rules reading the trait re-evaluate the changed profiles (or, after a run that changed
      // many, every profile once). A re-run that keeps every id hands nothing over.
      const watched = (await watchedComputedTraits(tx)).has(c.traitKey);
      const w = await writeClusterTrait(tx, c.traitKey, ids, result.ids, at, { copy, changes: watched });
      if (w.changes?.length) {
        const eventIds: string[] = [];
        for (let i = 0; i < w.changes.length; i += 10_000)
          for (const id of await recordTraitChanges(tx, c.traitKey, w.changes.slice(i, i + 10_000), at, 'clustering'))
            eventIds.push(id);
        await handOffIds(deps.handOff, tx, 'memberships.changed', eventIds);
      }
      if (w.written + w.removed > 0) {
        if (w.profileIds)
          for (let i = 0; i < w.profileIds.length; i += 1000)
            await deps.handOff(tx, 'profiles.changed', { profileIds: w.profileIds.slice(i, i + 1000) });
        else
          for (const r of await rulesReading(tx, 'computed', c.traitKey))
            if (r.kind !== 'computed') await deps.handOff(tx, 'definition.changed', r);
      }
      return w;
    });
    lap('write');
    await setRun(sql, runId, {
      status: 'succeeded',
      step: 'done',
      progress: 1,
      k: result.k,
      profiles: ids.length,
      skipped,
      scores: result.scores,
      clusters: result.clusters,
      finishedAt: deps.now(),
    });
    deps.log.info(
      `clustering ${c.name}: k=${result.k} over ${ids.length} profiles (${skipped} without every feature); ` +
        `${written.written} values written, ${written.removed} removed; seconds ${JSON.stringify(timings)}`,
    );
  } catch (err) {
    await setRun(sql, runId, {
      status: 'failed',
      error: String((err as Error).message ?? err),
      finishedAt: deps.now(),
    });
    deps.log.error(`clustering ${c.name} failed`, err);
  }
}

/** A feature's name in descriptions: `key` or `key.path`. */
export const featureName = (f: { key: string; path?: string }) => (f.path ? `${f.key}.${f.path}` : f.key);

/**
 * Starts the worker of the clustering queue and re-declares every clustering's schedule.
 *
 * @example
 * const stop = await startClusteringWorker(deps);
 */
export async function startClusteringWorker(deps: ClusteringDeps): Promise<() => Promise<void>> {
  await ensureQueue(deps.boss, CLUSTERING_QUEUE);
  for (const c of await listClusterings(deps.sql)) if (c.schedule) await syncClusteringSchedule(deps.boss, c);
  const id = await deps.boss.work<{ runId?: string; clusteringId?: string }>(
    CLUSTERING_QUEUE.name,
    { batchSize: 1, pollingIntervalSeconds: 2 },
    async function clusteringRun([job]) {
      if (!job) return;
      const runId = job.data.runId ?? (await insertRun(deps.sql, job.data.clusteringId!, 'schedule'));
      await executeClusteringRun(deps, runId);
    },
  );
  return async () => {
    await deps.boss.offWork(CLUSTERING_QUEUE.name, { id });
  };
}
