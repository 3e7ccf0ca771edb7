import type { ClusterDescription } from '@cairn/core';
import type { Sql, Tx } from '../../db/index.ts';

// The clustering definitions and runs (migration 0030), the features a run reads, and the `cluster`
// computed trait it writes. The run itself is in clustering.ts.

/** One numeric feature: a computed trait's value (or a number inside it at `path`), or a profile trait. */
export interface ClusteringFeature {
  source: 'computed' | 'trait';
  key: string;
  /** Dot path inside an object value (e.g. `score` of the RFM trait). */
  path?: string;
}

/** What a clustering stores. */
export interface ClusteringFields {
  name: string;
  traitKey: string;
  features: ClusteringFeature[];
  k: number | null;
  kRange: [number, number] | null;
  seed: number;
  schedule: string | null;
}

/** A clustering as stored, with its id and timestamps. */
export interface Clustering extends ClusteringFields {
  id: string;
  createdAt: Date;
  updatedAt: Date;
}

/** One run of a clustering: its progress while it runs, its clusters once it succeeded. */
export interface ClusteringRun {
  id: string;
  clusteringId: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  by: string;
  step: string | null;
  progress: number;
  k: number | null;
  profiles: number | null;
  skipped: number | null;
  scores: { k: number; silhouette: number }[] | null;
  clusters: ClusterDescription[] | null;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

type Row = Omit<Clustering, 'kRange'> & { kMin: number | null; kMax: number | null };
const fromRow = ({ kMin, kMax, ...r }: Row): Clustering => ({
  ...r,
  kRange: kMin !== null && kMax !== null ? [kMin, kMax] : null,
});

/**
 * Every clustering, or one by id.
 *
 * @example
 * const all = await listClusterings(sql);
 */
export async function listClusterings(sql: Tx, id?: string): Promise<Clustering[]> {
  const rows = await sql<Row[]>`
    SELECT id::text, name, trait_key AS "traitKey", features, k, k_min AS "kMin", k_max AS "kMax", seed, schedule,
      created_at AS "createdAt", updated_at AS "updatedAt"
    FROM clusterings
    ${id ? sql`WHERE id = ${id}::uuid` : sql``}
    ORDER BY name`;
  return rows.map(fromRow);
}

/**
 * One clustering, or undefined (also for an id that is not a uuid).
 *
 * @example
 * const c = await getClustering(sql, id);
 */
export async function getClustering(sql: Tx, id: string): Promise<Clustering | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
  return (await listClusterings(sql, id))[0];
}

/**
 * Creates a clustering and the computed trait its runs write (definition `{ kind: 'cluster' }`, which
 * stage 3 does not evaluate). Refuses (returns null) a trait key already taken.
 *
 * @example
 * const id = await insertClustering(sql, { name: 'Shoppers', traitKey: 'cluster', features, k: null, ... });
 */
export async function insertClustering(sql: Sql, f: ClusteringFields): Promise<string | null> {
  return sql.begin(async (tx) => {
    const [taken] = await tx`SELECT 1 FROM computed_traits WHERE key = ${f.traitKey}`;
    if (taken) return null;
    const [row] = await tx<{ id: string }[]>`
      INSERT INTO clusterings (name, trait_key, features, k, k_min, k_max, seed, schedule)
      VALUES (${f.name}, ${f.traitKey}, ${tx.json(f.features as never)}, ${f.k}, ${f.kRange?.[0] ?? null},
        ${f.kRange?.[1] ?? null}, ${f.seed}, ${f.schedule})
      RETURNING id::text`;
    await tx`
      INSERT INTO computed_traits (key, name, definition)
      VALUES (${f.traitKey}, ${f.name}, ${tx.json({ kind: 'cluster', clustering: row!.id })})`;
    return row!.id;
  });
}

/**
 * Replaces a clustering's fields (the trait key stays: rules may read it). The trait's name follows.
 *
 * @example
 * await updateClustering(sql, id, { ...current, k: 5 });
 */
export async function updateClustering(sql: Sql, id: string, f: ClusteringFields): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      UPDATE clusterings SET name = ${f.name}, features = ${tx.json(f.features as never)}, k = ${f.k},
        k_min = ${f.kRange?.[0] ?? null}, k_max = ${f.kRange?.[1] ?? null}, seed = ${f.seed},
        schedule = ${f.schedule}, updated_at = now()
      WHERE id = ${id}::uuid`;
    await tx`UPDATE computed_traits SET name = ${f.name}, updated_at = now() WHERE key = ${f.traitKey}`;
  });
}

/**
 * Deletes a clustering, its runs and its computed trait with every profile's value.
 *
 * @example
 * await deleteClustering(sql, id);
 */
export async function deleteClustering(sql: Sql, c: Clustering): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`DELETE FROM clusterings WHERE id = ${c.id}::uuid`;
    await tx`DELETE FROM computed_traits WHERE key = ${c.traitKey} AND definition->>'kind' = 'cluster'`;
  });
}

const RUN_COLUMNS = (sql: Tx) => sql`
  id::text, clustering_id::text AS "clusteringId", status, by, step, progress, k, profiles, skipped, scores, clusters,
  error, created_at AS "createdAt", started_at AS "startedAt", finished_at AS "finishedAt"`;

/**
 * A clustering's runs, newest first.
 *
 * @example
 * const [latest] = await listRuns(sql, id, 1);
 */
export function listRuns(sql: Tx, clusteringId: string, limit = 20): Promise<ClusteringRun[]> {
  return sql<ClusteringRun[]>`
    SELECT ${RUN_COLUMNS(sql)} FROM clustering_runs
    WHERE clustering_id = ${clusteringId}::uuid
    ORDER BY created_at DESC, id
    LIMIT ${limit}`;
}

/**
 * One run by id.
 *
 * @example
 * const run = await getRun(sql, runId);
 */
export async function getRun(sql: Tx, id: string): Promise<ClusteringRun | undefined> {
  const [row] = await sql<ClusteringRun[]>`SELECT ${RUN_COLUMNS(sql)} FROM clustering_runs WHERE id = ${id}::uuid`;
  return row;
}

/**
 * Records a queued run.
 *
 * @example
 * const runId = await insertRun(sql, clusteringId, 'api:key:k1');
 */
export async function insertRun(sql: Tx, clusteringId: string, by: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO clustering_runs (clustering_id, by) VALUES (${clusteringId}::uuid, ${by}) RETURNING id::text`;
  return row!.id;
}

/**
 * Updates a run's state (only the fields given).
 *
 * @example
 * await setRun(sql, runId, { step: 'trying k=3', progress: 0.4 });
 */
export async function setRun(
  sql: Tx,
  id: string,
  fields: Partial<Pick<ClusteringRun, 'status' | 'step' | 'progress' | 'k' | 'profiles' | 'skipped' | 'error'>> & {
    scores?: unknown;
    clusters?: unknown;
    startedAt?: Date;
    finishedAt?: Date;
  },
): Promise<void> {
  const cols: Record<string, unknown> = {};
  const names: Record<string, string> = { startedAt: 'started_at', finishedAt: 'finished_at' };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    cols[names[k] ?? k] = k === 'scores' || k === 'clusters' ? sql.json(v as never) : v;
  }
  await sql`UPDATE clustering_runs SET ${sql(cols)} WHERE id = ${id}::uuid`;
}

/** The clusters of a clustering's last successful run (their centroids keep ids stable). */
export async function lastClusters(sql: Tx, clusteringId: string): Promise<ClusterDescription[] | null> {
  const [row] = await sql<{ clusters: ClusterDescription[] }[]>`
    SELECT clusters FROM clustering_runs
    WHERE clustering_id = ${clusteringId}::uuid AND status = 'succeeded'
    ORDER BY finished_at DESC
    LIMIT 1`;
  return row?.clusters ?? null;
}

// One join per feature over the (key, profile_id) indexes: the planner hashes or merges each feature's
// rows once, where a correlated subquery per feature per profile cost ~90 µs a profile (measured, 8 features).
function featureJoin(sql: Tx, f: ClusteringFeature, i: number) {
  const path = f.path ? f.path.split('.') : [];
  const value = path.length ? sql`v.value #> ${path}::text[]` : sql`v.value`;
  const table = f.source === 'computed' ? sql`computed_trait_values` : sql`profile_traits`;
  const alias = sql(`f${i}`);
  return sql`
    LEFT JOIN (SELECT v.profile_id, cairn_num(${value})::float8 AS x FROM ${table} v WHERE v.key = ${f.key}) ${alias}
      ON ${alias}.profile_id = p.id`;
}

/**
 * Reads every live profile's features, a page at a time (a cursor: a million rows are never one result),
 * handing each page to `onRows`. A feature without a numeric value is null.
 *
 * @example
 * await readFeatures(sql, features, (rows) => { for (const r of rows) ... });
 */
export async function readFeatures(
  sql: Sql,
  features: readonly ClusteringFeature[],
  onRows: (rows: { id: string; x: (number | null)[] }[]) => void,
): Promise<void> {
  const joins = features.map((f, i) => featureJoin(sql, f, i));
  const list = features.map((_, i) => sql`${sql(`f${i}`)}.x`).reduce((acc, c) => sql`${acc}, ${c}`);
  await sql<{ id: string; x: (number | null)[] }[]>`
    SELECT p.id::text, ARRAY[${list}]::float8[] AS x
    FROM profiles p
    ${joins.reduce((acc, j) => sql`${acc} ${j}`)}
    WHERE p.merged_into IS NULL`.cursor(20_000, (rows) => {
    onRows(rows);
  });
}

/**
 * Makes the trait's values the run's cluster ids, in one transaction (readers never see half a run):
 * the ids go to a temporary table in chunks, then one statement removes the values of profiles the run
 * did not cluster (merged away, a feature missing) and one writes only the values that changed — with
 * stable ids, a re-run rewrites few rows. `computed_at` is when a profile's value last changed, as for
 * stage 3's traits.
 *
 * @example
 * await writeClusterTrait(sql, 'cluster', ids, clusterIds, now);
 */
export async function writeClusterTrait(
  sql: Sql,
  key: string,
  ids: readonly string[],
  values: Int32Array,
  at: Date,
): Promise<{ written: number; removed: number }> {
  return sql.begin(async (tx) => {
    await tx`CREATE TEMPORARY TABLE clustering_result (profile_id uuid NOT NULL, value int NOT NULL) ON COMMIT DROP`;
    const CHUNK = 50_000;
    for (let i = 0; i < ids.length; i += CHUNK) {
      const part = ids.slice(i, i + CHUNK) as string[];
      const v = Array.from(values.subarray(i, i + CHUNK));
      await tx`INSERT INTO clustering_result SELECT * FROM unnest(${part}::uuid[], ${v}::int[])`;
    }
    await tx`ANALYZE clustering_result`;
    const removed = await tx`
      DELETE FROM computed_trait_values c
      WHERE c.key = ${key}
        AND NOT EXISTS (SELECT 1 FROM clustering_result r WHERE r.profile_id = c.profile_id)`;
    const written = await tx`
      INSERT INTO computed_trait_values AS c (profile_id, key, value, computed_at)
      SELECT r.profile_id, ${key}, to_jsonb(r.value), ${at} FROM clustering_result r
      ON CONFLICT (profile_id, key) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at
      WHERE c.value IS DISTINCT FROM excluded.value`;
    return { written: written.count, removed: removed.count };
  });
}
