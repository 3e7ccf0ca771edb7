import { TEST_ADMIN_KEY } from '@cairn/server/testing';
import type postgres from 'postgres';
import type { Node } from '../identify/servers.ts';

// What bench:flows asks of Cairn through its admin API (flows, audiences, destinations) and what it
// writes straight into the database (profiles in bulk), plus the small SQL helpers its phases share.

/**
 * Calls the admin API of a node (with the test admin key, or `key`); throws unless the answer is 2xx.
 *
 * @example
 * const flow = await api<{ id: string }>(node, 'POST', '/flows', { definition });
 */
export async function api<T>(node: Node, method: string, path: string, body?: unknown, key?: string): Promise<T> {
  const res = await fetch(`${node.server.url}/api${path}`, {
    method,
    headers: { authorization: `Bearer ${key ?? TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /api${path} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

// A second admin key per server, to approve flows where publishing needs a review by another person.
const reviewers = new WeakMap<Node, Promise<string>>();

/**
 * Creates a flow through the API and publishes it (where a review is required: submitted with the admin
 * key and approved with a second admin key); returns its id (live on version 1).
 *
 * @example
 * const id = await liveFlow(node, definition);
 */
export async function liveFlow(node: Node, definition: Record<string, unknown>): Promise<string> {
  const { id } = await api<{ id: string }>(node, 'POST', '/flows', { definition });
  try {
    await api(node, 'POST', `/flows/${id}/publish`, {});
  } catch (err) {
    if (!/not_approved/.test((err as Error).message)) throw err;
    let reviewer = reviewers.get(node);
    if (!reviewer) {
      reviewer = api<{ key: string }>(node, 'POST', '/keys', { name: 'bench reviewer', role: 'admin' }).then(
        (k) => k.key,
      );
      reviewers.set(node, reviewer);
    }
    await api(node, 'POST', `/flows/${id}/submit`, {});
    await api(node, 'POST', `/flows/${id}/approve`, {}, await reviewer);
    await api(node, 'POST', `/flows/${id}/publish`, {});
  }
  return id;
}

/** A rule `trait <key> = <value>` in the rule language's JSON. */
export const traitIs = (trait: string, value: string) => ({ op: 'trait', trait, cmp: '=', value });

/** The profile id the bulk seed gives person k (1-based). */
export const seededProfileSql = (k: string) => `md5('flow-bench-profile-' || ${k})::uuid`;

/**
 * Seeds `count` profiles in one set-based statement each (profiles, a userId identity, and the trait
 * `bench_cohort` = `a` for the first `cohortA`, `b` for the rest); returns the seconds it took.
 *
 * @example
 * await seedProfiles(sql, 1_000_000, 100_000);
 */
export async function seedProfiles(sql: postgres.Sql, count: number, cohortA: number): Promise<number> {
  const t0 = performance.now();
  const now = new Date();
  await sql.begin(async (tx) => {
    await tx`SET LOCAL synchronous_commit = off`;
    await tx.unsafe(
      `INSERT INTO profiles (id, created_at, updated_at)
       SELECT ${seededProfileSql('k')}, $1, $1 FROM generate_series(1, $2::int) AS k`,
      [now.toISOString(), count] as never[],
    );
    await tx.unsafe(
      `INSERT INTO identities (key, type, value, profile_id, created_at)
       SELECT 'userId:fb' || k, 'userId', 'fb' || k, ${seededProfileSql('k')}, $1 FROM generate_series(1, $2::int) AS k`,
      [now.toISOString(), count] as never[],
    );
    await tx.unsafe(
      `INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
       SELECT ${seededProfileSql('k')}, 'bench_cohort', to_jsonb(CASE WHEN k <= $3 THEN 'a' ELSE 'b' END), $1, 0, 'identify'
       FROM generate_series(1, $2::int) AS k`,
      [now.toISOString(), count, cohortA] as never[],
    );
  });
  await sql`VACUUM ANALYZE profiles, identities, profile_traits`;
  return (performance.now() - t0) / 1000;
}

/** The database's clock in epoch ms (the runner's clock: the servers run on this machine). */
export async function dbNowMs(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ t: number }[]>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS t`;
  return row!.t;
}

/** On-disk bytes of a table: heap (with TOAST) and each index. */
export interface RelationSize {
  heap: number;
  indexes: { name: string; bytes: number }[];
  total: number;
}

/**
 * The size of `flow_runs` (or another table) and its indexes.
 *
 * @example
 * const s = await relationSize(sql, 'flow_runs');
 */
export async function relationSize(sql: postgres.Sql, table: string): Promise<RelationSize> {
  const [t] = await sql<{ heap: number; total: number }[]>`
    SELECT pg_table_size(${table}::regclass)::float8 AS heap, pg_total_relation_size(${table}::regclass)::float8 AS total`;
  const indexes = await sql<{ name: string; bytes: number }[]>`
    SELECT i.indexrelid::regclass::text AS name, pg_relation_size(i.indexrelid)::float8 AS bytes
    FROM pg_index i WHERE i.indrelid = ${table}::regclass ORDER BY 1`;
  return { heap: t!.heap, indexes, total: t!.total };
}

/** Percentiles of a sample (nearest rank), in its unit. */
export interface Spread {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * p50 / p95 / p99 / max of a sample (nearest rank).
 *
 * @example
 * spread([1, 2, 3]); // { n: 3, p50: 2, ... }
 */
export function spread(values: ArrayLike<number>): Spread {
  const s = Float64Array.from(values).sort();
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]! : NaN);
  return { n: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.length ? s[s.length - 1]! : NaN };
}

/** `1,234` */
export const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
/** Seconds with one decimal, or ms below 10 s: `850 ms`, `12.3 s`. */
export const dur = (ms: number) =>
  !Number.isFinite(ms) ? '-' : Math.abs(ms) < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
