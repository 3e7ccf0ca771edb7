import { clusterPoints } from '@cairn/core';
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
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
  try {
    const d = c.features.length;
    const ids: string[] = [];
    let data = new Float64Array(1024 * d);
    let skipped = 0;
    await readFeatures(sql, c.features, (rows) => {
      for (const r of rows) {
        if (r.x.some((v) => v === null || !Number.isFinite(v))) {
          skipped++;
          continue;
        }
        if ((ids.length + 1) * d > data.length) {
          const grown = new Float64Array(data.length * 2);
          grown.set(data);
          data = grown;
        }
        data.set(r.x as number[], ids.length * d);
        ids.push(r.id);
      }
    });
    if (ids.length < 2) throw new Error(`${ids.length} profiles have every feature: at least 2 are needed`);
    await step('clustering', 0.3);
    const previous = await lastClusters(sql, c.id);
    const result = clusterPoints(
      { data: data.subarray(0, ids.length * d), n: ids.length, d },
      c.features.map(featureName),
      { k: c.k ?? undefined, kRange: c.kRange ?? undefined, seed: c.seed, previous: previous ?? undefined },
    );
    await step('writing', 0.8);
    const written = await writeClusterTrait(sql, c.traitKey, ids, result.ids, deps.now());
    // Audiences and tags reading the trait: recomputed over every profile (the values changed outside stage 3's pass).
    const readers = (await rulesReading(sql, 'computed', c.traitKey)).filter((r) => r.kind !== 'computed');
    if (readers.length)
      await sql.begin(async (tx) => {
        for (const r of readers) await deps.handOff(tx, 'definition.changed', r);
      });
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
        `${written.written} values written, ${written.removed} removed`,
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
