import type { ClusterDescription } from '@cairn/core';
import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { copyIn, copyOut } from './clustering-copy.ts';
import type { TraitChange } from './trait-changes.ts';

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

/** Every live profile with a numeric value for every feature: ids, and their features row by row (n × d). */
export interface FeatureMatrix {
  ids: string[];
  /** Row i is profile ids[i]'s features, in the clustering's order. */
  data: Float64Array;
  /** Live profiles left out: a feature without a numeric value. */
  skipped: number;
}

// Rows appended to one Float64Array, doubled as it fills (8 bytes a value: 64 MB for 1M × 8).
class Matrix {
  ids: string[] = [];
  data: Float64Array;
  skipped = 0;
  constructor(readonly d: number) {
    this.data = new Float64Array(1024 * d);
  }
  add(id: string, x: ArrayLike<number | null>): void {
    const { d } = this;
    const at = this.ids.length * d;
    if (at + d > this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    for (let j = 0; j < d; j++) {
      const v = x[j];
      if (v === null || v === undefined || !Number.isFinite(v)) {
        this.skipped++;
        return;
      }
      this.data[at + j] = v;
    }
    this.ids.push(id);
  }
  done(): FeatureMatrix {
    return { ids: this.ids, data: this.data.subarray(0, this.ids.length * this.d), skipped: this.skipped };
  }
}

// A string as an SQL literal (standard_conforming_strings, on since Postgres 9.1: only ' is special).
const literal = (s: string) => {
  if (s.includes('\0')) throw new RangeError('a feature key or path holds a NUL character');
  return `'${s.replaceAll("'", "''")}'`;
};

// The features query as text, for COPY: the same joins as featureJoin's, with literals for keys and paths.
function featuresText(features: readonly ClusteringFeature[]): string {
  const joins = features.map((f, i) => {
    const path = f.path ? f.path.split('.') : [];
    const value = path.length ? `v.value #> ARRAY[${path.map(literal).join(', ')}]::text[]` : 'v.value';
    const table = f.source === 'computed' ? 'computed_trait_values' : 'profile_traits';
    return `LEFT JOIN (SELECT v.profile_id, cairn_num(${value})::float8 AS x FROM ${table} v WHERE v.key = ${literal(f.key)}) f${i} ON f${i}.profile_id = p.id`;
  });
  const list = features.map((_, i) => `f${i}.x`).join(', ');
  return `SELECT p.id, ${list} FROM profiles p ${joins.join(' ')} WHERE p.merged_into IS NULL`;
}

/**
 * Reads every live profile's features. On Postgres (`copy`) one `COPY (SELECT …) TO STDOUT` streams them
 * as text, parsed as it arrives; on the embedded database a cursor pages them (a million rows are never
 * one result). A feature without a numeric value is null, and its profile is skipped. `onRows` is told
 * how many rows have been read (progress).
 *
 * @example
 * const { ids, data, skipped } = await readFeatures(sql, features, { copy: true });
 */
export async function readFeatures(
  sql: Sql,
  features: readonly ClusteringFeature[],
  options: { copy: boolean; onRows?: (read: number) => void },
): Promise<FeatureMatrix> {
  const d = features.length;
  const joins = features.map((f, i) => featureJoin(sql, f, i)).reduce((acc, j) => sql`${acc} ${j}`);
  const m = new Matrix(d);
  let read = 0;
  if (options.copy) {
    // COPY takes no parameters: the statement's text carries the keys and paths as quoted literals.
    const x = new Array<number | null>(d);
    // In a transaction of its own: a COPY holds its connection, and the pool must not queue others' queries on it.
    await sql.begin('READ ONLY', (tx) =>
      copyOut(tx.unsafe(`COPY (${featuresText(features)}) TO STDOUT`), (fields) => {
        for (let j = 0; j < d; j++) {
          const f = fields[j + 1]!;
          x[j] = f === '\\N' ? null : Number(f);
        }
        m.add(fields[0]!, x);
        if (++read % 100_000 === 0) options.onRows?.(read);
      }),
    );
    return m.done();
  }
  const list = features.map((_, i) => sql`${sql(`f${i}`)}.x`).reduce((acc, c) => sql`${acc}, ${c}`);
  await sql<{ id: string; x: (number | null)[] }[]>`
    SELECT p.id::text, ARRAY[${list}]::float8[] AS x
    FROM profiles p ${joins}
    WHERE p.merged_into IS NULL`.cursor(20_000, (rows) => {
    for (const r of rows) m.add(r.id, r.x);
    read += rows.length;
    options.onRows?.(read);
  });
  return m.done();
}

/** What writing a run's values changed. */
export interface ClusterTraitWrite {
  /** Values inserted or changed. */
  written: number;
  /** Values removed (profiles the run did not cluster). */
  removed: number;
  /** The profiles whose value changed (inserted, changed or removed), when there are at most `listUpTo`. */
  profileIds: string[] | null;
  /** Every change with the value before and after, when asked for (a live flow waits for the trait's changes). */
  changes: TraitChange[] | null;
}

/**
 * Makes the trait's values the run's cluster ids, inside the caller's transaction (readers never see
 * half a run): the ids go to a temporary table (COPY on Postgres, arrays in chunks on the embedded
 * database), then one statement removes the values of profiles the run did not cluster (merged away, a
 * feature missing), one updates the values that changed and one inserts the new ones — with stable
 * ids, a re-run rewrites few rows, and only changed values count as changes downstream. `computed_at` is when a profile's
 * value last changed, as for stage 3's traits. Rows are written in profile order: a first run inserts a
 * million, and in that order the primary key's pages and the foreign key's lookups of `profiles` are
 * visited once each rather than at random.
 *
 * @example
 * const w = await writeClusterTrait(tx, 'cluster', ids, clusterIds, now, { copy: true, changes: false });
 */
export async function writeClusterTrait(
  tx: Transaction,
  key: string,
  ids: readonly string[],
  values: Int32Array,
  at: Date,
  options: { copy: boolean; changes: boolean; listUpTo?: number },
): Promise<ClusterTraitWrite> {
  await tx`CREATE TEMPORARY TABLE clustering_result (profile_id uuid NOT NULL, value int NOT NULL) ON COMMIT DROP`;
  if (options.copy) await copyIn(tx, 'clustering_result', ids, values);
  else
    for (let i = 0; i < ids.length; i += 50_000) {
      const part = ids.slice(i, i + 50_000) as string[];
      const v = Array.from(values.subarray(i, i + 50_000));
      await tx`INSERT INTO clustering_result SELECT * FROM unnest(${part}::uuid[], ${v}::int[])`;
    }
  // Indexed and analysed: every join below finds a profile's new value by the index, whatever plan the
  // statistics of computed_trait_values suggest (stale right after a first run: a nested loop over a
  // million unindexed rows per row never finishes).
  await tx`CREATE INDEX ON clustering_result (profile_id)`;
  await tx`ANALYZE clustering_result`;
  // Changes with their values before and after: read before the writes (one snapshot of both).
  const changes = options.changes
    ? await tx<TraitChange[]>`
        SELECT r.profile_id::text AS id, c.value AS "from", to_jsonb(r.value) AS "to"
        FROM clustering_result r
        LEFT JOIN computed_trait_values c ON c.profile_id = r.profile_id AND c.key = ${key}
        WHERE c.value IS DISTINCT FROM to_jsonb(r.value)
        UNION ALL
        SELECT c.profile_id::text, c.value, NULL FROM computed_trait_values c
        WHERE c.key = ${key} AND NOT EXISTS (SELECT 1 FROM clustering_result r WHERE r.profile_id = c.profile_id)`
    : null;
  const listUpTo = options.listUpTo ?? 10_000;
  // Counted (and listed when few) in SQL: a first run changes every value, and a million ids need not come back.
  const [removed] = await tx<{ n: number; ids: string[] | null }[]>`
    WITH gone AS (
      DELETE FROM computed_trait_values c
      WHERE c.key = ${key}
        AND NOT EXISTS (SELECT 1 FROM clustering_result r WHERE r.profile_id = c.profile_id)
      RETURNING c.profile_id)
    SELECT count(*)::int AS n, CASE WHEN count(*) <= ${listUpTo} THEN coalesce(array_agg(profile_id::text), '{}') END AS ids FROM gone`;
  // Changed values are updated and new ones inserted by two joins with the temporary table, not by
  // INSERT … ON CONFLICT: that probes the primary key once per row and, on a re-run that keeps every id,
  // visits a million rows to change none. Runs of one trait take turns (the lock), so no row appears
  // between the two statements.
  await tx`SELECT pg_advisory_xact_lock(hashtext(${`clustering:${key}`}))`;
  const [changed] = await tx<{ n: number; ids: string[] | null }[]>`
    WITH updated AS (
      UPDATE computed_trait_values c SET value = to_jsonb(r.value), computed_at = ${at}
      FROM clustering_result r
      WHERE c.key = ${key} AND c.profile_id = r.profile_id AND c.value IS DISTINCT FROM to_jsonb(r.value)
      RETURNING c.profile_id)
    SELECT count(*)::int AS n, CASE WHEN count(*) <= ${listUpTo} THEN coalesce(array_agg(profile_id::text), '{}') END AS ids
    FROM updated`;
  const [inserted] = await tx<{ n: number; ids: string[] | null }[]>`
    WITH inserted AS (
      INSERT INTO computed_trait_values (profile_id, key, value, computed_at)
      SELECT r.profile_id, ${key}, to_jsonb(r.value), ${at} FROM clustering_result r
      WHERE NOT EXISTS (SELECT 1 FROM computed_trait_values c WHERE c.key = ${key} AND c.profile_id = r.profile_id)
      ORDER BY r.profile_id
      RETURNING profile_id)
    SELECT count(*)::int AS n, CASE WHEN count(*) <= ${listUpTo} THEN coalesce(array_agg(profile_id::text), '{}') END AS ids
    FROM inserted`;
  const written = {
    n: changed!.n + inserted!.n,
    ids: changed!.ids && inserted!.ids ? [...changed!.ids, ...inserted!.ids] : null,
  };
  const few = removed!.n + written.n <= listUpTo;
  return {
    written: written.n,
    removed: removed!.n,
    profileIds: few ? [...(removed!.ids ?? []), ...(written.ids ?? [])] : null,
    changes,
  };
}
